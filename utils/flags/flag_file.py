"""The local flag file as people read it: variations and targeting, summarised.

The file is LaunchDarkly flag JSON (`{"flags": {...}, "segments": {...}}`) that the SDK's file
data source evaluates; the bootstrap's local backend writes it. This module only reads it, for
the /configs view.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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


def describe_flag_file(path: Path, keys: Iterable[str]) -> list[dict[str, Any]]:
    """The flags `keys` of the file at `path`, described; [] when the file does not exist."""
    if not path.exists():
        return []
    flags = json.loads(path.read_text()).get("flags", {})
    described = []
    for key in keys:
        flag = flags.get(key)
        if flag:
            described.append({"key": key, "on": flag.get("on", True),
                              "variations": [describe_variation(v)
                                             for v in flag.get("variations", [])],
                              "targeting": describe_targeting(flag)})
    return described
