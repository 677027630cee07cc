"""Request and response schemas of the HTTP API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_MESSAGE_CHARS = 8_000
MAX_HISTORY_TURNS = 20


class UserContext(BaseModel):
    """Targeting attributes of the user; any extra attribute is passed to flag evaluation."""

    model_config = ConfigDict(extra="allow")

    country: str | None = Field(default=None, examples=["US"])
    plan: str | None = Field(default=None, examples=["paid"])
    region: str | None = None


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
    def _user_id_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("user_id must not be empty or whitespace")
        return value


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
