"""Per-step config overrides: one layer applied over the config an agent is served.

An override is `{step: {param: value}}` (the step id is the AI Config key). The agents read
their configs through `agents.context.ConfigResolver`, which applies this layer, so an offline
experiment's variant, or an `experiment` payload on a request, changes exactly the parameters
it names and nothing else. Here: which parameters exist, which steps read them, how a value
given as text is parsed and checked, and how a config is snapshotted (a locked baseline).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from utils.flags.client import AGENT_CONFIG_KEYS, SECURITY_CONFIG, SUPPORT_CONFIG, AgentConfig
from utils.providers import PROVIDERS, normalise_provider, provider_for_model

ActsIn = Literal["graph", "model"]


class OverrideError(ValueError):
    """An override names an unknown step or parameter, or a value it cannot take."""


@dataclass(frozen=True)
class ParameterSpec:
    """A parameter a variant may change: where it lives and where it acts."""

    name: str
    where: Literal["instructions", "model", "tools", "parameters", "custom"]
    # "graph": the app's own code reads it (routing, redaction, tool limits, model choice);
    # "model": only the model sees it, so a simulated model may not react to it.
    acts_in: ActsIn
    steps: tuple[str, ...] = AGENT_CONFIG_KEYS
    help: str = ""


PARAMETERS: dict[str, ParameterSpec] = {p.name: p for p in (
    ParameterSpec("instructions", "instructions", "model", help="the system prompt (text)"),
    ParameterSpec("temperature", "parameters", "model", help="a number in 0..2"),
    ParameterSpec("top_p", "parameters", "model", help="a number in (0, 1]"),
    ParameterSpec("max_tokens", "parameters", "model", help="an integer >= 1"),
    ParameterSpec("verbosity", "parameters", "model", help="low, medium or high"),
    ParameterSpec("model", "model", "graph",
                  help="a model of the project's table, or provider:model"),
    ParameterSpec("tools", "tools", "graph", (SUPPORT_CONFIG,),
                  help="comma-separated tool names ('' for none)"),
    ParameterSpec("max_tool_calls", "custom", "graph", (SUPPORT_CONFIG,),
                  help="an integer >= 0"),
    ParameterSpec("pii_policy", "custom", "graph", (SECURITY_CONFIG,), help="basic or strict"),
)}
VERBOSITY_LEVELS = ("low", "medium", "high")


def _number(param: str, raw: Any, low: float, high: float, *, low_open: bool = False) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise OverrideError(f"{param} must be a number, got {raw!r}") from None
    if isinstance(raw, bool) or not (low < value if low_open else low <= value) or value > high:
        bound = f"({low:g}, {high:g}]" if low_open else f"[{low:g}, {high:g}]"
        raise OverrideError(f"{param} must be within {bound}, got {raw!r}")
    return value


def _integer(param: str, raw: Any, low: int) -> int:
    if isinstance(raw, bool):
        raise OverrideError(f"{param} must be an integer, got {raw!r}")
    try:
        value = int(str(raw).strip()) if not isinstance(raw, int) else raw
    except ValueError:
        raise OverrideError(f"{param} must be an integer, got {raw!r}") from None
    if value < low:
        raise OverrideError(f"{param} must be >= {low}, got {raw!r}")
    return value


def model_reference(raw: str) -> str:
    """`provider:model` for a model name (provider from the model table) or an explicit pair."""
    text = str(raw).strip()
    provider, sep, name = text.partition(":")
    if sep:
        provider, name = normalise_provider(provider), name.strip()
        if provider not in PROVIDERS:
            raise OverrideError(f"model {raw!r}: unknown provider {provider!r}; expected one of "
                                f"{', '.join(PROVIDERS)}")
        if not name:
            raise OverrideError(f"model {raw!r} has no model name after the provider")
        return f"{provider}:{name}"
    provider = provider_for_model(text)
    if provider is None:
        raise OverrideError(f"model {raw!r} is not in the model table (utils/providers.py); "
                            "name one of it or choose a provider explicitly as provider:model")
    return f"{provider}:{text}"


def split_model(reference: str) -> tuple[str, str]:
    """(provider, model) of a `provider:model` reference."""
    provider, _, name = reference.partition(":")
    return provider, name


def parse_value(param: str, raw: Any, *, known_tools: Iterable[str] | None = None) -> Any:
    """The checked value of `param` given as `raw` (text from a command line, or JSON)."""
    if param not in PARAMETERS:
        raise OverrideError(f"unknown parameter {param!r}; a variant may set one of "
                            f"{', '.join(PARAMETERS)}")
    if param == "instructions":
        if not isinstance(raw, str) or not raw.strip():
            raise OverrideError("instructions must be non-empty text")
        return raw
    if param == "temperature":
        return _number(param, raw, 0.0, 2.0)
    if param == "top_p":
        return _number(param, raw, 0.0, 1.0, low_open=True)
    if param == "max_tokens":
        return _integer(param, raw, 1)
    if param == "max_tool_calls":
        return _integer(param, raw, 0)
    if param == "verbosity":
        if raw not in VERBOSITY_LEVELS:
            raise OverrideError(f"verbosity must be one of {', '.join(VERBOSITY_LEVELS)}, "
                                f"got {raw!r}")
        return raw
    if param == "pii_policy":
        from utils.privacy.detector import POLICIES

        if raw not in POLICIES:
            raise OverrideError(f"pii_policy must be one of {', '.join(sorted(POLICIES))}, "
                                f"got {raw!r}")
        return raw
    if param == "model":
        return model_reference(raw)
    # tools
    names = raw if isinstance(raw, list) else [t for t in str(raw).split(",")]
    tools = [str(t).strip() for t in names if str(t).strip()]
    if known_tools is not None:
        unknown = [t for t in tools if t not in set(known_tools)]
        if unknown:
            raise OverrideError(f"tools: unknown tool(s) {', '.join(unknown)}; known: "
                                f"{', '.join(known_tools)}")
    if len(set(tools)) != len(tools):
        raise OverrideError(f"tools lists a tool twice: {raw!r}")
    return tools


def check_step_parameter(step: str, param: str) -> None:
    """Refuse a parameter on a step whose agent never reads it (it could have no effect)."""
    if step not in AGENT_CONFIG_KEYS:
        raise OverrideError(f"unknown step {step!r}; steps are {', '.join(AGENT_CONFIG_KEYS)}")
    if param not in PARAMETERS:
        parse_value(param, None)  # raises the unknown-parameter error
    spec = PARAMETERS[param]
    if step not in spec.steps:
        raise OverrideError(f"{param} is read only by {', '.join(spec.steps)}, not by {step}")


def check_overrides(overrides: Any, *,
                    known_tools: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """A checked copy of a `{step: {param: value}}` payload."""
    if not isinstance(overrides, Mapping):
        raise OverrideError(f"overrides must map steps to {{param: value}}, got {overrides!r}")
    checked: dict[str, dict[str, Any]] = {}
    for step, params in overrides.items():
        if not isinstance(params, Mapping):
            raise OverrideError(f"overrides for {step!r} must be a {{param: value}} object")
        checked[step] = {}
        for param, value in params.items():
            check_step_parameter(step, param)
            checked[step][param] = parse_value(param, value, known_tools=known_tools)
    return checked


def apply_overrides(config: AgentConfig, params: Mapping[str, Any], label: str) -> AgentConfig:
    """`config` with checked `params` applied; `label` marks the variation key.

    An overridden config is never what an online experiment served: it is not in an
    experiment and sends nothing to LaunchDarkly's trackers.
    """
    if not params:
        return config
    changes: dict[str, Any] = {}
    parameters, custom = dict(config.parameters), dict(config.custom)
    for param, value in params.items():
        where = PARAMETERS[param].where
        if where == "instructions":
            changes["instructions"] = value
        elif where == "model":
            changes["provider"], changes["model"] = split_model(value)
        elif where == "tools":
            changes["tools"] = tuple(value)
        elif where == "parameters":
            parameters[param] = value
        else:
            custom[param] = value
    return replace(config, **changes, parameters=parameters, custom=custom,
                   variation_key=f"{config.variation_key}@{label}", in_experiment=False,
                   tracker_factory=None)


@dataclass(frozen=True)
class ConfigOverrides:
    """Checked per-step overrides and the label their runs carry."""

    label: str
    steps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def apply(self, config: AgentConfig) -> AgentConfig:
        return apply_overrides(config, self.steps.get(config.config_key, {}), self.label)


def parameter_value(config: AgentConfig, param: str) -> Any:
    """The value `config` gives `param` (None when unset), in override form."""
    where = PARAMETERS[param].where
    if where == "instructions":
        return config.instructions
    if where == "model":
        return f"{config.provider}:{config.model}"
    if where == "tools":
        return list(config.tools)
    if where == "parameters":
        return config.parameters.get(param)
    return config.custom.get(param)


def step_parameters(config: AgentConfig) -> dict[str, Any]:
    """Every parameter the config's step reads, with its value."""
    return {name: parameter_value(config, name) for name, spec in PARAMETERS.items()
            if config.config_key in spec.steps}


