"""GET /health: flag source, LLM mode per provider, tools, store (never any secret).

Always HTTP 200 while the process serves: `status` is `ok`, or `degraded` with the `reasons`
(the flags in service are not the file's, the store cannot take writes, a provider's last
call failed). Tools that are not configured are `warnings`, not reasons. `pid` is the worker
process that answered (with `--workers N`, each worker has its own flags, store and state).
"""

from __future__ import annotations

import asyncio
import os
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter

from agents.models import llm_mode_by_provider
from api.deps import ServiceDep
from api.schemas import HealthPublic

router = APIRouter(tags=["health"])


def _version() -> str:
    try:
        return version("multi-agent-experiments")
    except PackageNotFoundError:
        return "0.0.0+local"


@router.get("/health", response_model=HealthPublic)
async def read_health(service: ServiceDep) -> HealthPublic:
    """Is the app ready, and what is it running on?"""
    flags = service.flags.status()
    warnings = [flags["hint"]] if "hint" in flags else []
    tools = service.tools.status()
    warnings += [f"tool {name}: {status}" for name, status in tools.items()
                 if not status.startswith("available")]
    # On PostgreSQL the store's check asks the database (cached for a second): off the loop.
    store_problems = await asyncio.to_thread(service.store.problems)
    reasons = [*service.flags.problems(), *store_problems, *service.providers.problems()]
    return HealthPublic(
        status="degraded" if reasons else "ok", reasons=reasons,
        version=_version(), flags=flags, llm_mode=llm_mode_by_provider(service.settings),
        tools=tools, events_db=service.store.location, warnings=warnings, pid=os.getpid(),
    )
