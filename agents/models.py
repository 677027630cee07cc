"""Chat-model factory: (provider, model, parameters) → a LangChain chat model, live or simulated."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel

from agents.simulated import SimulatedChatModel
from agents.stream_check import COMPLETE_REPLY_CHECK
from utils.providers import PARAMETER_NAMES, PROVIDER_NAMES, PROVIDERS, served_model
from utils.settings import Settings

log = logging.getLogger(__name__)

# What the simulator models of a variation's parameters (the rest change nothing it does).
_SIMULATED_PARAMETERS = ("temperature", "max_tokens")
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


_reported: set[tuple[str, str]] = set()
_reported_lock = threading.Lock()


def _report_once(provider: str, name: str, why: str) -> None:
    with _reported_lock:
        if (provider, name) in _reported:
            return
        _reported.add((provider, name))
    log.warning("model parameter %r is %s; it is not sent to %s", name, why, provider)


def model_parameters(provider: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A variation's parameters as `provider`'s LangChain keywords.

    LaunchDarkly's camelCase (`maxTokens`, `topP`) and snake_case both map to the one name in
    `utils.providers.PARAMETER_NAMES`; a parameter that is unknown, or that this provider's
    API does not take, is logged once per provider and name, never sent and never silent.
    """
    accepted = PROVIDERS[provider].parameters if provider in PROVIDERS else {}
    kwargs: dict[str, Any] = {}
    for name, value in parameters.items():
        if value is None or name == "tools":  # tools are bound by the agents, not here
            continue
        canonical = PARAMETER_NAMES.get(name)
        if canonical is None:
            _report_once(provider, name, "unknown (known: " + ", ".join(
                sorted(set(PARAMETER_NAMES.values()))) + ")")
        elif canonical not in accepted:
            _report_once(provider, name, f"not taken by {provider}'s API")
        else:
            kwargs[accepted[canonical]] = value
    return kwargs


def build_chat_model(provider: str, model: str, parameters: Mapping[str, Any],
                     settings: Settings, *, timeout_s: float | None = None) -> BaseChatModel:
    """A chat model for the variation's provider, model and parameters."""
    kwargs = model_parameters(provider, parameters)
    if not provider_is_live(provider, settings):
        return SimulatedChatModel(
            model_name=model, provider=provider, seed=settings.SIM_SEED,
            time_scale=settings.SIM_TIME_SCALE,
            **{k: v for k, v in kwargs.items() if k in _SIMULATED_PARAMETERS},
        )
    # Streamed so that each run's time to first token can be measured (RunTimer); LangChain
    # still hands callers one AIMessage with its tool calls and token usage.
    common = {"timeout": timeout_s or settings.PROVIDER_TIMEOUT_S,
              "max_retries": settings.PROVIDER_MAX_RETRIES, "streaming": True,
              "callbacks": [COMPLETE_REPLY_CHECK], **kwargs}
    if provider == "openai":
        from langchain_openai import ChatOpenAI

        if _token_limit_field(settings) == "max_tokens" and "max_tokens" in common:
            # ChatOpenAI always sends `max_completion_tokens`, which Ollama and llama.cpp
            # ignore; `extra_body` puts the cap on the wire under the name they read.
            common["extra_body"] = {"max_tokens": common.pop("max_tokens")}
        return ChatOpenAI(model=served_model(provider, model, settings),
                          api_key=_secret(settings.OPENAI_API_KEY) or "not-needed",
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


def _token_limit_field(settings: Settings) -> str:
    """The request field of an OpenAI-protocol token cap (setting OPENAI_TOKEN_LIMIT_FIELD)."""
    if settings.OPENAI_TOKEN_LIMIT_FIELD != "auto":
        return settings.OPENAI_TOKEN_LIMIT_FIELD
    return "max_tokens" if settings.OPENAI_BASE_URL else "max_completion_tokens"


class ModelCache:
    """Chat models are immutable and hold HTTP clients: build each configuration once."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._models: dict[tuple, BaseChatModel] = {}
        self._lock = threading.Lock()

    def get(self, provider: str, model: str, parameters: Mapping[str, Any]) -> BaseChatModel:
        key = (provider, model, tuple(sorted((k, repr(v)) for k, v in
                                             model_parameters(provider, parameters).items())))
        with self._lock:
            cached = self._models.get(key)
        if cached is not None:
            return cached
        built = build_chat_model(provider, model, parameters, self._settings)
        with self._lock:
            if len(self._models) >= _CACHE_LIMIT:
                self._models.pop(next(iter(self._models)))
            return self._models.setdefault(key, built)
