"""The chat-model factory: live providers get the served parameters; the simulator is honest."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from agents.models import ProviderNotConfigured, build_chat_model, provider_is_live
from agents.simulated import SimulatedChatModel
from tests.fakes.openai_server import FakeOpenAI
from utils.settings import get_settings
from utils.tokens import count_tokens


def _settings(monkeypatch, **env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return get_settings()


def test_live_providers_are_built_with_the_served_parameters(monkeypatch) -> None:
    settings = _settings(monkeypatch, LLM_MODE="auto", OPENAI_API_KEY="sk-test",
                         ANTHROPIC_API_KEY="sk-ant-test", MISTRAL_API_KEY="m-test")
    params = {"temperature": 0.3, "max_tokens": 321, "tools": ["ignored"]}
    openai = build_chat_model("openai", "gpt-4o", params, settings)
    anthropic = build_chat_model("anthropic", "claude-haiku-4-5", params, settings)
    mistral = build_chat_model("mistral", "mistral-small-latest", params, settings)
    assert (type(openai).__name__, openai.model_name, openai.temperature, openai.max_tokens) == \
        ("ChatOpenAI", "gpt-4o", 0.3, 321)
    assert (type(anthropic).__name__, anthropic.model, anthropic.max_tokens) == \
        ("ChatAnthropic", "claude-haiku-4-5", 321)
    assert (type(mistral).__name__, mistral.model, mistral.temperature) == \
        ("ChatMistralAI", "mistral-small-latest", 0.3)


def test_auto_mode_simulates_providers_without_keys(monkeypatch) -> None:
    settings = _settings(monkeypatch, LLM_MODE="auto")
    model = build_chat_model("anthropic", "claude-opus-4-1", {"temperature": 0}, settings)
    assert isinstance(model, SimulatedChatModel)


def test_live_mode_without_a_key_is_a_clear_error(monkeypatch) -> None:
    settings = _settings(monkeypatch, LLM_MODE="live")
    with pytest.raises(ProviderNotConfigured, match="mistral"):
        provider_is_live("mistral", settings)


def test_openai_compatible_server_usage_is_parsed(monkeypatch) -> None:
    with FakeOpenAI(usage=(120, 30)) as fake:
        settings = _settings(monkeypatch, LLM_MODE="auto", OPENAI_BASE_URL=fake.base_url)
        model = build_chat_model("openai", "gpt-4o", {"temperature": 0.1}, settings)
        reply = model.invoke([SystemMessage("Be brief."), HumanMessage("What is Q-learning?")])
    assert reply.text == "Q-learning is off-policy TD control."
    assert reply.usage_metadata["input_tokens"] == 120
    assert reply.usage_metadata["output_tokens"] == 30
    assert fake.requests[0]["body"]["model"] == "gpt-4o"
    assert fake.requests[0]["body"]["temperature"] == 0.1
    assert fake.requests[0]["body"]["stream"] is True  # streamed, for time to first token


@contextmanager
def _app_with_live_openai(fake: FakeOpenAI, monkeypatch) -> Iterator[Any]:
    """A test client of the app whose OpenAI models are live, served by `fake`."""
    from fastapi.testclient import TestClient

    from api.main import create_app

    _settings(monkeypatch, LLM_MODE="auto", OPENAI_BASE_URL=fake.base_url)
    with TestClient(create_app()) as client:
        yield client


def _ask_us_paid(client: Any, user_id: str) -> Any:
    return client.post("/chat", json={"user_id": user_id, "message": "What is Q-learning?",
                                      "user_context": {"country": "US", "plan": "paid"}})


def test_live_runs_report_a_measured_time_to_first_token(flags_file, monkeypatch) -> None:
    with FakeOpenAI(first_token_delay_s=0.08) as fake, \
            _app_with_live_openai(fake, monkeypatch) as client:
        response = _ask_us_paid(client, "ttft")
    assert response.status_code == 200
    runs = {run["agent"]: run for run in response.json()["agents"]}
    # The supervisor (gpt-4o-mini) and support (gpt-4o) models are OpenAI: live, via the fake.
    for agent in ("supervisor", "support"):
        run = runs[agent]
        assert run["simulated"] is False
        assert 80 <= run["time_to_first_token_ms"] <= run["duration_ms"]
    assert runs["support"]["output_tokens"] == 7  # usage from the stream's last chunk


def test_supervisor_forces_its_route_tool_on_a_live_provider(monkeypatch) -> None:
    import asyncio

    from agents.supervisor import RouteDecision, _classifier, parse_decision

    verdict = {"needs_security": True, "reason": "a person is named"}
    with FakeOpenAI(tool_call=("RouteDecision", verdict), usage=(90, 12)) as fake:
        settings = _settings(monkeypatch, LLM_MODE="auto", OPENAI_BASE_URL=fake.base_url)
        model = build_chat_model("openai", "gpt-4o-mini", {"temperature": 0}, settings)
        reply = asyncio.run(_classifier(model).ainvoke(
            [SystemMessage("Route."), HumanMessage("Ask Maria about SARSA.")]))
    body = fake.requests[0]["body"]
    assert body["tool_choice"] == "required"  # "any" on the wire for OpenAI
    assert [t["function"]["name"] for t in body["tools"]] == ["RouteDecision"]
    assert parse_decision(reply) == RouteDecision(**verdict)
    assert reply.usage_metadata["input_tokens"] == 90


def test_a_reply_without_a_valid_route_call_is_no_decision() -> None:
    from langchain_core.messages import AIMessage

    from agents.supervisor import parse_decision

    assert parse_decision(AIMessage("I think it is fine.")) is None
    bad = AIMessage("", tool_calls=[{"name": "RouteDecision", "id": "1", "type": "tool_call",
                                     "args": {"needs_security": "perhaps"}}])
    assert parse_decision(bad) is None


def test_provider_500_becomes_a_502_with_the_error_tracked(flags_file, monkeypatch) -> None:
    with FakeOpenAI() as fake, _app_with_live_openai(fake, monkeypatch) as client:
        fake.fail_status = 500
        response = _ask_us_paid(client, "u500")
        assert response.status_code == 502
        detail = response.json()["detail"]
        assert "openai" in detail["error"] and detail["request_id"]
        rows = client.app.state.service.store.query(
            "SELECT agent FROM events WHERE request_id = ? AND event_key = "
            "'$ld:ai:generation:error' ORDER BY id", (detail["request_id"],))
        # Both OpenAI-backed agents failed: the supervisor (then failed closed to
        # security, which is simulated here) and the support agent.
        assert [row["agent"] for row in rows] == ["supervisor", "support"]
        routed = client.app.state.service.store.query(
            "SELECT routed_to_security, status FROM requests WHERE request_id = ?",
            (detail["request_id"],))
        assert tuple(routed[0]) == (1, "error")


def test_simulated_model_is_deterministic_for_a_seed() -> None:
    messages = [SystemMessage("You restate."), HumanMessage("Explain eligibility traces.")]
    one = SimulatedChatModel(model_name="gpt-4o", seed=7).invoke(messages)
    two = SimulatedChatModel(model_name="gpt-4o", seed=7).invoke(messages)
    other = SimulatedChatModel(model_name="gpt-4o", seed=8).invoke(messages)
    assert one.text == two.text and one.usage_metadata == two.usage_metadata
    assert one.response_metadata["simulated_latency_ms"] == \
        two.response_metadata["simulated_latency_ms"]
    assert other.response_metadata["simulated_latency_ms"] != \
        one.response_metadata["simulated_latency_ms"]


def test_simulated_tokens_are_real_bpe_counts() -> None:
    text = "Explain eligibility traces."
    reply = SimulatedChatModel(model_name="gpt-4o").invoke([HumanMessage(text)])
    assert reply.usage_metadata["output_tokens"] == count_tokens(reply.text)
    assert reply.usage_metadata["input_tokens"] == count_tokens(text) + 4


def test_simulated_latency_comes_from_the_profile() -> None:
    from agents.sim_profiles import get_profile

    fast = SimulatedChatModel(model_name="gpt-4o-mini").invoke([HumanMessage("hello " * 200)])
    profile = get_profile("gpt-4o-mini")
    expected = profile.ttft_ms + 1000 * fast.usage_metadata["output_tokens"] / \
        profile.output_tokens_per_s
    assert fast.response_metadata["simulated_latency_ms"] == pytest.approx(expected, rel=0.8)
    assert fast.response_metadata["slept_ms"] == 0