def snapshot_config(config: AgentConfig) -> dict[str, Any]:
    """A JSON copy of a served config (what a locked baseline keeps)."""
    return {"config_key": config.config_key, "variation_key": config.variation_key,
            "enabled": config.enabled, "model": config.model, "provider": config.provider,
            "parameters": dict(config.parameters), "custom": dict(config.custom),
            "instructions": config.instructions, "tools": list(config.tools),
            "version": config.version, "source": config.source}


def config_from_snapshot(snapshot: Mapping[str, Any]) -> AgentConfig:
    """The config a snapshot describes (never in an experiment, no tracker)."""
    try:
        return AgentConfig(
            config_key=str(snapshot["config_key"]),
            variation_key=str(snapshot["variation_key"]), enabled=bool(snapshot["enabled"]),
            model=str(snapshot["model"]), provider=str(snapshot["provider"]),
            parameters=dict(snapshot.get("parameters") or {}),
            custom=dict(snapshot.get("custom") or {}),
            instructions=str(snapshot.get("instructions") or ""),
            tools=tuple(snapshot.get("tools") or ()), version=int(snapshot.get("version", 1)),
            source=snapshot.get("source", "flags"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise OverrideError(f"config snapshot is malformed ({exc!r}): {dict(snapshot)!r}") from None
