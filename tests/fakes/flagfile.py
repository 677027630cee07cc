"""Small LaunchDarkly flag files for tests (the bootstrap scripts write the real one)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bootstrap.manifest import load_manifest

# The EU country list of the manifest's segments, the one source of it.
EU = [str(c) for c in load_manifest().segment_clause("eu-free", "country").values]


def ai_variation(key: str, model: str, provider: str, *, tools: tuple[str, ...] = (),
                 custom: dict[str, Any] | None = None, instructions: str = "Answer briefly.",
                 temperature: float = 0.2) -> dict[str, Any]:
    parameters: dict[str, Any] = {"temperature": temperature, "max_tokens": 600}
    if tools:
        parameters["tools"] = [
            {"name": t, "type": "function", "description": t,
             "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                            "required": ["query"]}}
            for t in tools
        ]
    return {
        "_ldMeta": {"enabled": True, "variationKey": key, "version": 1, "mode": "agent"},
        "model": {"name": model, "parameters": parameters, "custom": custom or {}},
        "provider": {"name": provider},
        "instructions": instructions,
    }


def segment(key: str, eu: bool, plan: str) -> dict[str, Any]:
    country = {"contextKind": "user", "attribute": "country", "op": "in", "values": EU,
               "negate": not eu}
    plan_clause = {"contextKind": "user", "attribute": "plan", "op": "in", "values": [plan]}
    return {"key": key, "version": 1, "salt": key, "included": [], "excluded": [],
            "rules": [{"id": f"{key}-rule", "clauses": [country, plan_clause]}]}


def flag(key: str, variations: list[dict[str, Any]], rules: list[tuple[str, int]],
         fallthrough: int) -> dict[str, Any]:
    return {
        "key": key, "on": True, "version": 1, "salt": key, "variations": variations,
        "offVariation": fallthrough, "fallthrough": {"variation": fallthrough},
        "targets": [], "prerequisites": [], "trackEvents": False,
        "rules": [
            {"id": f"{key}-{seg}", "variation": var, "trackEvents": False,
             "clauses": [{"contextKind": "user", "attribute": "segmentMatch", "op": "segmentMatch",
                          "values": [seg]}]}
            for seg, var in rules
        ],
    }


def standard_flags() -> dict[str, Any]:
    """Supervisor, security (EU strict, others basic) and support (one variation per segment)."""
    segments = {k: segment(k, k.startswith("eu"), k.split("-")[1])
                for k in ("eu-free", "eu-paid", "other-free", "other-paid")}
    supervisor = flag("supervisor-agent",
                      [ai_variation("supervisor-basic", "gpt-4o-mini", "openai")], [], 0)
    security = flag("security-agent", [
        ai_variation("basic-security", "claude-haiku-4-5", "anthropic",
                     custom={"pii_policy": "basic"}),
        ai_variation("strict-security", "mistral-small-latest", "mistral",
                     custom={"pii_policy": "strict"}),
    ], [("eu-free", 1), ("eu-paid", 1), ("other-free", 0), ("other-paid", 0)], 0)
    support_variations = [
        ai_variation("international-standard", "gpt-4o-mini", "openai", tools=("search_v1",),
                     custom={"max_tool_calls": 3}),
        ai_variation("eu-free", "mistral-small-latest", "mistral", tools=("search_v1",),
                     custom={"max_tool_calls": 2}),
        ai_variation("eu-paid", "claude-sonnet-4-5", "anthropic",
                     tools=("search_v1", "search_v2", "reranking"), custom={"max_tool_calls": 5}),
        ai_variation("other-free", "gpt-4o-mini", "openai", tools=("search_v1",),
                     custom={"max_tool_calls": 2}),
        ai_variation("other-paid", "gpt-4o", "openai",
                     tools=("search_v1", "search_v2", "reranking"), custom={"max_tool_calls": 5}),
    ]
    support = flag("support-agent", support_variations,
                   [("eu-free", 1), ("eu-paid", 2), ("other-free", 3), ("other-paid", 4)], 0)
    return {"flags": {f["key"]: f for f in (supervisor, security, support)}, "segments": segments}


def write_flags(path: Path, data: dict[str, Any]) -> None:
    """Write atomically and bump the mtime so the SDK's file poller sees every write."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
