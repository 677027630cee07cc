"""POST /feedback: a thumbs-up or -down, credited to the variations that served the request."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request

from api.deps import ServiceDep
from api.schemas import FeedbackCreate, FeedbackPublic
from utils.telemetry import tracing
from utils.telemetry.event_store import RequestRecord
from utils.telemetry.instrumentation import feedback_batch, send_feedback_to_launchdarkly

router = APIRouter(tags=["feedback"])


@router.post("/feedback", response_model=FeedbackPublic)
async def create_feedback(body: FeedbackCreate, request: Request,
                          service: ServiceDep) -> FeedbackPublic:
    """Record feedback once per request; a repeat is acknowledged as a duplicate.

    With tracing on, its span links to the trace of the request it is about.
    """
    record = await asyncio.to_thread(service.store.get_request, body.request_id)
    with tracing.server_span("POST", "/feedback", request.headers, _links(record)) as span:
        if record is None:
            tracing.finish_server_span(span, 404)
            raise HTTPException(404, f"unknown request_id {body.request_id!r}")
        if record.user_key != body.user_id:
            tracing.finish_server_span(span, 422)
            raise HTTPException(422, [{"loc": ["body", "user_id"], "type": "value_error",
                                       "msg": "user_id does not match the user of this request"}])
        status = await service.store.write(feedback_batch(
            body.request_id, body.user_id, body.kind, body.source, record.exposures))
        if status == "recorded" and service.flags.mode == "launchdarkly":
            send_feedback_to_launchdarkly(service.flags.client, record, body.kind)
        tracing.finish_server_span(span, 200, body.request_id, **{
            "feedback.kind": body.kind, "feedback.status": status,
            "feedback.trace_id": record.trace_id})
        return FeedbackPublic(request_id=body.request_id, status=status,
                              trace_id=record.trace_id)


def _links(record: RequestRecord | None) -> list[tuple[str, str]]:
    if record is None or not record.trace_id or not record.span_id:
        return []
    return [(record.trace_id, record.span_id)]
