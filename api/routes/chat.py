"""POST /chat: one message through supervisor, security and support."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from api.chat_service import ChatFailed
from api.deps import ServiceDep
from api.schemas import ChatRequest, ChatResponse
from utils.telemetry import tracing

router = APIRouter(tags=["chat"])


@router.post("/chat", response_model=ChatResponse,
             responses={502: {"description": "a model provider failed"}})
async def create_chat(body: ChatRequest, request: Request,
                      service: ServiceDep) -> ChatResponse:
    """Answer a message as the user's AI Configs dictate, with per-agent measurements."""
    with tracing.server_span("POST", "/chat", request.headers) as span:
        try:
            response = await service.chat(body)
        except ChatFailed as exc:
            tracing.finish_server_span(span, 502, exc.request_id)
            raise HTTPException(502, {"error": str(exc), "request_id": exc.request_id}) from exc
        tracing.finish_server_span(span, 200, response.request_id)
        return response
