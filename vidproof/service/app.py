"""The app factory: the API routers, the static web UI, and the service's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
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

    # /docs is served from here, with Swagger UI's files from the swagger-ui-bundle
    # package: FastAPI's default page loads them from a CDN, which a recorder on a closed
    # network cannot reach. (ReDoc, CDN only, is left out.)
    app = FastAPI(title="vidproof recorder", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Forensic video-surveillance recorder: cameras, recordings, "
                              "certified exports, verification and the operations journal.")
    _add_docs(app)
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


def _add_docs(app: FastAPI) -> None:
    import swagger_ui_bundle

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
              name="docs-assets")
    favicon = "/ui/favicon.svg" if (STATIC / "favicon.svg").is_file() else ""

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json",
                                   title=f"{app.title} - API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url=favicon)
