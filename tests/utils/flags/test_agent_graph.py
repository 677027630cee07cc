"""Agent Graph topologies: the shape ldai reads, refusals, and the privacy invariant under
every edge set that can be built from the three agents."""

from __future__ import annotations

import itertools

import pytest
from ldai.client import LDAIClient

from agents.graph import GraphCache, route_after_supervisor
from bootstrap.graph_manifest import graph_value
from bootstrap.manifest import load_manifest
from utils.flags.agent_configs import (
    AGENT_CONFIG_KEYS,
    SECURITY_CONFIG,
    SUPERVISOR_CONFIG,
    SUPPORT_CONFIG,
)
from utils.flags.agent_graph import (
    DETECTOR_ROUTED,
    GRAPH_CONFIG,
    HANDOFF_CONDITIONS,
    TopologyRefused,
    parse_topology,
    serve,
)


def value(edges, root=SUPERVISOR_CONFIG, key="v"):
    out: dict = {}
    for source, target, when in edges:
        out.setdefault(source, []).append({"key": target, "handoff": {"when": when}})
    return {"_ldMeta": {"variationKey": key, "version": 1, "enabled": True},
            "root": root, "edges": out}


def manifest_values():
    graph = load_manifest().graph(GRAPH_CONFIG)
    return {v.key: graph_value(graph, v) for v in graph.variations}


def test_manifest_variations_parse_to_the_intended_topologies() -> None:
    values = manifest_values()
    assert parse_topology(values["detector-routed"]) == DETECTOR_ROUTED
    always = parse_topology(values["always-security"])
    assert always.always_security and SUPPORT_CONFIG not in always.targets(SUPERVISOR_CONFIG)


class _FakeLD:
    """What LDAIClient calls on an LDClient: `variation` (the graph and each agent config)."""

    def __init__(self, served: dict) -> None:
        self.served = served

    def variation(self, key, context, default):
        return self.served.get(key, default)

    def track(self, *args, **kwargs):
        pass


def test_ldai_reads_the_value_shape_bootstrap_writes() -> None:
    from ldclient import Context
    graph_value_ = manifest_values()["always-security"]
    agent = {"_ldMeta": {"enabled": True, "variationKey": "x", "version": 1, "mode": "agent"},
             "model": {"name": "gpt-4o"}, "provider": {"name": "openai"}, "instructions": "i"}
    served = {GRAPH_CONFIG: graph_value_, **{k: agent for k in AGENT_CONFIG_KEYS}}
    definition = LDAIClient(_FakeLD(served)).agent_graph(GRAPH_CONFIG, Context.create("u"))
    assert definition.enabled
    assert definition.root().get_key() == SUPERVISOR_CONFIG
    assert [(e.source_config, e.target_config, e.handoff) for e in
            definition.root().get_edges()] == [(SUPERVISOR_CONFIG, SECURITY_CONFIG,
                                                {"when": "always"})]
    assert [n.get_key() for n in definition.get_child_nodes(SECURITY_CONFIG)] == [SUPPORT_CONFIG]


@pytest.mark.parametrize("bad, words", [
    ("a string", "not an object"),
    ({"edges": {}}, "no root"),
    (value([(SECURITY_CONFIG, SUPPORT_CONFIG, "always")], root=SECURITY_CONFIG), "root"),
    (value([(SUPERVISOR_CONFIG, "rogue-agent", "always")]), "unknown agent config"),
    (value([(SUPERVISOR_CONFIG, SECURITY_CONFIG, "sometimes")]), "handoff.when"),
    ({"root": SUPERVISOR_CONFIG, "edges": []}, "not an object"),
    (value([(SUPERVISOR_CONFIG, SECURITY_CONFIG, "flagged"),
            (SECURITY_CONFIG, SUPPORT_CONFIG, "always"),
            (SUPPORT_CONFIG, SECURITY_CONFIG, "always")]), "cycle"),
    (value([(SUPERVISOR_CONFIG, SUPPORT_CONFIG, "always")]), "no edge to security-agent"),
    (value([(SUPERVISOR_CONFIG, SECURITY_CONFIG, "flagged"),
            (SUPERVISOR_CONFIG, SUPPORT_CONFIG, "always"),
            (SECURITY_CONFIG, SUPPORT_CONFIG, "always")]), "must be `when: clean`"),
    (value([(SUPERVISOR_CONFIG, SECURITY_CONFIG, "always")]), "no answer"),
    (value([(SUPERVISOR_CONFIG, SECURITY_CONFIG, "flagged"),
            (SECURITY_CONFIG, SUPPORT_CONFIG, "always")]), "no edge takes clean"),
])
def test_refused_topologies_say_why(bad, words) -> None:
    with pytest.raises(TopologyRefused, match=words):
        parse_topology(bad)
    served = serve(bad)
    assert served.fell_back and served.topology == DETECTOR_ROUTED and words in served.problem


def test_a_disabled_variation_falls_back() -> None:
    disabled = manifest_values()["always-security"]
    disabled["_ldMeta"]["enabled"] = False
    assert serve(disabled).fell_back and serve(disabled).topology == DETECTOR_ROUTED


def _every_edge_set():
    """Every set of directed edges among the three agents (self-loops too), with every
    handoff condition on each edge."""
    pairs = list(itertools.product(AGENT_CONFIG_KEYS, repeat=2))
    for n in range(len(pairs) + 1):
        for subset in itertools.combinations(pairs, n):
            if n > 4:  # four edges out of three nodes already includes every accepted shape
                continue
            for whens in itertools.product(HANDOFF_CONDITIONS, repeat=n):
                yield [(s, t, w) for (s, t), w in zip(subset, whens, strict=True)]


def test_privacy_invariant_under_every_edge_set() -> None:
    accepted, tried, cache = set(), 0, GraphCache()
    flagged_state = {"route": "security"}
    for edges in _every_edge_set():
        tried += 1
        try:
            topology = parse_topology(value(edges))
        except TopologyRefused:
            continue
        accepted.add(topology)
        compiled = cache.get(topology).get_graph()
        adjacency: dict[str, set[str]] = {}
        for edge in compiled.edges:
            adjacency.setdefault(edge.source, set()).add(edge.target)
        # The detector (supervisor) runs first, on every request.
        assert adjacency["__start__"] == {"supervisor"}
        # Support is reached only from the supervisor (clean verdict) or from security.
        assert {s for s, targets in adjacency.items() if "support" in targets} <= \
            {"supervisor", "security"}
        assert "supervisor" not in {t for s, ts in adjacency.items() if s != "__start__"
                                    for t in ts}
        # A flagged (or undecided) request always goes to security first.
        assert route_after_supervisor(flagged_state) == "security"
        if "support" in adjacency["supervisor"]:
            assert topology.targets(SUPERVISOR_CONFIG)[SUPPORT_CONFIG] == "clean"
    assert tried > 10_000
    assert accepted == {DETECTOR_ROUTED, parse_topology(manifest_values()["always-security"])}
    assert len(cache) == 2
