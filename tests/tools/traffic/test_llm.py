"""tools.traffic.llm: which keyed provider the traffic tools ask, through the app's factory."""

from __future__ import annotations

import pytest

from tools.traffic.llm import live_provider, make_chat_model
from utils.settings import Settings


def test_no_key_means_offline() -> None:
    assert live_provider(Settings(LLM_MODE="auto")) is None


def test_openai_is_preferred_then_anthropic() -> None:
    assert live_provider(Settings(ANTHROPIC_API_KEY="sk-ant", OPENAI_API_KEY="sk", LLM_MODE="auto")) == "openai"
    assert live_provider(Settings(ANTHROPIC_API_KEY="sk-ant", LLM_MODE="auto")) == "anthropic"


def test_simulated_mode_never_goes_live() -> None:
    assert live_provider(Settings(OPENAI_API_KEY="sk", LLM_MODE="simulated")) is None


def test_live_model_is_the_apps_own_at_temperature_zero_with_the_timeout() -> None:
    model = make_chat_model("openai", Settings(OPENAI_API_KEY="sk", LLM_MODE="auto"), timeout_s=7)
    assert type(model).__name__ == "ChatOpenAI"
    assert (model.model_name, model.temperature, model.request_timeout) == ("gpt-4o-mini", 0, 7)


def test_unknown_or_unkeyed_provider_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown provider 'cohere'"):
        make_chat_model("cohere", Settings(), timeout_s=1)
    with pytest.raises(ValueError, match="has no API key"):
        make_chat_model("anthropic", Settings(), timeout_s=1)
