"""Fault injection, providers: a cut stream, a hang, 429/500, through the OpenAI wire fake.

The US paid user's supervisor (gpt-4o-mini) and support (gpt-4o) models are OpenAI, so they
are live against the fake; security (Anthropic) stays simulated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from agents.models import build_chat_model
from agents.stream_check import IncompleteReply
from tests.fakes.openai_server import FakeOpenAI
from utils.settings import get_settings
from utils.telemetry import metrics


@contextmanager
def _live_app(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, **env: str) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from api.main import create_app

    for key, value in {"LLM_MODE": "auto", "OPENAI_BASE_URL": fake.base_url,
                       "PROVIDER_MAX_RETRIES": "0", **env}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        yield client


def _ask(client: Any, user_id: str) -> Any:
    return client.post("/chat", json={"user_id": user_id, "message": "What is Q-learning?",
                                      "user_context": {"country": "US", "plan": "paid"}})


def _events(client: Any, request_id: str) -> list[tuple[str, str, float]]:
    rows = client.app.state.service.store.query(
        "SELECT agent, event_key, value FROM events WHERE request_id = ? ORDER BY id",
        (request_id,))
    return [(r["agent"], r["event_key"], r["value"]) for r in rows]


def _request_status(client: Any, request_id: str) -> str:
    return client.app.state.service.store.query(
        "SELECT status FROM requests WHERE request_id = ?", (request_id,))[0]["status"]


def test_a_cut_stream_is_an_error_at_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI(answer="one two three four five six") as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("LLM_MODE", "auto")
        get_settings.cache_clear()
        model = build_chat_model("openai", "gpt-4o", {}, get_settings())
        whole = asyncio.run(model.ainvoke([HumanMessage("hi")]))
        fake.cut_after = 4  # role chunk, pause, two content chunks
        with pytest.raises(IncompleteReply, match="without a finish reason"):
            asyncio.run(model.ainvoke([HumanMessage("hi")]))
    assert whole.text == "one two three four five six"  # the same fake, uncut, succeeds


def test_a_stream_cut_mid_answer_is_a_502_recorded_as_failed_runs(
        flags_file, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI(answer="Q-learning is an off-policy TD control method") as fake, \
            _live_app(fake, monkeypatch) as client:
        fake.cut_after = 5  # role chunk, pause, three content chunks
        response = _ask(client, "cut")
        health = client.get("/health").json()
    assert response.status_code == 502, response.text
    detail = response.json()["detail"]
    assert "IncompleteReply" in detail["error"]
    assert "Q-learning is an" not in response.text  # the partial text is never answered
    events = _events(client, detail["request_id"])
    support = {key: value for agent, key, value in events if agent == "support"}
    assert support["$ld:ai:generation:error"] == 1
    assert "$ld:ai:generation:success" not in support
    assert ("supervisor", "$ld:ai:generation:error", 1.0) in events
    # The graph's events went into the same batch: its invocation failed.
    graph = [key for agent, key, _ in events if agent is None]
    assert graph[0] == metrics.GRAPH_PATH and graph[-1] == metrics.GRAPH_INVOCATION_FAILURE
    assert metrics.GRAPH_INVOCATION_SUCCESS not in graph
    assert _request_status(client, detail["request_id"]) == "error"
    assert health["status"] == "degraded"
    assert any("provider openai" in r and "finish reason" in r for r in health["reasons"])


def test_a_hanging_provider_times_out_per_call(flags_file,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI() as fake, _live_app(fake, monkeypatch, PROVIDER_TIMEOUT_S="0.5") as client:
        fake.hang_s = 3.0
        started = time.monotonic()
        response = _ask(client, "hang")
        elapsed = time.monotonic() - started
    assert response.status_code == 502, response.text
    assert "Timeout" in response.json()["detail"]["error"]
    # Two calls (supervisor, support), each one 0.5 s attempt: nowhere near the 3 s hang.
    assert elapsed < 2.5


def test_the_request_deadline_is_a_504_with_the_unfinished_run_recorded(
        flags_file, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI() as fake, _live_app(fake, monkeypatch, PROVIDER_TIMEOUT_S="30",
                                         REQUEST_DEADLINE_S="1") as client:
        fake.hang_s = 5.0
        started = time.monotonic()
        response = _ask(client, "deadline")
        elapsed = time.monotonic() - started
        assert response.status_code == 504, response.text
        detail = response.json()["detail"]
        assert "REQUEST_DEADLINE_S" in detail["error"]
        events = _events(client, detail["request_id"])
        status = _request_status(client, detail["request_id"])
        path = [e["data"]["path"] for e in client.app.state.service.store.events_of(
            detail["request_id"]) if e["event_key"] == metrics.GRAPH_PATH]
    assert elapsed < 2.5  # 1 s deadline, not 30 s per call
    assert status == "timeout"
    # The supervisor was waiting on the provider when the deadline hit: recorded as failed.
    assert ("supervisor", "$ld:ai:generation:error", 1.0) in events
    assert not [e for e in events if e[1] == "$ld:ai:generation:success"]
    assert (None, metrics.GRAPH_INVOCATION_FAILURE, 1.0) in events
    assert path == [["supervisor-agent"]]  # the graph got as far as the supervisor


@pytest.mark.parametrize("status", [429, 500])
def test_provider_errors_are_retried_as_configured_then_502(
        flags_file, monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    with FakeOpenAI() as fake, _live_app(fake, monkeypatch, PROVIDER_MAX_RETRIES="1") as client:
        fake.fail_status = status
        failed = _ask(client, f"fail-{status}")
        attempts = len(fake.requests)
        fake.fail_times = len(fake.requests) + 1  # the next attempt fails, its retry succeeds
        recovered = _ask(client, f"retry-{status}")
        health = client.get("/health").json()
    assert failed.status_code == 502, failed.text
    assert attempts % 2 == 0 and attempts >= 4  # every call tried twice (1 retry)
    assert recovered.status_code == 200, recovered.text
    assert health["status"] == "ok", health["reasons"]  # the last calls succeeded
