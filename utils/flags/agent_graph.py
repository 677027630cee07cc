"""The support assistant's Agent Graph config: its key, the topology a variation serves, and
the privacy rules every topology must keep.

A LaunchDarkly Agent Graph variation is served as the value `ldai` reads
(`LDAIClient.agent_graph`): `{"root": <config key>, "edges": {<source key>: [{"key": <target
key>, "handoff": {...}}]}, "_ldMeta": {...}}`. Here each edge's handoff carries `when`, the
condition under which the source hands the request to the target:

- `flagged`: the supervisor's deterministic detector (or its model) flagged the request,
- `clean`: the detector found nothing and the model added nothing,
- `always`: every request.

Privacy is code, not config: `parse_topology` refuses any topology in which a request could
reach the support agent without the supervisor's deterministic detector having run first, or
in which a flagged request could reach any model but the security agent's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from utils.flags.agent_configs import (
    AGENT_CONFIG_KEYS,
    SECURITY_CONFIG,
    SUPERVISOR_CONFIG,
    SUPPORT_CONFIG,
)

GRAPH_CONFIG = "support-assistant-graph"
DEFAULT_TOPOLOGY_KEY = "detector-routed"  # the built-in topology, served when no valid one is

When = Literal["flagged", "clean", "always"]
HANDOFF_CONDITIONS: tuple[When, ...] = ("flagged", "clean", "always")


class TopologyRefused(ValueError):
    """A graph variation that must not run, with the reason."""


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    when: When = "always"


@dataclass(frozen=True)
class Topology:
    """A validated graph: hashable, so one compiled LangGraph serves every equal topology."""

    root: str
    edges: tuple[GraphEdge, ...]

    def targets(self, source: str) -> dict[str, When]:
        return {e.target: e.when for e in self.edges if e.source == source}

    @property
    def always_security(self) -> bool:
        return self.targets(SUPERVISOR_CONFIG).get(SECURITY_CONFIG) == "always"

    def as_value(self) -> dict[str, Any]:
        """The variation value (without `_ldMeta`) in the shape `ldai` reads."""
        edges: dict[str, list[dict[str, Any]]] = {}
        for edge in self.edges:
            edges.setdefault(edge.source, []).append(
                {"key": edge.target, "handoff": {"when": edge.when}})
        return {"root": self.root, "edges": edges}


def _edges_of(value: Mapping[str, Any]) -> list[GraphEdge]:
    raw = value.get("edges", {})
    if not isinstance(raw, dict):
        raise TopologyRefused(f"edges is a {type(raw).__name__}, not an object of source keys")
    edges: list[GraphEdge] = []
    for source, targets in raw.items():
        if not isinstance(targets, list):
            raise TopologyRefused(f"edges[{source!r}] is not a list")
        for target in targets:
            if not isinstance(target, dict) or not isinstance(target.get("key"), str):
                raise TopologyRefused(f"edges[{source!r}] has an entry without a key: {target!r}")
            handoff = target.get("handoff") or {}
            if not isinstance(handoff, dict):
                raise TopologyRefused(f"edge {source} -> {target['key']}: handoff is not an "
                                      "object")
            when = handoff.get("when", "always")
            if when not in HANDOFF_CONDITIONS:
                raise TopologyRefused(f"edge {source} -> {target['key']}: handoff.when {when!r} "
                                      f"is not one of {', '.join(HANDOFF_CONDITIONS)}")
            edges.append(GraphEdge(source, target["key"], when))
    return edges


def _cycle(edges: list[GraphEdge]) -> list[str] | None:
    """A cycle among `edges` as a list of keys, or None."""
    children: dict[str, list[str]] = {}
    for e in edges:
        children.setdefault(e.source, []).append(e.target)
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for child in children.get(node, []):
            if state.get(child) == 1:
                return [*stack[stack.index(child):], child] if child in stack else [node, child]
            if child not in state and (found := visit(child, [*stack, child])):
                return found
        state[node] = 2
        return None

    for start in list(children):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def parse_topology(value: Any) -> Topology:
    """The topology a graph variation value serves; `TopologyRefused` saying why if it must not
    run (malformed, unknown agent, cyclic, or a route that would skip the detector or hand a
    flagged request to a model other than the security agent's)."""
    if not isinstance(value, dict):
        raise TopologyRefused(f"the graph variation is a {type(value).__name__}, not an object")
    root = value.get("root")
    if not root:
        raise TopologyRefused("the graph variation has no root (a disabled graph)")
    if root != SUPERVISOR_CONFIG:
        raise TopologyRefused(f"root {root!r} is not {SUPERVISOR_CONFIG!r}: the deterministic "
                              "PII detector runs in the supervisor, so every request starts there")
    edges = _edges_of(value)
    for e in edges:
        for key in (e.source, e.target):
            if key not in AGENT_CONFIG_KEYS:
                raise TopologyRefused(f"edge {e.source} -> {e.target}: unknown agent config "
                                      f"{key!r}; known: {', '.join(AGENT_CONFIG_KEYS)}")
    pairs = [(e.source, e.target) for e in edges]
    if len(set(pairs)) != len(pairs):
        raise TopologyRefused("an edge is declared twice")
    if (cycle := _cycle(edges)) is not None:
        raise TopologyRefused(f"the graph has a cycle: {' -> '.join(cycle)}")
    topology = Topology(root, tuple(edges))
    _check_privacy(topology)
    return topology


def _check_privacy(t: Topology) -> None:
    """The rules that keep raw personal data away from every model but the security agent's."""
    from_supervisor = t.targets(SUPERVISOR_CONFIG)
    from_security = t.targets(SECURITY_CONFIG)
    if t.targets(SUPPORT_CONFIG):
        raise TopologyRefused(f"{SUPPORT_CONFIG} hands off to "
                              f"{', '.join(t.targets(SUPPORT_CONFIG))}: the support agent answers "
                              "the user and hands off to no one")
    to_security = from_supervisor.get(SECURITY_CONFIG)
    if to_security not in ("flagged", "always"):
        raise TopologyRefused(f"{SUPERVISOR_CONFIG} has no edge to {SECURITY_CONFIG} for flagged "
                              "requests: personal data would have no safe way through")
    to_support = from_supervisor.get(SUPPORT_CONFIG)
    if to_support is not None and to_support != "clean":
        raise TopologyRefused(f"{SUPERVISOR_CONFIG} -> {SUPPORT_CONFIG} must be `when: clean`, "
                              f"not {to_support!r}: a flagged request would reach the support "
                              "model with its personal data")
    if to_support is None and to_security == "flagged":
        raise TopologyRefused(f"{SUPERVISOR_CONFIG} -> {SECURITY_CONFIG} is `when: flagged` but "
                              "no edge takes clean requests: make it `always`")
    if to_support is not None and to_security == "always":
        raise TopologyRefused(f"{SUPERVISOR_CONFIG} sends every request to {SECURITY_CONFIG} "
                              f"(`always`) and clean ones to {SUPPORT_CONFIG}: ambiguous")
    if from_security.get(SUPPORT_CONFIG) != "always":
        raise TopologyRefused(f"{SECURITY_CONFIG} must hand off to {SUPPORT_CONFIG} (`always`): "
                              "otherwise a redacted request gets no answer")


DETECTOR_ROUTED = parse_topology({
    "root": SUPERVISOR_CONFIG,
    "edges": {SUPERVISOR_CONFIG: [{"key": SECURITY_CONFIG, "handoff": {"when": "flagged"}},
                                  {"key": SUPPORT_CONFIG, "handoff": {"when": "clean"}}],
              SECURITY_CONFIG: [{"key": SUPPORT_CONFIG, "handoff": {"when": "always"}}]},
})


@dataclass(frozen=True)
class ServedGraph:
    """The topology one request runs, which variation served it, and why if it fell back."""

    topology: Topology
    variation_key: str
    version: int = 1
    problem: str | None = None  # set when the served variation was refused
    in_experiment: bool = False  # LaunchDarkly served it from an experiment rollout

    @property
    def fell_back(self) -> bool:
        return self.problem is not None


BUILT_IN_GRAPH = ServedGraph(DETECTOR_ROUTED, DEFAULT_TOPOLOGY_KEY)


def serve(value: Any) -> ServedGraph:
    """The graph a served variation value runs: its topology, or the built-in one with the
    reason it was refused."""
    meta = value.get("_ldMeta") if isinstance(value, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    variation = str(meta.get("variationKey") or "unknown")
    try:
        version = int(meta.get("version") or 1)
    except (TypeError, ValueError):
        version = 1
    if meta.get("enabled") is False:
        return ServedGraph(DETECTOR_ROUTED, variation, version,
                           f"graph variation {variation!r} is disabled")
    try:
        return ServedGraph(parse_topology(value), variation, version)
    except TopologyRefused as exc:
        return ServedGraph(DETECTOR_ROUTED, variation, version,
                           f"graph variation {variation!r} refused: {exc}")
