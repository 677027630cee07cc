"""LaunchDarkly backend: bring a project in line with the manifest through the REST API v2.

Reads the current state first, creates what is missing, updates what differs and never adds a
rule that already exists. 429 and 5xx answers are retried with backoff (honouring Retry-After);
any other error stops the run with the method, path, status and LaunchDarkly's message.

API shapes
----------
Verified against LaunchDarkly's documentation and LaunchDarkly's own code:

* AI Configs endpoints, paths and bodies: launchdarkly/api-client-python ``docs/AIConfigsBetaApi.md``
  (endpoint table; ``patch_ai_config_targeting`` instruction list), ``docs/AIConfigPost.md``
  (key, name, description, mode, tags), ``docs/AIConfigVariationPost.md`` and
  ``docs/AIConfigVariationPatch.md`` (key, name, instructions, messages, model, modelConfigKey,
  tools, toolKeys), ``docs/AIConfigVariation.md`` (GET shape: ``tools`` as ``{key, version}``),
  and https://launchdarkly.com/docs/api/ai-configs/post-ai-config-variation ("model requires a
  modelName and parameters"); the PATCH path takes the variation *key*
  (``.../variations/{variationKey}``).
* ``LD-API-Version: beta`` on AI Configs and AI tools requests: launchdarkly/python-server-sdk-ai
  ``packages/optimization/src/ldai_optimizer/ld_api_client.py`` (sent only on those endpoints),
  launchdarkly/agent-skills ``skills/agentcontrol/configs-targeting/SKILL.md``, and
  launchdarkly-labs/devrel-agents-tutorial ``bootstrap/create_configs.py``.
* ``messages: []`` on an agent-mode variation POST: devrel-agents-tutorial
  ``bootstrap/create_configs.py`` and ``bootstrap/tutorial_3_experiment_variations.py``
  ("empty array required for agent mode validation"; left out of PATCH).
* AI tools: ``docs/AIToolPost.md`` / ``docs/AIToolPatch.md`` (key, description, ``schema`` = the
  JSON Schema of the tool's parameters, not an OpenAI function wrapper); list answers
  ``{"items": [...]}`` (devrel-agents-tutorial ``tutorial_3_experiment_variations.py``).
* Targeting: ``PATCH /api/v2/projects/{p}/ai-configs/{c}/targeting`` with
  ``Content-Type: application/json; domain-model=launchdarkly.semanticpatch`` and
  ``{environmentKey, instructions, comment}`` (``AIConfigsBetaApi.md``,
  https://launchdarkly.com/docs/api/ai-configs/patch-ai-config-targeting), not the flag endpoint.
  ``addRule``/``updateRuleVariationOrRollout``/``updateFallthroughVariationOrRollout`` take a
  ``variationId`` (or ``rolloutWeights``); there is no ``turnFlagOn``/``turnTargetingOn`` for AI
  Configs (not in the documented list; agent-skills SKILL.md: "turnTargetingOn does not work for
  configs"). The ids are the ``_id`` of the *targeting* variations, which carry no ``key``:
  GET targeting answers ``variations: [{_id, name, description, value}]`` and
  ``environments: {env: {enabled, fallthrough, rules, offVariation, ...}}``
  (``docs/AIConfigTargeting*.md`` and the models in ``launchdarkly_api/models/``); the key is
  ``value._ldMeta.variationKey`` (devrel-agents-tutorial ``get_targeting_variation_map``).
* Segments: ``POST /api/v2/segments/{p}/{e}`` then semantic-patch ``addRule {clauses,
  description}`` / ``removeRule {ruleId}`` with ``environmentKey``
  (https://launchdarkly.com/docs/api/segments/patch-segment; devrel-agents-tutorial
  ``create_segment``/``add_segment_rules``).

Not verified (no documentation or LaunchDarkly code found; marked in the code too):

* ``model.custom`` for custom parameters in a variation body: only seen in a third-party helper
  (kevincloud/ai-config-creator ``AIConfigs.py``) and in the served value the AI SDK reads
  (``ldai/client.py``); the tutorial instead spreads them at the body root, which looks wrong.
* That attached tools (``toolKeys``) are served to the SDK as the top-level ``tools`` map the AI
  SDK 1.2 ``_resolve_tools`` reads, so ``model.parameters.tools`` is no longer sent.
* The targeting rule fields ``_id``, ``variation`` and ``rollout`` (the published schema lists
  only ``clauses`` and ``trackEvents``; the shape follows feature-flag rules and the tutorial).
* That GET of an AI config returns each variation's full ``model`` (for the update diff).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bootstrap.graph_manifest import GraphSpec
from bootstrap.launchdarkly_client import LaunchDarklyClient, LaunchDarklyError
from bootstrap.manifest import Manifest, VariationSpec
from utils.flags.flag_file import ALL_WEIGHT
from utils.providers import model_config_key

log = logging.getLogger(__name__)

# --- desired state in the API's shapes ------------------------------------------------------

def tool_payload(manifest: Manifest, name: str) -> dict[str, Any]:
    """A tool for POST /ai-tools: `schema` is the JSON Schema of the tool's arguments."""
    tool = manifest.tool(name)
    return {"key": tool.name, "description": tool.description, "schema": tool.parameters}


