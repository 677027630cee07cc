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


def check_admin(settings: Settings, token: str | None, *, missing_status: int = 403,
                what: str = "admin endpoints") -> None:
    """Raise unless `token` is the ADMIN_TOKEN; a missing header answers `missing_status`."""
    expected = settings.ADMIN_TOKEN
    if expected is None or not expected.get_secret_value():
        raise HTTPException(403, f"{what} are disabled: set ADMIN_TOKEN to enable them")
    if token is None:
        raise HTTPException(missing_status, f"{what} need the X-Admin-Token header")
    if not secrets.compare_digest(token.encode(), expected.get_secret_value().encode()):
        raise HTTPException(403, "wrong X-Admin-Token header")


def require_admin(request: Request,
                  x_admin_token: Annotated[str | None, Header()] = None) -> None:
    check_admin(request.app.state.service.settings, x_admin_token)


ServiceDep = Annotated[ChatService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
AdminDep = Annotated[None, Depends(require_admin)]
