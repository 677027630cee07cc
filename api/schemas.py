"""Request and response schemas of the HTTP API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from utils.privacy.detector import identifier_pii_types
from utils.settings import get_settings

MAX_MESSAGE_CHARS = 8_000
MAX_HISTORY_TURNS = 20
DECLARED_CONTEXT_ATTRIBUTES = ("country", "plan", "region")


def no_pii_in_key(value: str) -> str:
    """A user id becomes the LaunchDarkly context key and is stored with every row: no PII."""
    if not value.strip():
        raise ValueError("user_id must not be empty or whitespace")
    found = identifier_pii_types(value)
    if found:
        raise ValueError(f"user_id must not contain personal data (found {', '.join(found)}); "
                         "send a pseudonymous id instead")
    return value


class UserContext(BaseModel):
    """Targeting attributes of the user: the declared three plus USER_CONTEXT_ATTRIBUTES.

    Every value is a string, number or boolean of at most USER_CONTEXT_MAX_CHARS characters
    with no direct identifier in it; anything else is a 422 naming the attribute, so no
    free-form attribute reaches flag evaluation, LaunchDarkly or the store.
    """

    model_config = ConfigDict(extra="allow")

    country: str | None = Field(default=None, examples=["US"])
    plan: str | None = Field(default=None, examples=["paid"])
    region: str | None = None

    @model_validator(mode="after")
    def _allowed_attributes_only(self) -> UserContext:
        settings = get_settings()
        allowed = frozenset(DECLARED_CONTEXT_ATTRIBUTES) | settings.user_context_attributes
        unknown = sorted(set(self.model_extra or {}) - allowed)
        if unknown:
            raise ValueError(
                f"user_context attribute(s) not allowed: {', '.join(unknown)}; accepted: "
                f"{', '.join(sorted(allowed))} (add names to USER_CONTEXT_ATTRIBUTES)")
        for name, value in self.model_dump(exclude_none=True).items():
            if not isinstance(value, str | int | float | bool):
                raise ValueError(f"user_context.{name} must be a string, number or boolean")
            if len(str(value)) > settings.USER_CONTEXT_MAX_CHARS:
                raise ValueError(f"user_context.{name} is longer than "
                                 f"{settings.USER_CONTEXT_MAX_CHARS} characters")
            found = identifier_pii_types(value) if isinstance(value, str) else []
            if found:
                raise ValueError(f"user_context.{name} must not contain personal data "
                                 f"(found {', '.join(found)})")
        return self


class HistoryTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_MESSAGE_CHARS)


class ChatRequest(BaseModel):
    user_id: str = Field(min_length=1, max_length=200, examples=["u1"])
    message: str = Field(max_length=MAX_MESSAGE_CHARS, examples=["What is Q-learning?"])
    user_context: UserContext = Field(default_factory=UserContext)
    history: list[HistoryTurn] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS)

    @field_validator("message")
    @classmethod
    def _message_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message must not be empty or whitespace")
        return value

    @field_validator("user_id")
    @classmethod
    def _user_id_not_pii(cls, value: str) -> str:
        return no_pii_in_key(value)


class AgentRunPublic(BaseModel):
    agent: Literal["supervisor", "security", "support"]
    config_key: str
    variation_key: str
    model: str
    provider: str
    in_experiment: bool
    simulated: bool
    tools_used: list[str]
    input_tokens: int
    output_tokens: int
    total_tokens: int
    duration_ms: float
    time_to_first_token_ms: float | None = None
    cost_usd: float | None = Field(description="null when the model has no price in the table")
    success: bool
    error: str | None = None
    pii_types: list[str] | None = None
    redacted_text: str | None = Field(
        default=None, description="the text the support agent received (security only)")
    sources: list[str] | None = None


class Totals(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float | None
    duration_ms: float


class ChatResponse(BaseModel):
    request_id: str
    response: str
    simulated: bool
    route: Literal["security", "support"]
    refused: bool = False
    agents: list[AgentRunPublic]
    totals: Totals
    trace_id: str | None = Field(
        default=None, description="the OpenTelemetry trace of this request (tracing on)")


class FeedbackCreate(BaseModel):
    request_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    kind: Literal["positive", "negative"]
    source: Literal["real_user", "simulated"] = "real_user"

    @field_validator("user_id")
    @classmethod
    def _user_id_not_pii(cls, value: str) -> str:
        return no_pii_in_key(value)


class FeedbackPublic(BaseModel):
    request_id: str
    status: Literal["recorded", "duplicate"]
    trace_id: str | None = Field(
        default=None, description="the trace of the request this feedback is about")


class HealthPublic(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    flags: dict[str, Any]
    llm_mode: dict[str, str]
    tools: dict[str, str]
    events_db: str
    warnings: list[str]
