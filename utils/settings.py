"""Application settings: one pydantic-settings object, read from the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    EMBEDDING_BACKEND: Literal["auto", "lsa", "openai", "sentence-transformers"] = "auto"

    # Research tools (MCP servers); empty means "not configured"
    MCP_ARXIV_COMMAND: str = ""
    MCP_SEMANTIC_SCHOLAR_COMMAND: str = ""
    MCP_STARTUP_TIMEOUT_S: float = 10.0

    # Security agent: what to do when redaction itself fails
    PII_ON_ERROR: Literal["redact", "refuse"] = "redact"

    # Admin endpoints refuse every call while this is unset
    ADMIN_TOKEN: SecretStr | None = None

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        if self.LOCAL_FLAGS_PATH is None:
            self.LOCAL_FLAGS_PATH = self.DATA_DIR / "flags.json"
        if self.EVENTS_DB is None:
            self.EVENTS_DB = self.DATA_DIR / "events.db"
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
    def ld_mode(self) -> bool:
        """True when flags come from LaunchDarkly rather than the local flag file."""
        return bool(self.LD_SDK_KEY and self.LD_SDK_KEY.get_secret_value())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests call `get_settings.cache_clear()` after changing env)."""
    return Settings()
