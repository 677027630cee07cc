"""Application settings: one pydantic-settings object, read from the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from utils.telemetry.store_faults import DEFAULT_LOCK_TIMEOUT_S
from utils.telemetry.store_url import StoreLocation, resolve_location

LLMMode = Literal["auto", "live", "simulated"]


class Settings(BaseSettings):
    """Every setting the app reads. Secrets are `SecretStr`, so they never print."""

    # An empty value (`EVENTS_DB=` in a copied .env.example) means "not set": use the default.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=True,
                                      env_ignore_empty=True)

    # LaunchDarkly
    LD_SDK_KEY: SecretStr | None = None
    LD_API_KEY: SecretStr | None = None
    LD_PROJECT_KEY: str = "multi-agent-chatbot"
    LD_ENVIRONMENT: str = "production"
    LD_BASE_URI: str = "https://sdk.launchdarkly.com"
    LD_STREAM_URI: str = "https://stream.launchdarkly.com"
    LD_EVENTS_URI: str = "https://events.launchdarkly.com"
    LD_API_BASE_URL: str = "https://app.launchdarkly.com"
    # Runs of simulated providers never reach LaunchDarkly unless this allows it; then each of
    # their events carries `simulated: true` (in its data and as a context attribute).
    LD_TRACK_SIMULATED: bool = False

    # Local state
    DATA_DIR: Path = Path("data")
    LOCAL_FLAGS_PATH: Path | None = None  # default: DATA_DIR/flags.json
    EVENTS_DB: Path | None = None  # default: DATA_DIR/events.db
    # The experiment definitions the API's verdicts (the UI's Experiments tab) and
    # tools.experiment_report read; default: bootstrap/experiments.yaml. The demo sets it to
    # the subset it drives (data/experiments.yaml).
    EXPERIMENTS_FILE: Path | None = None
    # sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB; wins over EVENTS_DB when set.
    EVENTS_URL: str | None = None
    # PostgreSQL: connections per process (the writer takes one per group commit, readers the
    # rest); with N workers the database sees up to N times this many.
    EVENTS_POOL_SIZE: int = Field(default=5, ge=1, le=200)
    KB_DIR: Path = Path("kb")
    PRICING_OVERRIDES_PATH: Path | None = None
    LOG_LEVEL: str = "INFO"

    # Models
    LLM_MODE: LLMMode = "auto"
    SIM_SEED: int = 42
    SIM_TIME_SCALE: float = Field(default=0.0, ge=0.0, le=1.0)
    OPENAI_API_KEY: SecretStr | None = None
    OPENAI_BASE_URL: str | None = None
    ANTHROPIC_API_KEY: SecretStr | None = None
    ANTHROPIC_BASE_URL: str | None = None
    MISTRAL_API_KEY: SecretStr | None = None
    MISTRAL_BASE_URL: str | None = None
    # OpenAI-compatible servers (OPENAI_BASE_URL set: Ollama, vLLM, llama.cpp or a proxy).
    # The token cap's field: auto = `max_tokens` with a base URL (local servers ignore
    # `max_completion_tokens`), OpenAI's `max_completion_tokens` without one.
    OPENAI_TOKEN_LIMIT_FIELD: Literal["auto", "max_tokens", "max_completion_tokens"] = "auto"
    # The model the server is asked for instead of the variation's: "gpt-4o=llama3.1:8b,
    # gpt-4o-mini=llama3.2:3b"; `*` maps every other model. Used only with OPENAI_BASE_URL.
    OPENAI_MODEL_MAP: str = ""
    # How runs served through OPENAI_BASE_URL are priced: `served` = by the model the server
    # ran, under its own name (unpriced unless PRICING_OVERRIDES_PATH prices it; a model not
    # in OPENAI_MODEL_MAP is unpriced, never at OpenAI's price); `openai` = at OpenAI's list
    # price of the variation's model (the URL is a proxy to OpenAI itself, e.g. Azure).
    OPENAI_BASE_URL_PRICING: Literal["served", "openai"] = "served"
    EMBEDDING_BACKEND: Literal["auto", "lsa", "openai", "sentence-transformers"] = "auto"

    # The traffic tools' live judge: auto = a keyed provider that serves neither arm of the
    # experiment being driven (else any keyed one); JUDGE_MODEL overrides its default model.
    JUDGE_PROVIDER: Literal["auto", "openai", "anthropic", "mistral"] = "auto"
    JUDGE_MODEL: str | None = None

    # Faults end cleanly: every wait is bounded, every input limited
    REQUEST_DEADLINE_S: float = Field(default=60.0, gt=0)  # one /chat end to end, else 504
    PROVIDER_TIMEOUT_S: float = Field(default=20.0, gt=0)  # one provider call (each attempt)
    PROVIDER_MAX_RETRIES: int = Field(default=1, ge=0, le=10)
    MAX_BODY_BYTES: int = Field(default=1_000_000, ge=1_024)  # larger request bodies get 413
    STORE_LOCK_TIMEOUT_S: float = Field(default=DEFAULT_LOCK_TIMEOUT_S, gt=0, le=60)  # then 503

    # Research tools (MCP servers); empty means "not configured"
    MCP_ARXIV_COMMAND: str = ""
    MCP_SEMANTIC_SCHOLAR_COMMAND: str = ""
    MCP_STARTUP_TIMEOUT_S: float = 10.0

    # Security agent: what to do when redaction itself fails
    PII_ON_ERROR: Literal["redact", "refuse"] = "redact"

    # user_context: attributes accepted beyond country/plan/region (comma-separated names),
    # and the longest value any attribute may have; anything else is refused with a 422
    USER_CONTEXT_ATTRIBUTES: str = ""
    USER_CONTEXT_MAX_CHARS: int = Field(default=64, ge=1, le=1024)

    # Admin endpoints refuse every call while this is unset
    ADMIN_TOKEN: SecretStr | None = None

    # OpenTelemetry traces (utils.telemetry.tracing): off unless an OTLP endpoint is set. The
    # SDK reads every other OTEL_* variable from the environment itself; these are declared
    # so that they also work from `.env`.
    OTEL_EXPORTER_OTLP_ENDPOINT: str = ""
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: str = ""
    OTEL_EXPORTER_OTLP_HEADERS: str = ""
    OTEL_SERVICE_NAME: str = ""  # default: multi-agent-experiments
    OTEL_SDK_DISABLED: str = ""
    OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: str = ""
    OTEL_SEMCONV_STABILITY_OPT_IN: str = ""

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        parse_model_map(self.OPENAI_MODEL_MAP)  # a malformed map fails at start-up
        if self.LOCAL_FLAGS_PATH is None:
            self.LOCAL_FLAGS_PATH = self.DATA_DIR / "flags.json"
        if self.EVENTS_DB is None:
            self.EVENTS_DB = self.DATA_DIR / "events.db"
        self.events_location  # noqa: B018 - a malformed EVENTS_URL fails at start-up
        return self

    @property
    def flags_path(self) -> Path:
        assert self.LOCAL_FLAGS_PATH is not None
        return self.LOCAL_FLAGS_PATH

    @property
    def events_db(self) -> Path:
        assert self.EVENTS_DB is not None
        return self.EVENTS_DB

    @property
    def events_location(self) -> StoreLocation:
        """The event store: EVENTS_URL when set, else the SQLite file EVENTS_DB."""
        return resolve_location(self.EVENTS_URL, self.events_db)

    @property
    def openai_model_map(self) -> dict[str, str]:
        """OPENAI_MODEL_MAP as {variation model: served model} ("*": every other model)."""
        return parse_model_map(self.OPENAI_MODEL_MAP)

    @property
    def user_context_attributes(self) -> frozenset[str]:
        """The extra user_context attribute names USER_CONTEXT_ATTRIBUTES allows."""
        return frozenset(n.strip() for n in self.USER_CONTEXT_ATTRIBUTES.split(",") if n.strip())

    @property
    def ld_mode(self) -> bool:
        """True when flags come from LaunchDarkly rather than the local flag file."""
        return bool(self.LD_SDK_KEY and self.LD_SDK_KEY.get_secret_value())


def parse_model_map(text: str) -> dict[str, str]:
    """`"gpt-4o=llama3.1:8b, *=qwen2.5"` → {"gpt-4o": "llama3.1:8b", "*": "qwen2.5"}."""
    mapping: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        asked, sep, served = (side.strip() for side in entry.partition("="))
        if not sep or not asked or not served:
            raise ValueError(f"OPENAI_MODEL_MAP entry {entry!r} is not `model=served-model`, "
                             "e.g. OPENAI_MODEL_MAP=gpt-4o=llama3.1:8b,*=llama3.1:8b")
        if asked in mapping:
            raise ValueError(f"OPENAI_MODEL_MAP maps {asked!r} twice")
        mapping[asked] = served
    return mapping


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests call `get_settings.cache_clear()` after changing env)."""
    return Settings()
