"""Admin endpoints: flush LaunchDarkly events, summarise the store. Need X-Admin-Token."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from api.deps import AdminDep, ServiceDep

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post("/flush")
async def flush_events(_: AdminDep, service: ServiceDep) -> dict[str, Any]:
    """Send queued LaunchDarkly events now; the client stays open."""
    await asyncio.to_thread(service.flags.flush)
    return {"flushed": True, "mode": service.flags.mode}


@router.get("/store")
async def read_store_summary(_: AdminDep, service: ServiceDep) -> dict[str, Any]:
    """Row counts of the event store, per table and per event key."""
    return await asyncio.to_thread(service.store.summary)