def variation_payload(variation: VariationSpec) -> dict[str, Any]:
    """A variation for POST .../variations (agent mode): instructions, model, tools by key.

    Tools are attached by key (`toolKeys`); LaunchDarkly serves their definitions with the
    variation. Custom parameters go in `model.custom` (not verified, see "API shapes").
    """
    return {"key": variation.key, "name": variation.name, "instructions": variation.instructions,
            "messages": [],  # agent mode: instructions, no messages
            "modelConfigKey": model_config_key(variation.provider, variation.model),
            "model": {"modelName": variation.model,
                      "parameters": variation.parameters.model_dump(),
                      "custom": variation.custom.model_dump()},
            "toolKeys": list(variation.tools)}


def variation_patch(variation: VariationSpec) -> dict[str, Any]:
    """The PATCH body for a variation: every field we own (values replace, they don't merge)."""
    want = variation_payload(variation)
    return {k: v for k, v in want.items() if k not in ("key", "messages")}


def _comparable_variation(v: dict[str, Any]) -> dict[str, Any]:
    tools = v.get("tools")
    keys = [t.get("key") for t in tools] if isinstance(tools, list) else v.get("toolKeys", [])
    model = v.get("model") or {}
    return {"name": v.get("name"), "instructions": v.get("instructions"),
            "modelConfigKey": v.get("modelConfigKey"), "modelName": model.get("modelName"),
            "parameters": model.get("parameters") or {}, "custom": model.get("custom") or {},
            "tools": sorted(keys or [])}


def graph_payload(graph: GraphSpec) -> dict[str, Any]:
    """The agent graph as the REST API creates it: the default variation's root and edges."""
    variation = graph.variation(graph.targeting.default)
    assert variation is not None  # checked by the manifest
    return {"key": graph.key, "name": graph.name, "description": graph.description,
            "rootConfigKey": graph.root,
            "edges": [{"key": f"{e.source}-{e.target}", "sourceConfig": e.source,
                       "targetConfig": e.target, "handoff": {"when": e.when}}
                      for e in variation.edges]}


def _comparable_graph(g: dict[str, Any]) -> tuple:
    edges = sorted((e.get("sourceConfig"), e.get("targetConfig"), repr(e.get("handoff") or {}))
                   for e in g.get("edges") or [])
    return g.get("rootConfigKey"), edges


def targeting_key(variation: dict[str, Any]) -> str | None:
    """The variation key of a targeting variation: `value._ldMeta.variationKey` (None for the
    built-in disabled variation)."""
    value = variation.get("value")
    meta = value.get("_ldMeta") if isinstance(value, dict) else None
    return meta.get("variationKey") if isinstance(meta, dict) else None


def _segment_clause(segment: str) -> dict[str, Any]:
    return {"contextKind": "user", "attribute": "segmentMatch", "op": "segmentMatch",
            "values": [segment], "negate": False}


def _comparable_clauses(clauses: list[dict[str, Any]]) -> list[tuple]:
    return sorted((c.get("contextKind") or "user", c.get("attribute"), c.get("op"),
                   tuple(sorted(map(str, c.get("values", [])))), bool(c.get("negate")))
                  for c in clauses)


def rule_segment(rule: dict[str, Any]) -> str | None:
    """The segment a rule targets when it is exactly one segmentMatch clause on one segment."""
    clauses = rule.get("clauses", [])
    if len(clauses) == 1 and clauses[0].get("op") == "segmentMatch" and not clauses[0].get(
            "negate") and len(clauses[0].get("values", [])) == 1:
        return clauses[0]["values"][0]
    return None


