"""The config-flag layer: typed AI agent configs per user, from LaunchDarkly or a local flag file.

Both modes run the official SDKs: `ldclient` evaluates targeting, segments and experiment
bucketing, `ldai` turns the served variation into an agent config and a tracker. Locally the
SDK's file data source reads `LOCAL_FLAGS_PATH` and polls it, so an edit is served without a
restart. Every lookup carries a typed default, so the app keeps answering when a flag is
missing, malformed or the flag service is down.

Locally the SDK reads a validated copy of the file (utils.flags.file_source): a version that is
incomplete or not JSON is never served, the last valid one stays in service, and the built-in
defaults (strict security) run only until a valid file has been loaded.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ldai.client import LDAIClient
from ldai.models import AIAgentConfigDefault, ModelConfig, ProviderConfig
from ldclient import Context, LDClient
from ldclient.config import Config
from ldclient.integrations import Files

from utils.flags.agent_configs import (  # noqa: F401 - re-exported: the flag layer's types
    AGENT_CONFIG_KEYS,
    DEFAULT_CONFIGS,
    DEFAULT_VARIATION_KEY,
    SECURITY_CONFIG,
    STRICTEST_PII_POLICY,
    SUPERVISOR_CONFIG,
    SUPPORT_CONFIG,
    AgentConfig,
    ConfigOrigin,
)
from utils.flags.agent_graph import (
    BUILT_IN_GRAPH,
    DEFAULT_TOPOLOGY_KEY,
    GRAPH_CONFIG,
    ServedGraph,
)
from utils.flags.agent_graph import serve as serve_graph
from utils.flags.file_source import FlagFileRejected, ValidatedFlagFile
from utils.flags.flag_file import split_parameters
from utils.privacy.detector import POLICIES as PII_POLICIES
from utils.providers import PROVIDER_NAMES, PROVIDERS, normalise_provider
from utils.settings import Settings

log = logging.getLogger(__name__)

FLAG_POLL_INTERVAL_S = 0.5  # a flag-file edit is served within this plus one reload
SETUP_HINT = "run `python -m bootstrap.create_configs` (or `make demo`) to create it"


def served_tool_names(value: Mapping[str, Any]) -> tuple[str, ...]:
    """Tool names of a served variation: the `tools` map, else `model.parameters.tools`."""
    tools = value.get("tools")
    if isinstance(tools, Mapping):
        return tuple(tools)
    listed = ((value.get("model") or {}).get("parameters") or {}).get("tools")
    return tuple(t["name"] for t in listed or [] if isinstance(t, Mapping) and t.get("name"))


def describe_served(value: Any) -> dict[str, Any]:
    """What the app takes from a served variation value: model, provider, parameters, custom
    parameters and tools, as the flag layer reads them. Raises `MalformedVariation` for a
    value the app would refuse (and serve its built-in default instead)."""
    validate_served(value)
    parameters, custom = split_parameters(value["model"])
    return {"model": value["model"]["name"],
            "provider": normalise_provider(value["provider"]["name"]),
            "parameters": parameters, "custom": custom,
            "tools": sorted(served_tool_names(value)),
            "enabled": bool((value.get("_ldMeta") or {}).get("enabled", False))}


class MalformedVariation(ValueError):
    """A served variation is not a usable AI agent config."""


# The AI SDK evaluates with `variation()`, which drops the evaluation reason; we need the
# reason's `inExperiment`. This pass-through client evaluates with `variation_detail()` and
# keeps the last detail per task/thread, so there is still exactly one evaluation per lookup.
_last_detail: contextvars.ContextVar[Any] = contextvars.ContextVar("ld_last_detail", default=None)


class _DetailKeepingClient:
    def __init__(self, client: LDClient) -> None:
        self._client = client

    def variation(self, key: str, context: Context, default: Any) -> Any:
        detail = self._client.variation_detail(key, context, default)
        _last_detail.set(detail)
        return detail.value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def build_context(user_id: str, attributes: Mapping[str, Any] | None = None) -> Context:
    """A `user` context keyed by `user_id`, with targeting attributes such as country and plan."""
    builder = Context.builder(user_id).kind("user")
    for name, value in (attributes or {}).items():
        if name in ("key", "kind") or value is None:
            continue
        builder.set(name, value)
    context = builder.build()
    if not context.valid:
        raise ValueError(f"invalid user context for user_id={user_id!r}: {context.error}")
    return context


def validate_served(raw: Any, config_key: str | None = None) -> None:
    """Raise `MalformedVariation` unless `raw` names a model and a known provider, and (for
    the security agent) a known PII policy, wherever LaunchDarkly serves custom parameters."""
    if not isinstance(raw, dict):
        raise MalformedVariation(f"the variation is a {type(raw).__name__}, not an object")
    model = raw.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str) or not model["name"]:
        raise MalformedVariation("the variation has no model name (model.name)")
    provider = raw.get("provider")
    provider_name = provider.get("name") if isinstance(provider, dict) else None
    if normalise_provider(provider_name) not in PROVIDERS:
        raise MalformedVariation(
            f"unknown provider {provider_name!r}; expected one of {', '.join(PROVIDER_NAMES)}"
        )
    if config_key == SECURITY_CONFIG:
        policy = split_parameters(model)[1].get("pii_policy")
        if policy not in PII_POLICIES:
            raise MalformedVariation(f"pii_policy {policy!r} is not one of "
                                     f"{', '.join(sorted(PII_POLICIES))}")


def _served_indices(flag: dict[str, Any]) -> list[tuple[str, Any]]:
    """(where, variation index) for everything the flag can serve."""
    served: list[tuple[str, Any]] = []
    targets = [("fallthrough", flag.get("fallthrough"))]
    targets += [(f"rule {i}", rule) for i, rule in enumerate(flag.get("rules") or [])]
    for where, target in targets:
        if not isinstance(target, dict):
            raise FlagFileRejected(f"flag {flag.get('key')!r} {where} is not an object")
        rollout = target.get("rollout")
        if "variation" not in target and not isinstance(rollout, dict):
            raise FlagFileRejected(f"flag {flag.get('key')!r} {where} serves no variation")
        if "variation" in target:
            served.append((where, target["variation"]))
        else:
            served += [(f"{where} rollout", v.get("variation") if isinstance(v, dict) else v)
                       for v in rollout.get("variations") or [None]]
    served += [(f"target {i}", t.get("variation") if isinstance(t, dict) else t)
               for i, t in enumerate(flag.get("targets") or [])]
    if flag.get("offVariation") is not None:
        served.append(("offVariation", flag["offVariation"]))
    return served


def validate_flag_data(data: Any) -> list[str]:
    """Raise FlagFileRejected if `data` must not be served; else the problems it still has.

    Rejected: not an object, an agent flag missing, a served variation index out of range or
    a targeted segment not defined (each of which would silently serve a weaker default).
    Kept, with a problem: a malformed variation, which serves its built-in default.
    """
    if not isinstance(data, dict):
        raise FlagFileRejected(f"it is a JSON {type(data).__name__}, not an object")
    flags, segments = data.get("flags", {}), data.get("segments", {})
    if not isinstance(flags, dict) or not isinstance(segments, dict):
        raise FlagFileRejected('"flags" and "segments" must be objects')
    missing = [key for key in AGENT_CONFIG_KEYS if not isinstance(flags.get(key), dict)]
    keys = [*AGENT_CONFIG_KEYS, *([GRAPH_CONFIG] if isinstance(flags.get(GRAPH_CONFIG), dict)
                                  else [])]
    if missing:
        raise FlagFileRejected(f"agent flag(s) {', '.join(missing)} missing; {SETUP_HINT}")
    problems = []
    for key in keys:
        flag = flags[key]
        variations = flag.get("variations")
        if not isinstance(variations, list) or not variations:
            raise FlagFileRejected(f"flag {key!r} has no variations")
        for where, index in _served_indices({"key": key, **flag}):
            if not isinstance(index, int) or isinstance(index, bool) or \
                    not 0 <= index < len(variations):
                raise FlagFileRejected(f"flag {key!r} {where} serves variation {index!r}, "
                                       f"but the flag has {len(variations)}")
        for rule in flag.get("rules") or []:
            for clause in rule.get("clauses") or []:
                if isinstance(clause, dict) and clause.get("op") == "segmentMatch":
                    unknown = [s for s in clause.get("values") or [] if s not in segments]
                    if unknown:
                        raise FlagFileRejected(f"flag {key!r} targets segment(s) "
                                               f"{unknown}, which the file does not define")
        for i, variation in enumerate(variations):
            if key == GRAPH_CONFIG:
                served = serve_graph(variation)
                if served.fell_back:
                    problems.append(f"flag {key!r} variation {i}: {served.problem}; it serves "
                                    f"the built-in {DEFAULT_TOPOLOGY_KEY} topology")
                continue
            try:
                validate_served(variation, key)
            except MalformedVariation as exc:
                problems.append(f"flag {key!r} variation {i} is malformed ({exc}); "
                                "it serves the built-in default")
    return problems


def _default_as_ai_default(config: AgentConfig) -> AIAgentConfigDefault:
    return AIAgentConfigDefault(
        enabled=config.enabled,
        model=ModelConfig(config.model, parameters=dict(config.parameters),
                          custom=dict(config.custom)),
        provider=ProviderConfig(config.provider),
        instructions=config.instructions,
    )


class ConfigFlags:
    """Evaluates AI configs for user contexts through the LaunchDarkly SDKs."""

    def __init__(self, settings: Settings, *, start_wait: float = 5.0) -> None:
        self._settings = settings
        self._warned: set[tuple[str, str]] = set()
        self._warn_lock = threading.Lock()
        self._graph_problems: dict[str, str | None] = {}  # refused graph variations, /health
        self.file: ValidatedFlagFile | None = None
        if settings.ld_mode:
            assert settings.LD_SDK_KEY is not None
            config = Config(
                settings.LD_SDK_KEY.get_secret_value(),
                base_uri=settings.LD_BASE_URI,
                stream_uri=settings.LD_STREAM_URI,
                events_uri=settings.LD_EVENTS_URI,
            )
            self.mode = "launchdarkly"
        else:
            # Two polls (the file, then the SDK on the validated copy) share the interval.
            self.file = ValidatedFlagFile(settings.flags_path, validate_flag_data,
                                          FLAG_POLL_INTERVAL_S / 2)
            config = Config(
                "local-flag-file",  # any non-empty key; nothing is sent anywhere
                update_processor_class=Files.new_data_source(
                    paths=[str(self.file.served_path)], auto_update=True,
                    poll_interval=FLAG_POLL_INTERVAL_S / 2, force_polling=True,
                ),
                send_events=False,
            )
            self.mode = "local-file"
        self.client = LDClient(config, start_wait=start_wait)
        self.ai_client = LDAIClient(_DetailKeepingClient(self.client))  # type: ignore[arg-type]

    @property
    def flags_path(self) -> Path | None:
        return None if self.mode == "launchdarkly" else self._settings.flags_path

    def status(self) -> dict[str, Any]:
        """Flag-source status for /health (never includes keys)."""
        status: dict[str, Any] = {"mode": self.mode, "initialized": self.client.is_initialized()}
        if self.file is not None:
            exists = self.file.source.exists()
            status["flags_file"] = str(self.file.source)
            status["flags_file_exists"] = exists
            status["serving"] = "flags file" if self.file.ever_loaded else "built-in defaults"
            status["loaded_at"] = self.file.good_loaded_at
            if not exists and not self.file.ever_loaded:
                status["hint"] = (
                    f"flags file {self.file.source} is missing, so every agent runs its "
                    f"built-in default config; {SETUP_HINT}"
                )
        return status

    def problems(self) -> list[str]:
        """Why the flags in service are not the intended ones ([] when they are)."""
        with self._warn_lock:
            graph = [str(p) for p in self._graph_problems.values()]
        if self.file is not None:
            return [*self.file.problems(), *graph]
        if not self.client.is_initialized():
            return ["the LaunchDarkly client is not initialized: every agent runs its built-in "
                    "default config (the security agent with the strict policy)"]
        return graph

    def graph(self, context: Context) -> ServedGraph:
        """The agent graph served to `context`: its topology, or the built-in detector-routed
        one (with a warning, and /health degraded) when the served variation is refused.

        The flag is evaluated with the SDK and its value read in the shape `ldai`'s
        `agent_graph` reads; `agent_graph` itself is not called because it re-evaluates every
        agent config (their exposures are recorded by the agents) and disables the whole
        graph when one agent config is disabled, which here only turns that agent's model off.
        """
        detail = self.client.variation_detail(GRAPH_CONFIG, context, None)
        if detail.variation_index is None:  # no graph flag: the built-in topology, silently
            return BUILT_IN_GRAPH
        served = replace(serve_graph(detail.value),
                         in_experiment=bool((detail.reason or {}).get("inExperiment", False)))
        with self._warn_lock:  # a variation's problem lasts until it is served valid again
            first = served.fell_back and self._graph_problems.get(served.variation_key) \
                != served.problem
            if served.fell_back:
                self._graph_problems[served.variation_key] = served.problem
            else:
                self._graph_problems.pop(served.variation_key, None)
        if first:
            log.warning("%s; running the built-in %s topology", served.problem,
                        DEFAULT_TOPOLOGY_KEY)
        return served

    def served_flags(self) -> dict[str, Any] | None:
        """The validated flag data in service (local mode), for /configs."""
        return self.file.good if self.file is not None else None

    def agent_config(self, config_key: str, context: Context) -> AgentConfig:
        """The agent config served to `context`, or the built-in default with the reason logged."""
        default = DEFAULT_CONFIGS[config_key]
        token = _last_detail.set(None)
        try:
            ai_config = self.ai_client.agent_config(
                config_key, context, _default_as_ai_default(default)
            )
            detail = _last_detail.get()
        except Exception as exc:  # the AI SDK raises on some malformed values (no model name)
            detail = _last_detail.get()
            problem = str(exc)
            try:
                validate_served(getattr(detail, "value", None), config_key)
            except MalformedVariation as precise:
                problem = str(precise)
            self._warn_malformed(config_key, detail, problem)
            return replace(default, source="fallback")
        finally:
            _last_detail.reset(token)

        reason = (detail.reason or {}) if detail is not None else {}
        if detail is None or reason.get("kind") == "ERROR" or detail.variation_index is None:
            # Flag missing or store not initialised: the typed default is the answer.
            return default
        try:
            validate_served(detail.value, config_key)
        except MalformedVariation as exc:
            self._warn_malformed(config_key, detail, str(exc))
            return replace(default, source="fallback")

        model = ai_config.model
        parameters, custom = split_parameters(model.to_dict() if model else {})
        meta = detail.value.get("_ldMeta") or {}
        return AgentConfig(
            config_key=config_key,
            variation_key=str(meta.get("variationKey") or f"variation-{detail.variation_index}"),
            enabled=bool(ai_config.enabled),
            model=model.name if model else default.model,
            provider=normalise_provider(ai_config.provider.name if ai_config.provider else ""),
            parameters=parameters,
            custom=custom,
            instructions=ai_config.instructions or default.instructions,
            tools=tuple((ai_config.tools or {}).keys()),
            in_experiment=bool(reason.get("inExperiment", False)),
            version=int(meta.get("version") or 1),
            source="flags",
            tracker_factory=ai_config.create_tracker if self.mode == "launchdarkly" else None,
        )

    def _warn_malformed(self, config_key: str, detail: Any, problem: str) -> None:
        value = getattr(detail, "value", None)
        variation = (
            (value.get("_ldMeta") or {}).get("variationKey") if isinstance(value, dict) else None
        ) or f"index {getattr(detail, 'variation_index', None)}"
        marker = (config_key, str(variation))
        with self._warn_lock:
            first = marker not in self._warned
            self._warned.add(marker)
        if first:
            log.error(
                "flag %r variation %s is malformed (%s); serving the built-in default config",
                config_key, variation, problem,
            )

    def flush(self) -> None:
        """Send queued analytics events now (never closes the client)."""
        self.client.flush()

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.file is not None:
                self.file.close()
