"""POST /chat: one message through supervisor, security and support."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from api.chat_service import ChatFailed
from api.deps import ServiceDep, check_admin
from api.schemas import ChatRequest, ChatResponse
from utils.flags.overrides import ConfigOverrides
from utils.telemetry import tracing
from utils.telemetry.store_faults import StoreUnavailable
from utils.telemetry.store_schema import RunMark

router = APIRouter(tags=["chat"])


@router.post("/chat", response_model=ChatResponse, responses={
    413: {"description": "the request body is larger than MAX_BODY_BYTES"},
    502: {"description": "a model provider failed (the failed run is recorded)"},
    503: {"description": "the event store cannot record the request (the reason is given)"},
    504: {"description": "the request ran past REQUEST_DEADLINE_S (recorded as an error)"},
    401: {"description": "`experiment` without the X-Admin-Token header"},
    403: {"description": "`experiment` with a wrong X-Admin-Token, or ADMIN_TOKEN unset"}})
async def create_chat(body: ChatRequest, request: Request,
                      service: ServiceDep) -> ChatResponse:
    """Answer a message as the user's AI Configs dictate, with per-agent measurements.

    With `experiment` (admin token only) the overrides apply per step before each model call
    and the run is marked: it never enters online verdicts nor reaches LaunchDarkly."""
    experiment = body.experiment
    if experiment is not None:
        check_admin(service.settings, request.headers.get("x-admin-token"),
                    missing_status=401, what="experiment overrides")
    with tracing.server_span("POST", "/chat", request.headers) as span:
        try:
            if experiment is None:
                response = await service.chat(body)
            else:
                response = (await service.run(
                    body, overrides=ConfigOverrides(f"{experiment.id}/{experiment.variant}",
                                                    experiment.overrides),
                    mark=RunMark(experiment.id, experiment.variant, source="api"))).response
        except ChatFailed as exc:
            tracing.finish_server_span(span, exc.status_code, exc.request_id)
            raise HTTPException(exc.status_code,
                                {"error": str(exc), "request_id": exc.request_id}) from exc
        except StoreUnavailable as exc:
            tracing.finish_server_span(span, 503, None)
            raise HTTPException(503, {"error": str(exc)}) from exc
        tracing.finish_server_span(span, 200, response.request_id)
        return response
