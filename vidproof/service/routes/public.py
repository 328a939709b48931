"""Health, login and logout, Prometheus metrics (all but logout open without login)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import PlainTextResponse

from ..api_models import Health, LoginRequest, LoginResponse
from ..auth import Session, request_token, require
from ..context import Service

router = APIRouter()


@router.get("/api/health", response_model=Health)
def health(request: Request) -> Health:
    svc: Service = request.app.state.service
    states = [svc.camera_health(c)["state"] for c in svc.camera_ids()]
    return Health(status="ok", cameras=len(states),
                  recording=sum(1 for s in states if s == "recording"))


@router.post("/api/login", response_model=LoginResponse)
def login(body: LoginRequest, request: Request) -> LoginResponse:
    svc: Service = request.app.state.service
    user = svc.users.authenticate(body.username, body.password)
    client = request.client.host if request.client else "?"
    if user is None:
        svc.journal("login_failed", body.username, {"client": client})
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    svc.journal("login", user.name, {"client": client, "role": user.role})
    return LoginResponse(token=request.app.state.sessions.open(user.name, user.role),
                         role=user.role)


@router.post("/api/logout", status_code=204, response_class=Response)
def logout(request: Request, session: Session = Depends(require())) -> Response:  # noqa: B008
    """End this session: its token is refused from now on."""
    svc: Service = request.app.state.service
    request.app.state.sessions.close(request_token(request))
    svc.journal("logout", session.user, {})
    return Response(status_code=204)


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> str:
    svc: Service = request.app.state.service
    lines = [
        "# HELP vidproof_up 1 while the service runs.", "# TYPE vidproof_up gauge",
        "vidproof_up 1",
        "# HELP vidproof_camera_recording 1 when the camera's worker records.",
        "# TYPE vidproof_camera_recording gauge",
    ]
    rows = [(c, svc.camera_health(c)) for c in svc.camera_ids()]
    for cam, h in rows:
        lines.append(f'vidproof_camera_recording{{camera="{cam}"}} '
                     f'{1 if h["state"] == "recording" else 0}')
    for name, key, help_text in (
        ("vidproof_camera_frames_total", "frames_out", "Frames recorded and signed."),
        ("vidproof_camera_dropped_frames_total", "dropped_frames", "Frames not kept."),
        ("vidproof_camera_restarts_total", "restarts", "Worker restarts."),
        ("vidproof_camera_disk_used_bytes", "disk_used_bytes", "Bytes stored."),
    ):
        kind = "counter" if name.endswith("_total") else "gauge"
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f'{name}{{camera="{cam}"}} {h[key] or 0}' for cam, h in rows]
    lines += ["# HELP vidproof_time_seconds Wall clock of the recorder.",
              "# TYPE vidproof_time_seconds gauge", f"vidproof_time_seconds {time.time():.3f}"]
    return "\n".join(lines) + "\n"
