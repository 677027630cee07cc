"""The composition root: the one place where the chat service and its parts are built.

`api.main` (the server), the tests and the benchmarks all call `build_service`, so each runs
the same wiring: settings are read once, by the caller, and handed down from here.
"""

from __future__ import annotations

import logging

from agents.context import PiiDetector, PresidioPiiDetector
from agents.graph import GraphCache
from agents.models import ModelCache
from agents.tools.registry import Toolbox
from api.chat_service import ChatService
from utils.flags.client import ConfigFlags
from utils.privacy.detector import warm_up as warm_up_pii
from utils.settings import Settings
from utils.telemetry.cost_calculator import get_pricing_table
from utils.telemetry.pg_store import open_event_store

log = logging.getLogger(__name__)


def build_service(settings: Settings, *, pii: PiiDetector | None = None) -> ChatService:
    """The chat service with its flag client, event store, compiled graph, models and tools.

    `pii` replaces the deterministic detector (tests inject failing ones). A bad pricing
    override file fails here, at start-up, naming the file.
    """
    pricing = get_pricing_table(settings.PRICING_OVERRIDES_PATH)
    flags = ConfigFlags(settings)
    try:
        store = open_event_store(settings.events_location,
                                 lock_timeout_s=settings.STORE_LOCK_TIMEOUT_S,
                                 pool_size=settings.EVENTS_POOL_SIZE)
    except Exception:
        flags.close()
        raise
    return ChatService(
        settings=settings, flags=flags, store=store, graphs=GraphCache(),
        pii=pii or PresidioPiiDetector(), models=ModelCache(settings), tools=Toolbox(settings),
        pricing=pricing,
    )


def warm_up(service: ChatService) -> None:
    """Build the PII analyzer and the search indexes before the first request needs them."""
    warm_up_pii()
    service.tools.warm_up()
    status = service.flags.status()
    if "hint" in status:
        log.warning(status["hint"])