def rule_serves(rule: dict[str, Any], variation_keys: list[str | None]) -> str | None:
    """The variation key a rule serves to everyone it matches, or None for a split rollout.

    A single variation without a key (the built-in disabled one) reads as "<disabled>".
    """
    index = rule.get("variation")
    if not isinstance(index, int):
        weights = [w for w in (rule.get("rollout") or {}).get("variations", [])
                   if w.get("weight")]
        if len(weights) != 1 or weights[0]["weight"] != ALL_WEIGHT:
            return None
        index = weights[0]["variation"]
    key = variation_keys[index] if 0 <= index < len(variation_keys) else None
    return key or "<disabled>"


class LaunchDarklySync:
    """Plans and applies the changes that bring a LaunchDarkly project in line with the manifest."""

    def __init__(self, client: LaunchDarklyClient, project: str, environment: str, *,
                 dry_run: bool = False, out: Callable[[str], None] = print) -> None:
        self.client, self.project, self.environment = client, project, environment
        self.dry_run, self.out = dry_run, out
        self.changes: list[str] = []

    def _change(self, description: str, method: str, path: str, body: Any,
                semantic_patch: bool = False) -> Any:
        self.changes.append(description)
        self.out(("would " if self.dry_run else "") + description)
        if not self.dry_run:
            return self.client.request(method, path, body=body, semantic_patch=semantic_patch)
        return None

    def sync_manifest(self, manifest: Manifest) -> list[str]:
        """Tools, segments, then each config's variations and targeting."""
        self.sync_tools(manifest)
        self.sync_segments(manifest)
        for config in manifest.configs:
            self.sync_config(manifest, config.key, list(config.variations))
            self.sync_targeting(config.key, [(r.segment, r.variation)
                                             for r in config.targeting.rules],
                                default=config.targeting.default)
        for graph in manifest.graphs:
            self.sync_graph(graph)
        return self.changes

    def sync_graph(self, graph: GraphSpec) -> None:
        """Create the agent graph if missing, or replace its root and edges if they differ.

        LaunchDarkly's agent-graph resource holds one root and one edge set (no variations),
        so it gets the topology of the graph's default variation.
        """
        base = f"/api/v2/projects/{self.project}/agent-graphs"
        want = graph_payload(graph)
        have = self.client.request("GET", f"{base}/{graph.key}", not_found_ok=True)
        if have is None:
            self._change(f"create agent graph {graph.key}", "POST", base, want)
        elif _comparable_graph(have) != _comparable_graph(want):
            self._change(f"update agent graph {graph.key}", "PATCH", f"{base}/{graph.key}",
                         {"rootConfigKey": want["rootConfigKey"], "edges": want["edges"]})

    def sync_tools(self, manifest: Manifest) -> None:
        base = f"/api/v2/projects/{self.project}/ai-tools"
        current = {t["key"]: t for t in self.client.paginate(base)}
        for tool in manifest.tools:
            want = tool_payload(manifest, tool.name)
            have = current.get(tool.name)
            if have is None:
                self._change(f"create tool {tool.name}", "POST", base, want)
            elif (have.get("description"), have.get("schema")) != (want["description"],
                                                                      want["schema"]):
                self._change(f"update tool {tool.name}", "PATCH", f"{base}/{tool.name}",
                             {"description": want["description"], "schema": want["schema"]})

    def sync_segments(self, manifest: Manifest) -> None:
        base = f"/api/v2/segments/{self.project}/{self.environment}"
        for segment in manifest.segments:
            have = self.client.request("GET", f"{base}/{segment.key}", not_found_ok=True)
            if have is None:
                self._change(f"create segment {segment.key}", "POST", base,
                             {"key": segment.key, "name": segment.name,
                              "description": segment.description, "tags": ["bootstrap"]})
                have = {"rules": []}
            want = [[{"contextKind": "user", "attribute": c.attribute, "op": c.op,
                      "values": list(c.values), "negate": c.negate} for c in rule.clauses]
                    for rule in segment.rules]
            current = have.get("rules", [])
            if sorted(map(_comparable_clauses, want)) == sorted(
                    _comparable_clauses(r.get("clauses", [])) for r in current):
                continue
            instructions = [{"kind": "removeRule", "ruleId": r["_id"]} for r in current]
            instructions += [{"kind": "addRule", "clauses": clauses} for clauses in want]
            self._change(f"set the rules of segment {segment.key}", "PATCH",
                         f"{base}/{segment.key}",
                         {"environmentKey": self.environment, "instructions": instructions,
                          "comment": "bootstrap: segment rules from the manifest"},
                         semantic_patch=True)

    def sync_config(self, manifest: Manifest, config_key: str,
                    variations: list[VariationSpec]) -> None:
        """Create the AI config if missing, then create or update each variation."""
        spec = manifest.config(config_key)
        base = f"/api/v2/projects/{self.project}/ai-configs"
        have = self.client.request("GET", f"{base}/{config_key}", not_found_ok=True)
        if have is None:
            self._change(f"create AI config {config_key}", "POST", base,
                         {"key": spec.key, "name": spec.name, "description": spec.description,
                          "mode": spec.mode, "tags": ["bootstrap"]})
            have = {"variations": []}
        current = {v.get("key"): v for v in have.get("variations", [])}
        for variation in variations:
            want = variation_payload(variation)
            old = current.get(variation.key)
            if old is None:
                self._change(f"create variation {config_key}/{variation.key}", "POST",
                             f"{base}/{config_key}/variations", want)
            elif _comparable_variation(old) != _comparable_variation(want):
                self._change(f"update variation {config_key}/{variation.key}", "PATCH",
                             f"{base}/{config_key}/variations/{variation.key}",
                             variation_patch(variation))

    def sync_targeting(self, config_key: str, rules: list[tuple[str, str]], *,
                       default: str | None, force_segments: frozenset[str] = frozenset()) -> None:
        """One rule per segment serving its variation; a rule serving a split rollout (a running
        experiment) is left alone unless its segment is in `force_segments` (promotion).

        Variations are referenced by the `_id` of the targeting variation (not the AI config
        variation's `_id`, and not its key), as the targeting semantic patch requires.
        """
        path = f"/api/v2/projects/{self.project}/ai-configs/{config_key}/targeting"
        targeting = None if self.dry_run and any(
            c.startswith(f"create AI config {config_key}") for c in self.changes) else \
            self.client.request("GET", path)
        targeting = targeting or {"variations": [], "environments": {}}
        variations = targeting.get("variations", [])
        keys = [targeting_key(v) for v in variations]
        ids = {key: v.get("_id") for key, v in zip(keys, variations, strict=True) if key}
        env = (targeting.get("environments") or {}).get(self.environment) or {}
        current = env.get("rules", [])

        def variation_id(key: str) -> str:
            if ids.get(key):
                return ids[key]
            if self.dry_run:  # the variation would be created first
                return f"<id of {key}>"
            raise LaunchDarklyError(
                f"GET {path}: variation {key!r} of {config_key} is not among its targeting "
                f"variations {sorted(ids)}; check that it was created, then run again")

        instructions: list[dict[str, Any]] = []
        notes: list[str] = []
        for segment, variation in rules:
            matching = [r for r in current if rule_segment(r) == segment]
            if not matching:
                instructions.append({"kind": "addRule", "clauses": [_segment_clause(segment)],
                                     "variationId": variation_id(variation)})
                notes.append(f"add rule {segment} -> {variation}")
                continue
            instructions += [{"kind": "removeRule", "ruleId": r["_id"]} for r in matching[1:]]
            notes += [f"remove duplicate rule for {segment}"] * (len(matching) - 1)
            serves = rule_serves(matching[0], keys)
            if serves is None and segment not in force_segments:
                self.out(f"left alone: {config_key} rule for {segment} serves a percentage "
                         "rollout (a running experiment); promote it to change it")
            elif serves != variation:
                instructions.append({"kind": "updateRuleVariationOrRollout",
                                     "ruleId": matching[0]["_id"],
                                     "variationId": variation_id(variation)})
                notes.append(f"serve {variation} to {segment}")
        fallthrough = (env.get("fallthrough") or {}).get("variation")
        serves_default = keys[fallthrough] if isinstance(fallthrough, int) and \
            0 <= fallthrough < len(keys) else None
        if default is not None and serves_default != default:
            instructions.append({"kind": "updateFallthroughVariationOrRollout",
                                 "variationId": variation_id(default)})
            notes.append(f"default {default}")
        if env.get("enabled") is False:
            # AI Configs have no turnFlagOn/turnTargetingOn instruction: say so, don't guess one.
            self.out(f"note: targeting of {config_key} is off in {self.environment}; turn it on "
                     "in the LaunchDarkly UI, or contexts get the off variation")
        if instructions:
            self._change(f"update targeting of {config_key} in {self.environment}: "
                         + "; ".join(notes), "PATCH", path,
                         {"environmentKey": self.environment, "instructions": instructions,
                          "comment": "bootstrap: targeting from the manifest"},
                         semantic_patch=True)
