"""A request's graph events: the local store gets exactly what LaunchDarkly gets (the SDK's
event endpoint, faked), in the request's own write batch, on the served graph variation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_graph_topology import graph_flag
from tests.fakes.flagfile import standard_flags
from tests.fakes.launchdarkly_sdk import FakeLaunchDarklySDK
from tests.fakes.live_app import ADMIN_TOKEN, ld_mode_app
from utils.flags.agent_graph import GRAPH_CONFIG
from utils.telemetry import metrics

CLEAN = "What is the Bellman optimality equation?"
GRAPH_KEYS = {metrics.GRAPH_INVOCATION_SUCCESS, metrics.GRAPH_INVOCATION_FAILURE,
              metrics.GRAPH_PATH, metrics.GRAPH_HANDOFF_SUCCESS, metrics.GRAPH_DURATION_TOTAL,
              metrics.GRAPH_TOKENS_TOTAL}


@pytest.fixture
def fake_ld() -> Iterator[FakeLaunchDarklySDK]:
    data = standard_flags()
    data["flags"][GRAPH_CONFIG] = graph_flag("always-security")
    with FakeLaunchDarklySDK(data) as fake:
        yield fake




def _chat_and_flush(client) -> dict[str, Any]:
    response = client.post("/chat", json={"user_id": "graph-user", "message": CLEAN,
                                          "user_context": {"country": "US", "plan": "paid"}})
    assert response.status_code == 200, response.text
    flushed = client.post("/admin/flush", headers={"X-Admin-Token": ADMIN_TOKEN})
    assert flushed.status_code == 200
    return response.json()


def _graph_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if isinstance(e.get("data"), dict)
            and e["data"].get("graphKey") == GRAPH_CONFIG]


def _canonical(key: str, value: float, data: dict[str, Any] | None) -> str:
    return json.dumps([key, float(value), data or {}], sort_keys=True)


def test_the_store_gets_the_graph_events_launchdarkly_gets(
        fake_ld: FakeLaunchDarklySDK, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ld_mode_app(fake_ld, tmp_path, monkeypatch, LD_TRACK_SIMULATED="true") as client:
        chat = _chat_and_flush(client)
        sent = _graph_events(fake_ld.wait_for(lambda evs: any(
            e["key"] == metrics.GRAPH_INVOCATION_SUCCESS for e in _graph_events(evs))))
        rows = client.app.state.service.store.events_of(chat["request_id"])
    stored = [e for e in rows if e["agent"] is None]
    assert len({e["ts"] for e in rows}) == 1  # one write batch with the agents' rows
    path = ["supervisor-agent", "security-agent", "support-agent"]
    assert chat["graph"]["path"] == path  # always-security: a clean question too
    assert {e["variation_key"] for e in stored} == {"always-security"}
    assert {e["data"]["variationKey"] for e in sent} == {"always-security"}
    assert all(e["config_key"] == GRAPH_CONFIG and e["model"] is None for e in stored)
    assert [e["event_key"] for e in stored] == [
        metrics.GRAPH_PATH, metrics.GRAPH_HANDOFF_SUCCESS, metrics.GRAPH_HANDOFF_SUCCESS,
        metrics.GRAPH_DURATION_TOTAL, metrics.GRAPH_TOKENS_TOTAL,
        metrics.GRAPH_INVOCATION_SUCCESS]
    # Same keys, values, path and handoffs on both sides; only the store's columns differ.
    column_data = {"graphKey", "variationKey", "version", "simulated"}
    assert sorted(_canonical(e["key"], e["metricValue"],
                             {k: v for k, v in e["data"].items() if k not in column_data})
                  for e in sent) == \
        sorted(_canonical(e["event_key"], e["value"], e["data"]) for e in stored)
    assert all(e["data"]["simulated"] is True for e in sent)  # simulated, and marked so
    assert all(e["simulated"] == 1 for e in stored)


def test_simulated_graph_events_stay_out_of_launchdarkly_by_default(
        fake_ld: FakeLaunchDarklySDK, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ld_mode_app(fake_ld, tmp_path, monkeypatch) as client:  # no provider key: all simulated
        chat = _chat_and_flush(client)
        fake_ld.wait_for(lambda evs: False, timeout=1.0)  # give stray events time to land
        stored = client.app.state.service.store.events_of(chat["request_id"])
    assert _graph_events(fake_ld.custom_events()) == []
    assert {e["event_key"] for e in stored if e["agent"] is None} >= {
        metrics.GRAPH_PATH, metrics.GRAPH_INVOCATION_SUCCESS}  # still recorded locally
