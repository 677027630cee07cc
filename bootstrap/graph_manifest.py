"""The manifest's `graphs:` section: Agent Graph configs and their topologies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from utils.flags.agent_graph import TopologyRefused, When, parse_topology

KEY_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GraphEdgeSpec(_Strict):
    source: str
    target: str
    when: When = "always"


class GraphVariationSpec(_Strict):
    key: str = Field(pattern=KEY_PATTERN)
    name: str = Field(min_length=1)
    edges: list[GraphEdgeSpec] = Field(min_length=1)


class GraphTargetingSpec(_Strict):
    default: str


class GraphSpec(_Strict):
    key: str = Field(pattern=KEY_PATTERN)
    name: str = Field(min_length=1)
    description: str = ""
    root: str
    variations: list[GraphVariationSpec] = Field(min_length=1)
    targeting: GraphTargetingSpec

    def variation(self, key: str) -> GraphVariationSpec | None:
        return next((v for v in self.variations if v.key == key), None)


def graph_value(graph: GraphSpec, variation: GraphVariationSpec, version: int = 1) -> dict:
    """The variation as LaunchDarkly serves an Agent Graph (the shape `ldai` reads)."""
    edges: dict[str, list[dict[str, Any]]] = {}
    for edge in variation.edges:
        edges.setdefault(edge.source, []).append({"key": edge.target,
                                                  "handoff": {"when": edge.when}})
    return {"_ldMeta": {"enabled": True, "variationKey": variation.key, "version": version,
                        "mode": "graph"},
            "root": graph.root, "edges": edges}


def graph_errors(graphs: list[GraphSpec], config_keys: set[str]) -> list[str]:
    """Unknown keys, duplicate variations, and every topology the privacy rules refuse."""
    errors: list[str] = []
    for gi, graph in enumerate(graphs):
        where = f"graphs[{gi}]({graph.key})"
        if graph.key in config_keys:
            errors.append(f"{where}.key: {graph.key!r} is already an AI config key")
        keys = [v.key for v in graph.variations]
        if len(set(keys)) != len(keys):
            errors.append(f"{where}.variations: keys must be unique; got {keys}")
        if graph.targeting.default not in keys:
            errors.append(f"{where}.targeting.default: {graph.targeting.default!r} is not a "
                          f"variation of {graph.key}; expected one of {keys}")
        for vi, variation in enumerate(graph.variations):
            try:
                parse_topology(graph_value(graph, variation))
            except TopologyRefused as exc:
                errors.append(f"{where}.variations[{vi}]({variation.key}): topology refused: "
                              f"{exc}")
    return errors
