"""Request and response schemas of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pycountry
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from agents.tools.registry import KNOWN_TOOLS
from utils.flags.overrides import OverrideError, check_overrides
from utils.privacy.detector import identifier_pii_types
from utils.settings import get_settings

MAX_MESSAGE_CHARS = 8_000
MAX_HISTORY_TURNS = 20
DECLARED_CONTEXT_ATTRIBUTES = ("country", "plan", "region")
MAX_CONTEXT_ATTRIBUTES = 20  # extra targeting attributes per user context
MAX_ATTRIBUTE_NAME_CHARS = 64
MAX_ATTRIBUTE_ITEMS = 20
EXPERIMENT_LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"  # stored and shown as a label


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


def no_pii_in_key(value: str) -> str:
    """A user id becomes the LaunchDarkly context key and is stored with every row: no PII."""
    if not value.strip():
        raise ValueError("user_id must not be empty or whitespace")
    found = identifier_pii_types(value)
    if found:
        raise ValueError(f"user_id must not contain personal data (found {', '.join(found)}); "
                         "send a pseudonymous id instead")
    return value


def _check_attribute(name: str, value: Any, max_chars: int) -> None:
    """One targeting attribute: a bounded string, number, boolean or list of them, valid
    Unicode, with no direct identifier in it."""
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
            if len(item) > max_chars:
                raise ValueError(f"user_context.{name} is longer than {max_chars} characters")
            try:
                _valid_unicode(item)
            except ValueError as exc:
                raise ValueError(f"attribute {name!r} {exc}") from None
            found = identifier_pii_types(item)
            if found:
                raise ValueError(f"user_context.{name} must not contain personal data "
                                 f"(found {', '.join(found)})")


class UserContext(BaseModel):
    """Targeting attributes of the user: the declared three plus USER_CONTEXT_ATTRIBUTES.

    `country` is an ISO 3166-1 alpha-2 code in any case (`"de"` is `"DE"`). Every value is a
    string, number, boolean (or a short list of them) of at most USER_CONTEXT_MAX_CHARS
    characters with no direct identifier in it; anything else is a 422 naming the attribute, so
    no free-form attribute reaches flag evaluation, LaunchDarkly or the store.
    """

    model_config = ConfigDict(extra="allow")

    country: Text | None = Field(default=None, examples=["US"],
                                 description="ISO 3166-1 alpha-2 code, any case")
    plan: Text | None = Field(default=None, examples=["paid"])
    region: Text | None = None

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
    def _allowed_attributes_only(self) -> UserContext:
        settings = get_settings()
        extras = self.model_extra or {}
        if len(extras) > MAX_CONTEXT_ATTRIBUTES:
            raise ValueError(f"user_context has more than {MAX_CONTEXT_ATTRIBUTES} extra "
                             "attributes")
        for name, value in extras.items():  # invalid Unicode first: it cannot even be named
            _valid_unicode(name)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    try:
                        _valid_unicode(item)
                    except ValueError as exc:
                        raise ValueError(f"attribute {name!r} {exc}") from None
        allowed = frozenset(DECLARED_CONTEXT_ATTRIBUTES) | settings.user_context_attributes
        unknown = sorted(set(extras) - allowed)
        if unknown:
            shown = ", ".join(name[:MAX_ATTRIBUTE_NAME_CHARS] for name in unknown[:5])
            raise ValueError(
                f"user_context attribute(s) not allowed: {shown}; accepted: "
                f"{', '.join(sorted(allowed))} (add names to USER_CONTEXT_ATTRIBUTES)")
        for name, value in self.model_dump(exclude_none=True).items():
            _check_attribute(name, value, settings.USER_CONTEXT_MAX_CHARS)
        return self


class HistoryTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: Text = Field(max_length=MAX_MESSAGE_CHARS)


class ChatExperiment(BaseModel):
    """An outside evaluation's variant: per-step overrides, the run marked (admin token only)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200, pattern=EXPERIMENT_LABEL_PATTERN)
    variant: str = Field(min_length=1, max_length=200, pattern=EXPERIMENT_LABEL_PATTERN)
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("overrides", mode="before")
    @classmethod
    def _checked(cls, value: Any) -> dict[str, dict[str, Any]]:
        try:
            return check_overrides(value, known_tools=KNOWN_TOOLS)
        except OverrideError as exc:
            raise ValueError(str(exc)) from None


class ChatRequest(BaseModel):
    user_id: Text = Field(min_length=1, max_length=200, examples=["u1"])
    message: Text = Field(max_length=MAX_MESSAGE_CHARS, examples=["What is Q-learning?"])
    user_context: UserContext = Field(default_factory=UserContext)
    history: list[HistoryTurn] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS)
    experiment: ChatExperiment | None = Field(
        default=None, description="an evaluation harness's variant (requires X-Admin-Token): "
        "{STEP: {param: value}} applied before each model call; the run is marked and never "
        "enters online verdicts or reaches LaunchDarkly")

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


class GraphRunPublic(BaseModel):
    """The Agent Graph variation a request ran and the path it took through it."""

    key: str
    variation_key: str
    fell_back: bool = Field(description="the served variation was refused: the built-in "
                            "detector-routed topology ran instead")
    path: list[str] = Field(description="agent config keys, in the order they ran")
    handoffs: list[list[str]] = Field(description="[source, target] config-key pairs")


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
    graph: GraphRunPublic | None = None


class FeedbackCreate(BaseModel):
    request_id: Text = Field(min_length=1, max_length=200)
    user_id: Text = Field(min_length=1, max_length=200)
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
    reasons: list[str] = Field(description="why the status is degraded; empty when ok")
    version: str
    flags: dict[str, Any]
    llm_mode: dict[str, str]
    tools: dict[str, str]
    events_db: str
    warnings: list[str]
    pid: int = Field(description="the worker process that answered (uvicorn --workers N)")


class OfflineRunRequest(BaseModel):
    """POST /offline-experiments/{key}/runs: which variant to run, how many at once."""

    model_config = ConfigDict(extra="forbid")

    variant: str = Field(default="baseline", min_length=1, max_length=64,
                         description="`baseline` or the name of a variant")
    concurrency: int | None = Field(default=None, ge=1, le=64, description="runs in flight "
                                    "at once (default: the command line's)")
