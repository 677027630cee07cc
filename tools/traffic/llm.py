"""The chat model the traffic tools use live (topic extraction, the LLM judge).

It is built by the app's own model factory, so a provider's key, base URL and integration are
configured in one place; these tools only choose which live provider to ask. The judge
prefers a vendor that serves no arm of the experiments (JUDGE_PROVIDER=auto): a model
judging its own vendor's answers against a rival's is not a neutral rater.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from agents.models import ProviderNotConfigured, build_chat_model, provider_is_live
from utils.settings import Settings

# The small, cheap model each provider offers for judging and extraction, in order of choice.
LIVE_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5",
               "mistral": "mistral-small-latest"}


def live_providers(settings: Settings) -> list[str]:
    """The providers of LIVE_MODELS that calls can go to (a key, or OpenAI's base URL)."""
    live = []
    for provider in LIVE_MODELS:
        try:
            if provider_is_live(provider, settings):
                live.append(provider)
        except ProviderNotConfigured:
            pass  # LLM_MODE=live without this provider's key: just not a candidate
    return live


def live_provider(settings: Settings) -> str | None:
    """The first live provider of LIVE_MODELS, or None (then the tools run offline)."""
    return next(iter(live_providers(settings)), None)


def experiment_arm_providers() -> Counter[str]:
    """How many arms of the defined experiments each provider serves (from the manifest)."""
    from bootstrap.manifest import load_manifest
    from utils.experiments.definitions import load_experiments

    manifest = load_manifest()
    counts: Counter[str] = Counter()
    graphs = {g.key for g in manifest.graphs}
    for experiment in load_experiments():
        if experiment.config in graphs:  # its arms are topologies, served by no one provider
            continue
        config = manifest.config(experiment.config)
        variations = {v.key: v for v in
                      [*config.variations, *manifest.experiment_variations_for(config.key)]}
        for key in experiment.variations:
            if key in variations:
                counts[variations[key].provider] += 1
    return counts


def judge_provider(settings: Settings) -> str | None:
    """The provider the live judge uses, or None when no provider is live.

    JUDGE_PROVIDER names one (it must be live); `auto` takes the live provider that serves
    the fewest experiment arms, so Claude does not judge Claude when another key is set.
    """
    live = live_providers(settings)
    if settings.JUDGE_PROVIDER != "auto":
        if settings.JUDGE_PROVIDER not in live:
            raise ValueError(f"JUDGE_PROVIDER={settings.JUDGE_PROVIDER} but that provider has "
                             "no API key (or runs simulated); set its key or JUDGE_PROVIDER=auto")
        return settings.JUDGE_PROVIDER
    if not live:
        return None
    arms = experiment_arm_providers()
    return min(live, key=lambda provider: (arms[provider], live.index(provider)))


def make_chat_model(provider: str, settings: Settings, timeout_s: float,
                    model: str | None = None) -> Any:
    """A live chat model of `provider` at temperature 0 (its LIVE_MODELS model by default)."""
    if provider not in LIVE_MODELS:
        raise ValueError(f"unknown provider {provider!r} for the traffic tools; "
                         f"use one of {', '.join(LIVE_MODELS)}")
    if not provider_is_live(provider, settings):
        raise ValueError(f"provider {provider!r} has no API key; set it in .env")
    return build_chat_model(provider, model or LIVE_MODELS[provider], {"temperature": 0},
                            settings, timeout_s=timeout_s)
