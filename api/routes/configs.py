"""GET /configs: the AI Config variations and targeting being served right now (read-only)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter

from api.deps import ServiceDep
from utils.flags.client import AGENT_CONFIG_KEYS, build_context

router = APIRouter(prefix="/configs", tags=["configs"])

# The four demo users of the web UI, one per segment.
DEMO_USERS: dict[str, dict[str, str]] = {
    "us-free": {"country": "US", "plan": "free"},
    "us-paid": {"country": "US", "plan": "paid"},
    "eu-free": {"country": "DE", "plan": "free"},
    "eu-paid": {"country": "FR", "plan": "paid"},
}


def _describe_variation(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {"malformed": True}
    model = value.get("model") or {}
    parameters = dict(model.get("parameters") or {})
    tools = [t.get("name") for t in parameters.pop("tools", []) if isinstance(t, dict)]
    return {"key": (value.get("_ldMeta") or {}).get("variationKey"),
            "model": model.get("name"), "provider": (value.get("provider") or {}).get("name"),
            "parameters": parameters, "custom": model.get("custom") or {}, "tools": tools}


def _describe_targeting(flag: dict[str, Any]) -> list[dict[str, Any]]:
    keys = [(v.get("_ldMeta") or {}).get("variationKey") if isinstance(v, dict) else None
            for v in flag.get("variations", [])]

    def serve(target: dict[str, Any]) -> Any:
        if "variation" in target:
            return keys[target["variation"]]
        rollout = target.get("rollout") or {}
        return {"rollout": rollout.get("kind", "rollout"),
                "split": {keys[v["variation"]]: v["weight"] / 1000
                          for v in rollout.get("variations", [])}}

    rules = []
    for rule in flag.get("rules", []):
        segments = [s for c in rule.get("clauses", []) if c.get("op") == "segmentMatch"
                    for s in c.get("values", [])]
        rules.append({"segments": segments, "serve": serve(rule)})
    rules.append({"segments": ["everyone else"], "serve": serve(flag.get("fallthrough", {}))})
    return rules


@router.get("")
async def read_configs(service: ServiceDep) -> dict[str, Any]:
    """Variations and targeting of the agent configs, and what each demo user is served."""
    flags: list[dict[str, Any]] = []
    path = service.flags.flags_path
    if path is not None and path.exists():
        data = json.loads(path.read_text())
        for key in AGENT_CONFIG_KEYS:
            flag = data.get("flags", {}).get(key)
            if flag:
                flags.append({"key": key, "on": flag.get("on", True),
                              "variations": [_describe_variation(v)
                                             for v in flag.get("variations", [])],
                              "targeting": _describe_targeting(flag)})
    served = {}
    for label, attributes in DEMO_USERS.items():
        context = build_context(f"demo-{label}", attributes)
        served[label] = {}
        for key in AGENT_CONFIG_KEYS:
            config = service.flags.agent_config(key, context)
            served[label][key] = {"variation": config.variation_key, "model": config.model,
                                  "in_experiment": config.in_experiment,
                                  "source": config.source}
    return {"mode": service.flags.mode, "flags": flags, "served": served,
            "demo_users": DEMO_USERS}
