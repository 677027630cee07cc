"""LaunchDarkly mode: the SDK streams flags from, and sends events to, a local fake service.

The fake answers the SDK's stream request (`GET /all`) with one SSE `put` event holding
the standard test flags, so the real client initialises and evaluates, and it records what
the event processor POSTs to `/bulk`. Nothing leaves the machine. OpenAI models are live
(served by the OpenAI fake) where a test needs real runs; the security agent's Anthropic
model stays simulated.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.flagfile import standard_flags
from tests.fakes.launchdarkly_sdk import FakeLaunchDarklySDK as FakeLaunchDarkly
from tests.fakes.live_app import ADMIN_TOKEN, ld_mode_app
from tests.fakes.openai_server import FakeOpenAI
from utils.telemetry import metrics

US_PAID = {"country": "US", "plan": "paid"}
AI_RUN_KEYS = {metrics.DURATION_TOTAL, metrics.TOKENS_TOTAL, metrics.TOKENS_INPUT,
               metrics.TOKENS_OUTPUT, metrics.GENERATION_SUCCESS}


@pytest.fixture
def fake_ld() -> Iterator[FakeLaunchDarkly]:
    with FakeLaunchDarkly(standard_flags()) as fake:
        yield fake




@pytest.fixture
def ld_client(fake_ld: FakeLaunchDarkly, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """LaunchDarkly mode, simulated providers, their runs allowed through (and marked)."""
    with ld_mode_app(fake_ld, tmp_path, monkeypatch, LD_TRACK_SIMULATED="true") as client:
        yield client


@pytest.fixture
def live_ld_client(fake_ld: FakeLaunchDarkly, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """LaunchDarkly mode with live OpenAI models (the OpenAI fake); Anthropic stays simulated
    and, by default, untracked."""
    with FakeOpenAI() as openai, ld_mode_app(fake_ld, tmp_path, monkeypatch, LLM_MODE="auto",
                                      OPENAI_BASE_URL=openai.base_url) as client:
        yield client


def _chat(client, message: str = "What is Q-learning?") -> dict[str, Any]:
    response = client.post("/chat", json={"user_id": "ld-user", "message": message,
                                          "user_context": US_PAID})
    assert response.status_code == 200, response.text
    return response.json()


def _flush(client) -> None:
    response = client.post("/admin/flush", headers={"X-Admin-Token": ADMIN_TOKEN})
    assert response.status_code == 200 and response.json()["mode"] == "launchdarkly"


def _data(event: dict[str, Any]) -> dict[str, Any]:
    # The AI SDK's own usage events carry a bare config key as their data.
    data = event.get("data")
    return data if isinstance(data, dict) else {}


def _keys_for(events: list[dict[str, Any]], config_key: str) -> set[str]:
    return {e["key"] for e in events if _data(e).get("configKey") == config_key}


def test_ai_events_and_cost_reach_the_events_endpoint_with_config_and_variation(
        ld_client, fake_ld: FakeLaunchDarkly) -> None:
    chat = _chat(ld_client)
    assert fake_ld.stream_connections >= 1
    served = {run["config_key"]: run["variation_key"] for run in chat["agents"]}
    assert served == {"supervisor-agent": "supervisor-basic", "support-agent": "other-paid"}
    feedback = ld_client.post("/feedback", json={"request_id": chat["request_id"],
                                                 "user_id": "ld-user", "kind": "positive"})
    assert feedback.json()["status"] == "recorded"
    _flush(ld_client)

    wanted = AI_RUN_KEYS | {metrics.COST_PER_REQUEST, metrics.FEEDBACK_POSITIVE}
    events = fake_ld.wait_for(lambda evs: all(wanted <= _keys_for(evs, c) for c in served))
    for config_key, variation_key in served.items():
        assert wanted <= _keys_for(events, config_key), config_key
        for event in events:
            data = _data(event)
            if data.get("configKey") == config_key:
                assert data["variationKey"] == variation_key, event
    support = [e for e in events if _data(e).get("configKey") == "support-agent"]
    tokens = next(e for e in support if e["key"] == metrics.TOKENS_TOTAL)
    run = next(r for r in chat["agents"] if r["agent"] == "support")
    assert tokens["metricValue"] == run["total_tokens"]
    cost = next(e for e in support if e["key"] == metrics.COST_PER_REQUEST)
    assert cost["metricValue"] == pytest.approx(run["cost_usd"])
    assert metrics.TOOL_CALL in {e["key"] for e in support} or not run["tools_used"]
    tracked = [e for e in events if _data(e).get("configKey")]
    assert {e["context"]["key"] for e in tracked} == {"ld-user"}  # per user, not anonymous


def test_flush_keeps_the_client_open_for_the_next_request(
        ld_client, fake_ld: FakeLaunchDarkly) -> None:
    first = _chat(ld_client)
    _flush(ld_client)
    second = _chat(ld_client, "How does SARSA differ from Q-learning?")
    assert second["request_id"] != first["request_id"]
    assert {r["variation_key"] for r in second["agents"]} == {"supervisor-basic", "other-paid"}
    _flush(ld_client)
    events = fake_ld.wait_for(
        lambda evs: sum(e["key"] == metrics.DURATION_TOTAL for e in evs) >= 4)
    run_ids = {_data(e).get("runId") for e in events
               if e["key"] == metrics.DURATION_TOTAL}
    assert len(run_ids) == 4  # two agent runs per request, both requests delivered
    health = ld_client.get("/health").json()
    assert health["flags"]["initialized"] is True


def _ai_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if _data(e).get("configKey")]


def test_feedback_rebuilds_each_run_tracker_from_its_resumption_token(
        live_ld_client, fake_ld: FakeLaunchDarkly) -> None:
    chat = _chat(live_ld_client, "How does PPO clip its objective?")
    live = {r["config_key"] for r in chat["agents"] if not r["simulated"]}
    assert live >= {"supervisor-agent", "support-agent"}
    live_ld_client.post("/feedback", json={"request_id": chat["request_id"],
                                           "user_id": "ld-user", "kind": "negative"})
    _flush(live_ld_client)
    events = fake_ld.wait_for(
        lambda evs: sum(e["key"] == metrics.FEEDBACK_NEGATIVE for e in evs) >= len(live))
    runs = {(_data(e)["configKey"], _data(e)["runId"], _data(e)["version"])
            for e in events if e["key"] == metrics.DURATION_TOTAL}
    feedback = {(_data(e)["configKey"], _data(e)["runId"], _data(e)["version"])
                for e in events if e["key"] == metrics.FEEDBACK_NEGATIVE}
    assert feedback == runs  # joined to its run, with the served version
    assert {config for config, _, _ in runs} == live  # the simulated run stayed out
    assert all(not _data(e).get("simulated") for e in _ai_events(events))


def test_simulated_runs_never_reach_launchdarkly_by_default(
        fake_ld: FakeLaunchDarkly, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ld_mode_app(fake_ld, tmp_path, monkeypatch) as client:  # no provider key: all simulated
        chat = _chat(client)
        assert chat["simulated"] is True
        client.post("/feedback", json={"request_id": chat["request_id"], "user_id": "ld-user",
                                       "kind": "positive"})
        _flush(client)
        fake_ld.wait_for(lambda evs: False, timeout=1.0)  # give stray events time to land
        assert _ai_events(fake_ld.custom_events()) == []
        stored = client.app.state.service.store.query(
            "SELECT COUNT(*) FROM events WHERE request_id = ?", (chat["request_id"],))
        assert stored[0][0] > 0  # still measured locally


def test_allowed_simulated_runs_are_marked(
        fake_ld: FakeLaunchDarkly, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ld_mode_app(fake_ld, tmp_path, monkeypatch, LD_TRACK_SIMULATED="true") as client:
        chat = _chat(client)
        client.post("/feedback", json={"request_id": chat["request_id"], "user_id": "ld-user",
                                       "kind": "positive"})
        _flush(client)
        wanted = AI_RUN_KEYS | {metrics.COST_PER_REQUEST, metrics.FEEDBACK_POSITIVE}
        events = fake_ld.wait_for(lambda evs: wanted <= {e["key"] for e in _ai_events(evs)})
    tracked = _ai_events(events)
    assert wanted <= {e["key"] for e in tracked}
    assert all(_data(e)["simulated"] is True for e in tracked)
    assert all(e["context"].get("simulated") is True for e in tracked if "context" in e)
