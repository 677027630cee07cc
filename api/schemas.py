"""Request and response schemas of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pycountry
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_MESSAGE_CHARS = 8_000
MAX_HISTORY_TURNS = 20
MAX_CONTEXT_ATTRIBUTES = 20  # extra targeting attributes per user context
MAX_ATTRIBUTE_NAME_CHARS = 64
MAX_ATTRIBUTE_CHARS = 200  # a string attribute value, or one item of a list attribute
MAX_ATTRIBUTE_ITEMS = 20


def _valid_unicode(value: str) -> str:
    """Reject lone UTF-16 surrogates (`"\\ud800"` in JSON): they cannot be stored or sent on.

    Pydantic rejects them in some string fields (length-constrained ones), not in all.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"contains invalid Unicode (a lone UTF-16 surrogate at position "
                         f"{exc.start})") from None
    return value


Text = Annotated[str, AfterValidator(_valid_unicode)]


def _check_attribute(name: str, value: Any) -> None:
    if len(name) > MAX_ATTRIBUTE_NAME_CHARS:
        raise ValueError(f"attribute names have at most {MAX_ATTRIBUTE_NAME_CHARS} characters")
    _valid_unicode(name)
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and len(value) > MAX_ATTRIBUTE_ITEMS:
        raise ValueError(f"attribute {name!r} has more than {MAX_ATTRIBUTE_ITEMS} items")
    for item in items:
        if item is not None and not isinstance(item, str | int | float | bool):
            raise ValueError(f"attribute {name!r} must be a string, number, boolean or a list "
                             "of them")
        if isinstance(item, str):
            if len(item) > MAX_ATTRIBUTE_CHARS:
                raise ValueError(f"attribute {name!r} is longer than {MAX_ATTRIBUTE_CHARS} "
                                 "characters")
            try:
                _valid_unicode(item)
            except ValueError as exc:
                raise ValueError(f"attribute {name!r} {exc}") from None


class UserContext(BaseModel):
    """Targeting attributes of the user; any extra attribute is passed to flag evaluation.

    `country` is an ISO 3166-1 alpha-2 code in any case (`"de"` is `"DE"`); extra attributes
    are bounded in number and size, since each is evaluated (and only declared ones stored).
    """

    model_config = ConfigDict(extra="allow")

    country: Text | None = Field(default=None, examples=["US"],
                                 description="ISO 3166-1 alpha-2 code, any case")
    plan: Text | None = Field(default=None, max_length=MAX_ATTRIBUTE_CHARS, examples=["paid"])
    region: Text | None = Field(default=None, max_length=MAX_ATTRIBUTE_CHARS)

    @field_validator("country")
    @classmethod
    def _iso_country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
            raise ValueError("country must be an ISO 3166-1 alpha-2 code such as DE or US, "
                             "not a name")
        return code

    @model_validator(mode="after")
    def _bounded_extras(self) -> UserContext:
        extras = self.model_extra or {}
        if len(extras) > MAX_CONTEXT_ATTRIBUTES:
            raise ValueError(f"user_context has more than {MAX_CONTEXT_ATTRIBUTES} extra "
                             "attributes")
        for name, value in extras.items():
            _check_attribute(name, value)
        return self


class HistoryTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: Text = Field(max_length=MAX_MESSAGE_CHARS)


class ChatRequest(BaseModel):
    user_id: Text = Field(min_length=1, max_length=200, examples=["u1"])
    message: Text = Field(max_length=MAX_MESSAGE_CHARS, examples=["What is Q-learning?"])
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


class FeedbackCreate(BaseModel):
    request_id: Text = Field(min_length=1, max_length=200)
    user_id: Text = Field(min_length=1, max_length=200)
    kind: Literal["positive", "negative"]
    source: Literal["real_user", "simulated"] = "real_user"


class FeedbackPublic(BaseModel):
    request_id: str
    status: Literal["recorded", "duplicate"]


class HealthPublic(BaseModel):
    status: Literal["ok", "degraded"]
    reasons: list[str] = Field(description="why the status is degraded; empty when ok")
    version: str
    flags: dict[str, Any]
    llm_mode: dict[str, str]
    tools: dict[str, str]
    events_db: str
    warnings: list[str]
