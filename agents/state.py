"""The graph's state: what flows between the supervisor, security and support nodes."""

from __future__ import annotations

from typing import Literal, TypedDict

Route = Literal["security", "support"]


class Turn(TypedDict):
    role: Literal["user", "assistant"]
    content: str


class ChatState(TypedDict, total=False):
    message: str  # as the user sent it; only the security node reads it after routing
    history: list[Turn]
    route: Route
    safe_message: str  # what the support agent may read
    safe_history: list[Turn]
    response: str
    refused: bool
