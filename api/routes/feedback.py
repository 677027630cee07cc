"""POST /feedback: a thumbs-up or -down, credited to the variations that served the request."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException

from api.deps import ServiceDep
from api.schemas import FeedbackCreate, FeedbackPublic
from utils.flags.client import build_context
from utils.telemetry.instrumentation import feedback_batch

router = APIRouter(tags=["feedback"])
log = logging.getLogger(__name__)


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
        _send_feedback_to_launchdarkly(service, record, body.kind)
    return FeedbackPublic(request_id=body.request_id, status=status)


def _send_feedback_to_launchdarkly(service, record, kind: str) -> None:
    """The AI SDK's feedback event for each variation served in the request (never raises)."""
    try:
        from ldai.tracker import FeedbackKind, LDAIConfigTracker

        context = build_context(record.user_key, record.context)
        feedback = {"kind": FeedbackKind.Positive if kind == "positive" else FeedbackKind.Negative}
        for exposure in record.exposures:
            tracker = LDAIConfigTracker(
                ld_client=service.flags.client, run_id=record.request_id,
                config_key=exposure["config_key"], variation_key=exposure["variation_key"],
                version=1, context=context, model_name="", provider_name="",
            )
            tracker.track_feedback(feedback)
    except Exception:
        log.exception("sending feedback to LaunchDarkly failed for %s", record.request_id)
