"""The FastAPI app: chat, feedback, health, experiments, configs, admin and the web UI."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # Presidio: never the network

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from api.composition import build_service, warm_up
from api.limits import BodyLimitMiddleware, SecurityHeadersMiddleware, validation_error_handler
from api.routes import admin, chat, configs, experiments, feedback, health, offline
from utils.logging_setup import configure_logging
from utils.settings import Settings, get_settings
from utils.telemetry import tracing
from utils.telemetry.store_faults import StoreUnavailable

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; its service is built by `build_service` when the server starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = settings or get_settings()
        configure_logging(current.LOG_LEVEL)
        traced = tracing.setup_tracing(current) is not None  # before the graph is built
        service = build_service(current)
        app.state.service = service
        app.state.settings = current
        await asyncio.to_thread(warm_up, service)
        log.info("ready: flags=%s store=%s", service.flags.mode, service.store.location)
        try:
            yield
        finally:
            await asyncio.to_thread(service.close)
            if traced:
                await asyncio.to_thread(tracing.shutdown)  # flushes the spans still queued

    app = FastAPI(
        title="Multi-agent support assistant with AI Configs",
        description="Supervisor, security and support agents configured per user by AI "
        "Configs; every run measured; experiments decided by a local statistics engine.",
        version="0.1.0",
        lifespan=lifespan,
    )
    for module in (chat, feedback, health, experiments, offline, configs, admin):
        app.include_router(module.router)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    # The limit is read when the app is built (middleware cannot wait for the lifespan).
    app.add_middleware(BodyLimitMiddleware,
                       max_bytes=(settings or get_settings()).MAX_BODY_BYTES)
    app.add_middleware(SecurityHeadersMiddleware)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def read_index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


async def _store_unavailable(_: object, exc: Exception) -> JSONResponse:
    """Any route that reaches a faulty store: 503 with the reason (never a bare 500)."""
    return JSONResponse(status_code=503, content={"detail": str(exc)})


app = create_app()
