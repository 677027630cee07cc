"""FastAPI dependencies as `Annotated` aliases."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from api.chat_service import ChatService
from utils.settings import Settings


def get_service(request: Request) -> ChatService:
    return request.app.state.service


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def require_admin(request: Request,
                  x_admin_token: Annotated[str | None, Header()] = None) -> None:
    expected = request.app.state.service.settings.ADMIN_TOKEN
    if expected is None or not expected.get_secret_value():
        raise HTTPException(403, "admin endpoints are disabled: set ADMIN_TOKEN to enable them")
    if x_admin_token is None or not secrets.compare_digest(
            x_admin_token.encode(), expected.get_secret_value().encode()):
        raise HTTPException(403, "missing or wrong X-Admin-Token header")


ServiceDep = Annotated[ChatService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
AdminDep = Annotated[None, Depends(require_admin)]
