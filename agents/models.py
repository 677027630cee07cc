"""Chat-model factory: (provider, model, parameters) → a LangChain chat model, live or simulated."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel

from agents.simulated import SimulatedChatModel
from utils.providers import PROVIDER_NAMES, PROVIDERS
from utils.settings import Settings

log = logging.getLogger(__name__)

# Parameters a variation may set that every provider integration understands.
PASSED_PARAMETERS = ("temperature", "max_tokens", "top_p", "stop")
_REQUEST_TIMEOUT_S = 120
_MAX_RETRIES = 2
_CACHE_LIMIT = 256


class ProviderNotConfigured(RuntimeError):
    """LLM_MODE=live asks for a provider that has no API key or base URL."""


def provider_is_live(provider: str, settings: Settings) -> bool:
    """Whether calls to `provider` go to the real service (True) or the simulator (False)."""
    if settings.LLM_MODE == "simulated":
        return False
    configured = provider in PROVIDERS and bool(
        _secret(getattr(settings, PROVIDERS[provider].key_setting))
        # Any OpenAI-compatible server (Ollama, vLLM) may need no key, only its URL.
        or (provider == "openai" and settings.OPENAI_BASE_URL))
    if settings.LLM_MODE == "live" and not configured:
        raise ProviderNotConfigured(
            f"LLM_MODE=live but provider {provider!r} has no API key; set its key in .env "
            "or use LLM_MODE=auto to simulate providers without one"
        )
    return configured


def llm_mode_by_provider(settings: Settings) -> dict[str, str]:
    """'live' or 'simulated' per provider, for /health (a missing key in live mode says so)."""
    modes = {}
    for provider in PROVIDER_NAMES:
        try:
            modes[provider] = "live" if provider_is_live(provider, settings) else "simulated"
        except ProviderNotConfigured:
            modes[provider] = "missing key (LLM_MODE=live)"
    return modes


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def _model_kwargs(parameters: Mapping[str, Any]) -> dict[str, Any]:
    return {k: parameters[k] for k in PASSED_PARAMETERS if parameters.get(k) is not None}


def build_chat_model(provider: str, model: str, parameters: Mapping[str, Any],
                     settings: Settings, *, timeout_s: float | None = None) -> BaseChatModel:
    """A chat model for the variation's provider, model and parameters."""
    kwargs = _model_kwargs(parameters)
    if not provider_is_live(provider, settings):
        return SimulatedChatModel(
            model_name=model, provider=provider, seed=settings.SIM_SEED,
            time_scale=settings.SIM_TIME_SCALE, **kwargs,
        )
    # Streamed so that each run's time to first token can be measured (RunTimer); LangChain
    # still hands callers one AIMessage with its tool calls and token usage.
    common = {"timeout": timeout_s or _REQUEST_TIMEOUT_S, "max_retries": _MAX_RETRIES,
              "streaming": True, **kwargs}
    if provider == "openai":
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model=model, api_key=_secret(settings.OPENAI_API_KEY) or "not-needed",
                          base_url=settings.OPENAI_BASE_URL, stream_usage=True, **common)
    if provider == "anthropic":
        from langchain_anthropic import ChatAnthropic

        common.setdefault("max_tokens", 1024)  # Anthropic requires it
        return ChatAnthropic(model=model, api_key=_secret(settings.ANTHROPIC_API_KEY),
                             base_url=settings.ANTHROPIC_BASE_URL, **common)
    if provider == "mistral":
        from langchain_mistralai import ChatMistralAI

        return ChatMistralAI(model=model, api_key=_secret(settings.MISTRAL_API_KEY),
                             base_url=settings.MISTRAL_BASE_URL, **common)
    raise ValueError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDER_NAMES)}")


class ModelCache:
    """Chat models are immutable and hold HTTP clients: build each configuration once."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._models: dict[tuple, BaseChatModel] = {}
        self._lock = threading.Lock()

    def get(self, provider: str, model: str, parameters: Mapping[str, Any]) -> BaseChatModel:
        key = (provider, model, tuple(sorted((k, repr(v)) for k, v in
                                             _model_kwargs(parameters).items())))
        with self._lock:
            cached = self._models.get(key)
        if cached is not None:
            return cached
        built = build_chat_model(provider, model, parameters, self._settings)
        with self._lock:
            if len(self._models) >= _CACHE_LIMIT:
                self._models.pop(next(iter(self._models)))
            return self._models.setdefault(key, built)


def is_simulated(model: BaseChatModel) -> bool:
    return isinstance(model, SimulatedChatModel)
