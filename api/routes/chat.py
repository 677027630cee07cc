"""POST /chat: one message through supervisor, security and support."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from api.chat_service import ChatFailed
from api.deps import ServiceDep
from api.schemas import ChatRequest, ChatResponse
from utils.telemetry import tracing
from utils.telemetry.store_faults import StoreUnavailable

router = APIRouter(tags=["chat"])


@router.post("/chat", response_model=ChatResponse, responses={
    413: {"description": "the request body is larger than MAX_BODY_BYTES"},
    502: {"description": "a model provider failed (the failed run is recorded)"},
    503: {"description": "the event store cannot record the request (the reason is given)"},
    504: {"description": "the request ran past REQUEST_DEADLINE_S (recorded as an error)"}})
async def create_chat(body: ChatRequest, request: Request,
                      service: ServiceDep) -> ChatResponse:
    """Answer a message as the user's AI Configs dictate, with per-agent measurements."""
    with tracing.server_span("POST", "/chat", request.headers) as span:
        try:
            response = await service.chat(body)
        except ChatFailed as exc:
            tracing.finish_server_span(span, exc.status_code, exc.request_id)
            raise HTTPException(exc.status_code,
                                {"error": str(exc), "request_id": exc.request_id}) from exc
        except StoreUnavailable as exc:
            tracing.finish_server_span(span, 503, None)
            raise HTTPException(503, {"error": str(exc)}) from exc
        tracing.finish_server_span(span, 200, response.request_id)
        return response
