"""The chat model the traffic tools use live (topic extraction, the LLM judge).

It is built by the app's own model factory, so a provider's key, base URL and integration are
configured in one place; these tools only choose which keyed provider to ask.
"""

from __future__ import annotations

from typing import Any

from agents.models import build_chat_model, provider_is_live
from utils.settings import Settings

# The small, cheap model each provider offers for judging and extraction, in order of choice.
LIVE_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}


def live_provider(settings: Settings) -> str | None:
    """The first provider of LIVE_MODELS that has a real key, or None (then tools run offline)."""
    for provider in LIVE_MODELS:
        key = getattr(settings, f"{provider.upper()}_API_KEY")
        if key is not None and key.get_secret_value() and settings.LLM_MODE != "simulated":
            return provider
    return None


def make_chat_model(provider: str, settings: Settings, timeout_s: float) -> Any:
    """A live chat model of `provider` at temperature 0."""
    if provider not in LIVE_MODELS:
        raise ValueError(f"unknown provider {provider!r} for the traffic tools; "
                         f"use one of {', '.join(LIVE_MODELS)}")
    if not provider_is_live(provider, settings):
        raise ValueError(f"provider {provider!r} has no API key; set it in .env")
    return build_chat_model(provider, LIVE_MODELS[provider], {"temperature": 0}, settings,
                            timeout_s=timeout_s)
