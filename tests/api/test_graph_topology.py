"""The served Agent Graph: its topology runs, hot reloads, refusals degrade /health, and its
graph events reach LaunchDarkly through AIGraphTracker."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from api.chat_service import ChatService
from api.composition import build_service
from api.graph_metrics import graph_events
from api.schemas import ChatRequest
from bootstrap.graph_manifest import graph_value
from bootstrap.manifest import load_manifest
from tests.fakes.flagfile import flag, standard_flags, write_flags
from utils.flags.agent_graph import BUILT_IN_GRAPH, GRAPH_CONFIG, serve
from utils.settings import get_settings
from utils.telemetry import metrics

CLEAN = "What is the Bellman optimality equation?"
PII = "My email is jane.doe+rl@example.org, what is TD learning?"


def graph_flag(serving: str, extra: list[dict] | None = None) -> dict:
    graph = load_manifest().graph(GRAPH_CONFIG)
    variations = [graph_value(graph, v) for v in graph.variations] + (extra or [])
    keys = [v["_ldMeta"]["variationKey"] for v in variations]
    return flag(GRAPH_CONFIG, variations, [], keys.index(serving))


def write_graph(path: Path, serving: str, extra: list[dict] | None = None) -> None:
    data = standard_flags()
    data["flags"][GRAPH_CONFIG] = graph_flag(serving, extra)
    write_flags(path, data)


@pytest.fixture
def service(flags_file: Path):
    made = build_service(get_settings())
    yield made
    made.close()


def ask(service: ChatService, message: str):
    request = ChatRequest(user_id="u-topology", message=message,
                          user_context={"country": "US", "plan": "paid"})
    return asyncio.run(service.chat(request))


def agents(response) -> list[str]:
    return [run.agent for run in response.agents]


def until(predicate, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_no_graph_flag_runs_the_built_in_topology(service) -> None:
    response = ask(service, CLEAN)
    assert agents(response) == ["supervisor", "support"]
    assert response.graph.variation_key == "detector-routed" and not response.graph.fell_back
    assert response.graph.path == ["supervisor-agent", "support-agent"]
    assert response.graph.handoffs == [["supervisor-agent", "support-agent"]]


def test_always_security_sends_a_clean_question_through_security(flags_file, service) -> None:
    write_graph(flags_file, "always-security")
    assert until(lambda: ask(service, CLEAN).graph.variation_key == "always-security")
    response = ask(service, CLEAN)
    assert agents(response) == ["supervisor", "security", "support"]
    assert response.graph.path == ["supervisor-agent", "security-agent", "support-agent"]
    pii = ask(service, PII)
    assert agents(pii) == ["supervisor", "security", "support"]
    assert "jane.doe+rl@example.org" not in pii.agents[1].redacted_text


def test_topology_change_hot_reloads_and_compiles_once(flags_file, service) -> None:
    write_graph(flags_file, "always-security")
    assert until(lambda: ask(service, CLEAN).graph.variation_key == "always-security")
    write_graph(flags_file, "detector-routed")
    assert until(lambda: ask(service, CLEAN).graph.variation_key == "detector-routed")
    assert agents(ask(service, CLEAN)) == ["supervisor", "support"]
    assert agents(ask(service, PII)) == ["supervisor", "security", "support"]
    for _ in range(5):
        ask(service, CLEAN)
    assert len(service.graphs) == 2  # one compiled graph per distinct topology, not per request


def test_refused_variation_falls_back_and_degrades_health(flags_file, client) -> None:
    skip = {"_ldMeta": {"variationKey": "skip-security", "version": 1, "enabled": True},
            "root": "supervisor-agent",
            "edges": {"supervisor-agent": [{"key": "support-agent",
                                            "handoff": {"when": "always"}}]}}
    write_graph(flags_file, "skip-security", [skip])
    body = {"user_id": "u-refused", "message": PII,
            "user_context": {"country": "US", "plan": "paid"}}

    def served_refused() -> bool:
        return client.post("/chat", json=body).json()["graph"]["fell_back"]

    assert until(served_refused)
    response = client.post("/chat", json=body).json()
    assert [a["agent"] for a in response["agents"]] == ["supervisor", "security", "support"]
    assert response["graph"]["variation_key"] == "skip-security"
    health = client.get("/health").json()
    assert health["status"] == "degraded"
    assert any("skip-security" in reason and "security-agent" in reason
               for reason in health["reasons"])


class RecordingLD:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict, float]] = []

    def track(self, key, context, data, value) -> None:
        self.events.append((key, data, value))


def test_graph_events_carry_the_graph_key_path_and_handoffs(service) -> None:
    response = ask(service, PII)
    ld = RecordingLD()
    served = serve(graph_flag("always-security")["variations"][1])
    graph_events(served, response.agents, success=True, ld_client=ld)
    keys = [key for key, _, _ in ld.events]
    assert keys == [metrics.GRAPH_PATH, metrics.GRAPH_HANDOFF_SUCCESS,
                    metrics.GRAPH_HANDOFF_SUCCESS, metrics.GRAPH_DURATION_TOTAL,
                    metrics.GRAPH_TOKENS_TOTAL, metrics.GRAPH_INVOCATION_SUCCESS]
    assert all(data["graphKey"] == GRAPH_CONFIG and data["variationKey"] == "always-security"
               for _, data, _ in ld.events)
    assert ld.events[0][1]["path"] == ["supervisor-agent", "security-agent", "support-agent"]
    assert [(d["sourceKey"], d["targetKey"]) for k, d, _ in ld.events
            if k == metrics.GRAPH_HANDOFF_SUCCESS] == [("supervisor-agent", "security-agent"),
                                                       ("security-agent", "support-agent")]
    failed = RecordingLD()
    graph_events(BUILT_IN_GRAPH, response.agents, success=False, ld_client=failed)
    assert failed.events[-1][0] == metrics.GRAPH_INVOCATION_FAILURE


def test_graph_tracking_never_fails_a_request(service) -> None:
    class Exploding:
        def track(self, *args) -> None:
            raise RuntimeError("LaunchDarkly down")

    calls = graph_events(BUILT_IN_GRAPH, ask(service, CLEAN).agents, success=True,
                         ld_client=Exploding())
    assert calls[-1][0] == metrics.GRAPH_INVOCATION_SUCCESS  # still kept for the store


def test_configs_shows_the_graph_each_demo_user_is_served(flags_file, client) -> None:
    write_graph(flags_file, "always-security")
    assert until(lambda: all(g["variation"] == "always-security"
                             for g in client.get("/configs").json()["graphs"].values()))
    graph = next(iter(client.get("/configs").json()["graphs"].values()))
    assert graph["root"] == "supervisor-agent"
    assert graph["edges"]["supervisor-agent"] == [{"key": "security-agent",
                                                   "handoff": {"when": "always"}}]


def test_configs_names_the_graph_config_its_nodes_and_why_it_fell_back(flags_file,
                                                                       client) -> None:
    write_graph(flags_file, "detector-routed")
    assert until(lambda: all(g["variation"] == "detector-routed"
                             for g in client.get("/configs").json()["graphs"].values()))
    graph = next(iter(client.get("/configs").json()["graphs"].values()))
    assert graph["config"] == "support-assistant-graph" and graph["problem"] is None
    assert graph["nodes"] == ["supervisor-agent", "security-agent", "support-agent"]
    whens = {(s, e["key"]): e["handoff"]["when"] for s, es in graph["edges"].items() for e in es}
    assert whens == {("supervisor-agent", "security-agent"): "flagged",
                     ("supervisor-agent", "support-agent"): "clean",
                     ("security-agent", "support-agent"): "always"}
    skip = {"_ldMeta": {"variationKey": "skip-security", "version": 1, "enabled": True},
            "root": "supervisor-agent",
            "edges": {"supervisor-agent": [{"key": "support-agent",
                                            "handoff": {"when": "always"}}]}}
    write_graph(flags_file, "skip-security", [skip])
    assert until(lambda: all(g["fell_back"]
                             for g in client.get("/configs").json()["graphs"].values()))
    graph = next(iter(client.get("/configs").json()["graphs"].values()))
    assert graph["variation"] == "skip-security" and "refused" in graph["problem"]
