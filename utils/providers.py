"""Model providers and the models this project configures: the one table of both.

Everything that names a provider (the flag layer's validation, the chat-model factory, the
manifest's model check, the LaunchDarkly model-config keys, /health) reads it from here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# Model parameters by the names a variation may give them → the one name used here. The
# LaunchDarkly UI writes camelCase (`maxTokens`, `topP`); the manifest writes snake_case.
log = logging.getLogger(__name__)

PARAMETER_NAMES: Mapping[str, str] = MappingProxyType({
    "temperature": "temperature",
    "max_tokens": "max_tokens", "maxTokens": "max_tokens",
    "max_completion_tokens": "max_tokens", "maxCompletionTokens": "max_tokens",
    "max_output_tokens": "max_tokens", "maxOutputTokens": "max_tokens",
    "top_p": "top_p", "topP": "top_p",
    "top_k": "top_k", "topK": "top_k",
    "stop": "stop", "stop_sequences": "stop", "stopSequences": "stop",
    "frequency_penalty": "frequency_penalty", "frequencyPenalty": "frequency_penalty",
    "presence_penalty": "presence_penalty", "presencePenalty": "presence_penalty",
    "seed": "seed", "random_seed": "seed", "randomSeed": "seed",
})
_COMMON_PARAMETERS = {"temperature": "temperature", "max_tokens": "max_tokens",
                      "top_p": "top_p", "stop": "stop"}


@dataclass(frozen=True)
class Provider:
    """A model provider: its name in AI Configs, its LaunchDarkly label, and its settings."""

    name: str  # as an AI Config variation names it (`provider.name`)
    label: str  # LaunchDarkly's spelling, the prefix of a model-config key ("OpenAI.gpt-4o")
    key_setting: str  # the Settings field holding its API key
    base_url_setting: str  # the Settings field holding an alternative endpoint
    aliases: tuple[str, ...] = ()  # other names a served variation may use for it
    # The parameters (PARAMETER_NAMES values) its API takes → its LangChain keyword for each.
    parameters: Mapping[str, str] = field(default_factory=lambda: dict(_COMMON_PARAMETERS))


PROVIDERS: dict[str, Provider] = {p.name: p for p in (
    Provider("openai", "OpenAI", "OPENAI_API_KEY", "OPENAI_BASE_URL", ("azure_openai",),
             {**_COMMON_PARAMETERS, "frequency_penalty": "frequency_penalty",
              "presence_penalty": "presence_penalty", "seed": "seed"}),
    Provider("anthropic", "Anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", ("bedrock",),
             {**_COMMON_PARAMETERS, "top_k": "top_k"}),
    # Mistral's API takes the penalties too; ChatMistralAI sends unknown keywords as they are.
    Provider("mistral", "Mistral", "MISTRAL_API_KEY", "MISTRAL_BASE_URL", ("mistralai",),
             {**_COMMON_PARAMETERS, "frequency_penalty": "frequency_penalty",
              "presence_penalty": "presence_penalty", "seed": "random_seed"}),
)}
PROVIDER_NAMES: tuple[str, ...] = tuple(PROVIDERS)

_ALIASES = {alias: p.name for p in PROVIDERS.values() for alias in p.aliases}

# The models variations may name (each priced in utils/telemetry/pricing.json), by provider.
MODEL_PROVIDERS: dict[str, str] = {
    "gpt-4o": "openai",
    "gpt-4o-mini": "openai",
    "claude-sonnet-4-5": "anthropic",
    "claude-haiku-4-5": "anthropic",
    "claude-opus-4-1": "anthropic",
    "mistral-small-latest": "mistral",
}


def normalise_provider(name: str | None) -> str:
    """The canonical provider name for `name` (case and known aliases folded)."""
    folded = (name or "").strip().lower()
    return _ALIASES.get(folded, folded)


def provider_for_model(model: str) -> str | None:
    """The provider that serves `model`, or None for a model this project does not configure."""
    return MODEL_PROVIDERS.get(model)


def model_config_key(provider: str, model: str) -> str:
    """LaunchDarkly's model-config key for a model, e.g. `Anthropic.claude-haiku-4-5`."""
    return f"{PROVIDERS[provider].label}.{model}"


def served_model(provider: str, model: str, settings: Any) -> str:
    """The model name sent to the provider: OPENAI_MODEL_MAP's for an OpenAI-compatible server."""
    if provider != "openai" or not settings.OPENAI_BASE_URL:
        return model
    mapping = settings.openai_model_map
    return mapping.get(model, mapping.get("*", model))


def priced_model(provider: str, model: str, settings: Any) -> str | None:
    """The name a run of `model` is priced under, or None: unpriced (never a vendor's price
    for a model a local server ran under that vendor's name; see OPENAI_BASE_URL_PRICING)."""
    if provider != "openai" or not settings.OPENAI_BASE_URL or \
            settings.OPENAI_BASE_URL_PRICING == "openai":
        return model
    from utils.telemetry.cost_calculator import get_price, get_pricing_table

    served = served_model(provider, model, settings)
    # Asked under a name the vendors' own price list prices (llama.cpp answers to any
    # name): that price is not what the local model costs.
    if get_price(served, get_pricing_table()) is not None:
        if served not in _warned_vendor_names:
            _warned_vendor_names.add(served)
            log.warning("runs of %r through OPENAI_BASE_URL are unpriced: a local server ran "
                        "it under a vendor's model name; map it in OPENAI_MODEL_MAP and price "
                        "the served model in PRICING_OVERRIDES_PATH (or set "
                        "OPENAI_BASE_URL_PRICING=openai for a proxy to OpenAI)", served)
        return None
    return served


_warned_vendor_names: set[str] = set()
