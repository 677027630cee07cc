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
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from agents.context import PresidioPiiDetector
from agents.graph import build_graph
from api.chat_service import ChatService
from api.routes import admin, chat, configs, experiments, feedback, health
from utils.flags.client import ConfigFlags
from utils.logging_setup import configure_logging
from utils.settings import Settings, get_settings
from utils.telemetry.event_store import EventStore

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"


def _warm_up() -> None:
    """Build the PII analyzer and the search indexes before the first request needs them."""
    from agents.tools.registry import warm_up as warm_up_tools
    from utils.privacy.detector import warm_up as warm_up_pii

    warm_up_pii()
    warm_up_tools()


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = settings or get_settings()
        configure_logging(current.LOG_LEVEL)
        flags = ConfigFlags(current)
        store = EventStore(current.events_db)
        app.state.service = ChatService(settings=current, flags=flags, store=store,
                                        graph=build_graph(), pii=PresidioPiiDetector())
        await asyncio.to_thread(_warm_up)
        status = flags.status()
        if "hint" in status:
            log.warning(status["hint"])
        log.info("ready: flags=%s store=%s", flags.mode, store.path)
        try:
            yield
        finally:
            await asyncio.to_thread(store.close)
            flags.close()

    app = FastAPI(
        title="Multi-agent support assistant with AI Configs",
        description="Supervisor, security and support agents configured per user by AI "
        "Configs; every run measured; experiments decided by a local statistics engine.",
        version="0.1.0",
        lifespan=lifespan,
    )
    for module in (chat, feedback, health, experiments, configs, admin):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    async def read_index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


app = create_app()
