"""The app factory: the API routers, the static web UI, and the service's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from .auth import Sessions
from .context import Service
from .routes import cameras, exports, journal, public, retention, verify

STATIC = Path(__file__).parent / "static"


def create_app(service: Service) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service.supervisor is not None:
            service.supervisor.start()
        service.journal("service_start", "system", {"cameras": service.camera_ids()})
        try:
            yield
        finally:
            if service.supervisor is not None:
                service.supervisor.stop()
            service.exports.shutdown()
            service.journal("service_stop", "system", {})

    app = FastAPI(title="vidproof recorder", version=__version__, lifespan=lifespan,
                  description="Forensic video-surveillance recorder: cameras, recordings, "
                              "certified exports, verification and the operations journal.")
    app.state.service = service
    app.state.sessions = Sessions()
    app.state.thumbnail_views = {}
    app.state.thumbnails = {}
    for r in (public.router, cameras.router, exports.router, verify.router, journal.router,
              retention.router):
        app.include_router(r)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid request')}"},
                            status_code=422)

    if STATIC.is_dir() and (STATIC / "index.html").is_file():
        app.mount("/ui", StaticFiles(directory=STATIC, html=True), name="ui")

        @app.get("/", include_in_schema=False)
        def root() -> RedirectResponse:
            return RedirectResponse("/ui/")

    return app
