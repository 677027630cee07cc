"""The local flag file as people read it: variations and targeting, summarised.

The file is LaunchDarkly flag JSON (`{"flags": {...}, "segments": {...}}`) that the SDK's file
data source evaluates; the bootstrap's local backend writes it. This module only describes the
validated version in service (utils.flags.file_source), for the /configs view.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

# LaunchDarkly rollout weights are thousandths of a percent: 100000 is everyone.
ALL_WEIGHT = 100_000


def describe_variation(value: Any) -> dict[str, Any]:
    """Key, model, provider, parameters, custom parameters and tool names of a variation."""
    if not isinstance(value, dict):
        return {"malformed": True}
    model = value.get("model") or {}
    parameters = dict(model.get("parameters") or {})
    tools = [t.get("name") for t in parameters.pop("tools", []) if isinstance(t, dict)]
    return {"key": (value.get("_ldMeta") or {}).get("variationKey"),
            "model": model.get("name"), "provider": (value.get("provider") or {}).get("name"),
            "parameters": parameters, "custom": model.get("custom") or {}, "tools": tools}


def describe_targeting(flag: dict[str, Any]) -> list[dict[str, Any]]:
    """Each rule's segments and what it serves (a variation key, or a split in percent)."""
    keys = [(v.get("_ldMeta") or {}).get("variationKey") if isinstance(v, dict) else None
            for v in flag.get("variations", [])]

    def serve(target: dict[str, Any]) -> Any:
        if "variation" in target:
            return keys[target["variation"]]
        rollout = target.get("rollout") or {}
        return {"rollout": rollout.get("kind", "rollout"),
                "split": {keys[v["variation"]]: v["weight"] * 100 / ALL_WEIGHT
                          for v in rollout.get("variations", [])}}

    rules = []
    for rule in flag.get("rules", []):
        segments = [s for c in rule.get("clauses", []) if c.get("op") == "segmentMatch"
                    for s in c.get("values", [])]
        rules.append({"segments": segments, "serve": serve(rule)})
    rules.append({"segments": ["everyone else"], "serve": serve(flag.get("fallthrough", {}))})
    return rules


def describe_flags(data: Mapping[str, Any] | None, keys: Iterable[str]) -> list[dict[str, Any]]:
    """The flags `keys` of flag data `data` (None: nothing loaded yet), described.

    A flag whose shape cannot be described is listed as malformed rather than failing the
    whole view.
    """
    flags = (data or {}).get("flags") or {}
    described = []
    for key in keys:
        flag = flags.get(key)
        if not flag:
            continue
        try:
            described.append({"key": key, "on": flag.get("on", True),
                              "variations": [describe_variation(v)
                                             for v in flag.get("variations", [])],
                              "targeting": describe_targeting(flag)})
        except (AttributeError, IndexError, KeyError, TypeError) as exc:
            log.warning("flag %r cannot be described: %s: %s", key, type(exc).__name__, exc)
            described.append({"key": key, "malformed": True})
    return described
