"""The providers table: parameter names, the OpenAI-compatible model map and its pricing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from utils.providers import PARAMETER_NAMES, PROVIDERS, priced_model, served_model
from utils.settings import Settings, parse_model_map


def test_every_provider_takes_only_known_parameters():
    canonical = set(PARAMETER_NAMES.values())
    for provider in PROVIDERS.values():
        assert set(provider.parameters) <= canonical, provider.name
        assert {"temperature", "max_tokens", "top_p", "stop"} <= set(provider.parameters)


@pytest.mark.parametrize("ui_name, canonical", [
    ("maxTokens", "max_tokens"), ("topP", "top_p"), ("topK", "top_k"),
    ("stopSequences", "stop"), ("frequencyPenalty", "frequency_penalty"),
    ("presencePenalty", "presence_penalty"), ("max_tokens", "max_tokens")])
def test_launchdarkly_ui_names_map_to_one_name(ui_name, canonical):
    assert PARAMETER_NAMES[ui_name] == canonical


def test_model_map_parses_and_rejects_malformed_entries():
    assert parse_model_map(" gpt-4o = llama3.1:8b , *=qwen2.5:7b ") == \
        {"gpt-4o": "llama3.1:8b", "*": "qwen2.5:7b"}
    assert parse_model_map("") == {}
    for bad in ("gpt-4o", "gpt-4o=", "=llama3", "a=b,a=c"):
        with pytest.raises(ValueError, match="OPENAI_MODEL_MAP"):
            parse_model_map(bad)
    with pytest.raises(ValidationError, match="OPENAI_MODEL_MAP entry 'gpt-4o'"):
        Settings(OPENAI_MODEL_MAP="gpt-4o")


def _settings(**fields) -> Settings:
    return Settings(_env_file=None, **fields)


def test_the_map_applies_only_to_an_openai_compatible_server():
    mapped = _settings(OPENAI_BASE_URL="http://localhost:11434/v1",
                       OPENAI_MODEL_MAP="gpt-4o=llama3.1:8b,*=llama3.2:3b")
    assert served_model("openai", "gpt-4o", mapped) == "llama3.1:8b"
    assert served_model("openai", "gpt-4o-mini", mapped) == "llama3.2:3b"  # the * entry
    assert served_model("anthropic", "claude-haiku-4-5", mapped) == "claude-haiku-4-5"
    no_url = _settings(OPENAI_MODEL_MAP="gpt-4o=llama3.1:8b")
    assert served_model("openai", "gpt-4o", no_url) == "gpt-4o"


def test_local_runs_are_never_priced_as_the_vendor_model():
    local = _settings(OPENAI_BASE_URL="http://localhost:8080/v1",
                      OPENAI_MODEL_MAP="gpt-4o=llama3.1:8b")
    assert priced_model("openai", "gpt-4o", local) == "llama3.1:8b"  # priced only if declared
    assert priced_model("openai", "gpt-4o-mini", local) is None  # unmapped: a vendor name
    proxy = _settings(OPENAI_BASE_URL="https://my-proxy/v1", OPENAI_BASE_URL_PRICING="openai")
    assert priced_model("openai", "gpt-4o", proxy) == "gpt-4o"
    assert priced_model("openai", "gpt-4o", _settings()) == "gpt-4o"  # OpenAI itself
    assert priced_model("mistral", "mistral-small-latest", local) == "mistral-small-latest"
