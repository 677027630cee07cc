"""POST /feedback: a thumbs-up or -down, credited to the variations that served the request."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException

from api.deps import ServiceDep
from api.schemas import FeedbackCreate, FeedbackPublic
from utils.telemetry.instrumentation import feedback_batch, send_feedback_to_launchdarkly

router = APIRouter(tags=["feedback"])


@router.post("/feedback", response_model=FeedbackPublic)
async def create_feedback(body: FeedbackCreate, service: ServiceDep) -> FeedbackPublic:
    """Record feedback once per request; a repeat is acknowledged as a duplicate."""
    record = await asyncio.to_thread(service.store.get_request, body.request_id)
    if record is None:
        raise HTTPException(404, f"unknown request_id {body.request_id!r}")
    if record.user_key != body.user_id:
        raise HTTPException(422, [{"loc": ["body", "user_id"], "type": "value_error",
                                   "msg": "user_id does not match the user of this request"}])
    status = await service.store.write(feedback_batch(
        body.request_id, body.user_id, body.kind, body.source, record.exposures))
    if status == "recorded" and service.flags.mode == "launchdarkly":
        send_feedback_to_launchdarkly(service.flags, record, body.kind)
    return FeedbackPublic(request_id=body.request_id, status=status)
