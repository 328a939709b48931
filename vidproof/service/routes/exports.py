"""Exports (police): start one, follow it, download the bundle."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse

from ...errors import UsageError
from ...export import parse_time
from ...timefmt import iso_ns
from ..api_models import ExportRequestBody, ExportStatus
from ..auth import Session, require
from ..context import Service
from ..exports import ExportJob

router = APIRouter(prefix="/api/exports")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")  # the case is free text, not a file name
police = require("police")


def _status(job: ExportJob) -> ExportStatus:
    return ExportStatus(id=job.id, state=job.state, progress=job.progress, camera=job.camera,
                        case=job.case, officer=job.officer, created_utc=iso_ns(job.created_ns),
                        message=job.message, frames=job.frames, verdict=job.verdict)


def _job(request: Request, export_id: str) -> ExportJob:
    svc: Service = request.app.state.service
    job = svc.exports.jobs.get(export_id)
    if job is None:
        raise HTTPException(404, f"no export {export_id!r}")
    return job


@router.post("", response_model=ExportStatus, status_code=202)
def start_export(body: ExportRequestBody, request: Request,
                 session: Session = Depends(police)) -> ExportStatus:  # noqa: B008
    svc: Service = request.app.state.service
    if body.camera not in svc.camera_ids():
        raise HTTPException(404, f"no camera {body.camera!r}")
    try:
        start, end = parse_time(body.start, "from"), parse_time(body.end, "to")
    except UsageError as exc:
        raise HTTPException(422, str(exc)) from None
    if end <= start:
        raise HTTPException(422, "'to' must be later than 'from'")
    job = svc.exports.submit(body.camera, start, end, body.case, session.user, body.reason)
    return _status(job)


@router.get("/{export_id}", response_model=ExportStatus)
def export_status(export_id: str, request: Request,
                  session: Session = Depends(police)) -> ExportStatus:  # noqa: B008
    return _status(_job(request, export_id))


@router.get("/{export_id}/bundle", response_class=FileResponse,
            responses={200: {"content": {"application/zip": {}}}})
def download(export_id: str, request: Request,
             session: Session = Depends(police)) -> FileResponse:  # noqa: B008
    job = _job(request, export_id)
    if job.state != "done" or job.bundle is None:
        raise HTTPException(409, f"export {export_id} is {job.state}, not done")
    svc: Service = request.app.state.service
    svc.journal("download", session.user, {"export": job.id, "case": job.case,
                                            "camera": job.camera})
    return FileResponse(job.bundle, media_type="application/zip",
                        filename=f"vidproof-{job.camera}-{_SAFE_NAME.sub('_', job.case)}.zip")
