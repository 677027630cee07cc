"""Model providers and the models this project configures: the one table of both.

Everything that names a provider (the flag layer's validation, the chat-model factory, the
manifest's model check, the LaunchDarkly model-config keys, /health) reads it from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    """A model provider: its name in AI Configs, its LaunchDarkly label, and its settings."""

    name: str  # as an AI Config variation names it (`provider.name`)
    label: str  # LaunchDarkly's spelling, the prefix of a model-config key ("OpenAI.gpt-4o")
    key_setting: str  # the Settings field holding its API key
    base_url_setting: str  # the Settings field holding an alternative endpoint
    aliases: tuple[str, ...] = ()  # other names a served variation may use for it


PROVIDERS: dict[str, Provider] = {p.name: p for p in (
    Provider("openai", "OpenAI", "OPENAI_API_KEY", "OPENAI_BASE_URL", ("azure_openai",)),
    Provider("anthropic", "Anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", ("bedrock",)),
    Provider("mistral", "Mistral", "MISTRAL_API_KEY", "MISTRAL_BASE_URL", ("mistralai",)),
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
