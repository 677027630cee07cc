"""POST /chat: one message through supervisor, security and support."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from api.chat_service import ChatFailed
from api.deps import ServiceDep
from api.schemas import ChatRequest, ChatResponse

router = APIRouter(tags=["chat"])


@router.post("/chat", response_model=ChatResponse,
             responses={502: {"description": "a model provider failed"}})
async def create_chat(body: ChatRequest, service: ServiceDep) -> ChatResponse:
    """Answer a message as the user's AI Configs dictate, with per-agent measurements."""
    try:
        return await service.chat(body)
    except ChatFailed as exc:
        raise HTTPException(502, {"error": str(exc), "request_id": exc.request_id}) from exc
