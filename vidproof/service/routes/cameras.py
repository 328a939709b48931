"""Cameras, their health, a recent thumbnail, and recorded ranges."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import av
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from ...errors import UsageError
from ...export import parse_time, to_ns
from ...store import list_segments
from ...timefmt import iso_ns
from ..api_models import CameraStatus, Range, Recordings
from ..auth import Session, require
from ..context import Service

router = APIRouter(prefix="/api")
THUMB_WIDTH = 320
_VIEW_JOURNAL_SECONDS = 600


def _service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


def _camera(svc: Service, camera_id: str) -> str:
    if camera_id not in svc.camera_ids():
        raise HTTPException(404, f"no camera {camera_id!r}")
    return camera_id


@router.get("/cameras", response_model=list[CameraStatus])
def cameras(request: Request, session: Session = Depends(require())) -> list[CameraStatus]:  # noqa: B008
    svc = _service(request)
    out = []
    for cam in svc.config.cameras:
        if not cam.enabled:
            continue
        h = svc.camera_health(cam.id)
        last = h.pop("last_frame_utc_ns", None) or svc.recordings.last_frame_ns(cam.id)
        h.pop("camera_id", None)
        out.append(CameraStatus(camera_id=cam.id, location=cam.location.to_json(),
                                close_shot=cam.close_shot,
                                mode="stamp" if cam.stamp else "passthrough",
                                last_frame_utc=iso_ns(last) if last else None, **h))
    return out


@router.get("/cameras/{camera_id}/thumbnail", responses={200: {"content": {"image/png": {}}}})
def thumbnail(camera_id: str, request: Request,
              session: Session = Depends(require("installer", "operator", "police"))  # noqa: B008
              ) -> Response:
    svc = _service(request)
    _camera(svc, camera_id)
    png = _thumbnail(request, svc, camera_id)
    if png is None:
        raise HTTPException(404, "no picture recorded yet")
    key = (session.user, camera_id)
    seen: dict[tuple[str, str], float] = request.app.state.thumbnail_views
    if time.monotonic() - seen.get(key, -1e9) > _VIEW_JOURNAL_SECONDS:
        seen[key] = time.monotonic()
        svc.journal("view_live", session.user, {"camera": camera_id})
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


def _thumbnail(request: Request, svc: Service, camera_id: str) -> bytes | None:
    """The latest keyframe as PNG, decoded again only when the newest segment has grown.
    A segment being written may end in a partly written packet: then the previous
    picture is kept rather than none."""
    segments = list_segments(svc.config.store / camera_id)
    cache: dict[str, tuple[tuple[str, int], bytes]] = request.app.state.thumbnails
    if not segments:
        return None
    try:
        mark = (segments[-1].name, segments[-1].stat().st_size)
    except OSError:
        mark = ("", 0)
    cached = cache.get(camera_id)
    if cached is not None and cached[0] == mark:
        return cached[1]
    png = _latest_keyframe_png(segments)
    if png is None:
        return cached[1] if cached is not None else None
    cache[camera_id] = (mark, png)
    return png


def _latest_keyframe_png(segments: list[Path]) -> bytes | None:
    for seg in reversed(segments[-3:]):
        try:
            with av.open(str(seg)) as c:
                stream = c.streams.video[0]
                last_key = None
                for p in c.demux(stream):
                    if p.size and p.is_keyframe:
                        last_key = p
                if last_key is None:
                    continue
                codec: Any = av.CodecContext.create(stream.codec_context.name, "r")
                if stream.codec_context.extradata:
                    codec.extradata = stream.codec_context.extradata
                frames = [*codec.decode(last_key), *codec.decode(None)]
        except (av.FFmpegError, OSError, IndexError):
            continue
        if not frames:
            continue
        f = frames[0]
        h = max(2, round(f.height * THUMB_WIDTH / f.width / 2) * 2)
        enc = av.CodecContext.create("png", "w")
        enc.width, enc.height, enc.pix_fmt = THUMB_WIDTH, h, "rgb24"
        small = f.reformat(width=THUMB_WIDTH, height=h, format="rgb24")
        return b"".join(bytes(p) for p in [*enc.encode(small), *enc.encode(None)])
    return None


@router.get("/recordings", response_model=Recordings)
def recordings(request: Request, camera: str = Query(min_length=1, max_length=64),
               start: str | None = Query(default=None, alias="from", max_length=64),
               end: str | None = Query(default=None, alias="to", max_length=64),
               session: Session = Depends(require())) -> Recordings:  # noqa: B008
    svc = _service(request)
    _camera(svc, camera)
    try:
        lo = to_ns(parse_time(start, "from")) if start else None
        hi = to_ns(parse_time(end, "to")) if end else None
    except UsageError as exc:
        raise HTTPException(422, str(exc)) from None
    runs = [(max(a, lo) if lo else a, min(b, hi) if hi else b, n)
            for a, b, n in svc.recordings.runs(camera)
            if (lo is None or b >= lo) and (hi is None or a <= hi)]
    ranges = [Range(start=iso_ns(a), end=iso_ns(b), frames=n) for a, b, n in runs]
    gaps = [Range(start=iso_ns(runs[i][1]), end=iso_ns(runs[i + 1][0]), frames=0)
            for i in range(len(runs) - 1)]
    return Recordings(camera_id=camera, ranges=ranges, gaps=gaps)
