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


def _local_run(monkeypatch, tmp_path, *, pricing: dict | None = None, **env) -> tuple:
    """One /chat through a local OpenAI-compatible server; (support run, fake's requests)."""
    import json

    from tests.fakes.live_app import ask, live_app
    from utils.telemetry.cost_calculator import reload_pricing

    for key in ("OPENAI_MODEL_MAP", "PRICING_OVERRIDES_PATH", "OPENAI_BASE_URL_PRICING"):
        monkeypatch.delenv(key, raising=False)  # from an earlier run in the same test
    if pricing is not None:
        path = tmp_path / "local-prices.json"
        path.write_text(json.dumps({"models": pricing}))
        env["PRICING_OVERRIDES_PATH"] = str(path)
    reload_pricing()
    try:
        with FakeOpenAI(usage=(200, 50)) as fake, \
                live_app(monkeypatch, OPENAI_BASE_URL=fake.base_url, **env) as client:
            response = ask(client, "local", "What is Q-learning?", "US", "paid")
    finally:
        reload_pricing()
    assert response.status_code == 200
    runs = {run["agent"]: run for run in response.json()["agents"]}
    return runs["support"], fake.requests


def test_local_server_with_the_model_map_answers_and_prices_the_local_model(
        flags_file, monkeypatch, tmp_path) -> None:
    support, requests = _local_run(
        monkeypatch, tmp_path, OPENAI_MODEL_MAP="gpt-4o=llama3.1:8b,gpt-4o-mini=llama3.2:3b",
        pricing={"llama3.1:8b": {"input": 0, "output": 0, "notes": "local Ollama: no fee"}})
    assert {r["body"]["model"] for r in requests} == {"llama3.1:8b", "llama3.2:3b"}
    support_body = next(r["body"] for r in requests if r["body"]["model"] == "llama3.1:8b")
    # The variation's 600-token cap, under the name local servers read.
    assert support_body["max_tokens"] == 600 and "max_completion_tokens" not in support_body
    assert support["model"] == "gpt-4o" and support["simulated"] is False
    assert support["output_tokens"] == 50 and support["cost_usd"] == 0.0  # declared $0


def test_local_models_are_unpriced_unless_declared_never_priced_as_gpt_4o(
        flags_file, monkeypatch, tmp_path) -> None:
    mapped, _ = _local_run(monkeypatch, tmp_path, OPENAI_MODEL_MAP="*=llama3.1:8b")
    assert mapped["cost_usd"] is None  # no row for llama3.1:8b: unknown, not $0
    unmapped, requests = _local_run(monkeypatch, tmp_path)
    assert requests[-1]["body"]["model"] == "gpt-4o"  # llama.cpp answers to any name...
    assert unmapped["cost_usd"] is None  # ...but that is not GPT-4o's price


def test_a_proxy_to_openai_keeps_openai_prices_and_names(flags_file, monkeypatch,
                                                         tmp_path) -> None:
    from utils.telemetry.cost_calculator import calculate_cost

    support, requests = _local_run(monkeypatch, tmp_path, OPENAI_BASE_URL_PRICING="openai",
                                   OPENAI_TOKEN_LIMIT_FIELD="max_completion_tokens")
    body = next(r["body"] for r in requests if r["body"]["model"] == "gpt-4o")
    assert body["max_completion_tokens"] == 600 and "max_tokens" not in body
    assert support["cost_usd"] == pytest.approx(calculate_cost("gpt-4o", 200, 50))


def test_openai_itself_gets_max_completion_tokens(monkeypatch) -> None:
    settings = _settings(monkeypatch, LLM_MODE="auto", OPENAI_API_KEY="sk-test")
    model = build_chat_model("openai", "gpt-4o", {"maxTokens": 300}, settings)
    payload = model._get_request_payload([HumanMessage("hi")])
    assert payload["max_completion_tokens"] == 300 and "extra_body" not in payload
