"""/chat with the security and support agents live on Anthropic and on Mistral (wire fakes).

Flag file (tests/fakes/flagfile.py): US users get basic security on Claude Haiku and OpenAI
support (simulated here); DE free users get strict security and support on Mistral Small;
DE paid users get strict security on Mistral and support on Claude Sonnet.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.anthropic_server import last_user_text as anthropic_text
from tests.fakes.live_app import ask, error_events, fake_env, live_app
from tests.fakes.mistral_server import FakeMistral
from tests.fakes.mistral_server import last_user_text as mistral_text
from utils.telemetry.cost_calculator import calculate_cost

PII = "I am Jana Novak, jana.novak@example.com. How does SARSA differ from Q-learning?"
CLEAN = "How does SARSA differ from Q-learning?"
ANSWER = "SARSA is on-policy: it updates with the action it takes next."
SEARCH = ("search_v1", {"query": "SARSA versus Q-learning"})
# Who serves support, per (country, plan), and the fake that plays it.
SUPPORT = {"anthropic": ("DE", "paid", "claude-sonnet-4-5", FakeAnthropic),
           "mistral": ("DE", "free", "mistral-small-latest", FakeMistral)}


def _runs(response: Any) -> dict[str, dict[str, Any]]:
    return {run["agent"]: run for run in response.json()["agents"]}


def _security_echo(text_of):
    """A security model that returns what it was given, and the support answer otherwise."""
    def answer(body: dict[str, Any]) -> str:
        return text_of(body) if not body.get("tools") else ANSWER
    return answer


def test_security_agent_on_anthropic_gets_the_redacted_text(flags_file, monkeypatch):
    with FakeAnthropic(answer=_security_echo(anthropic_text), usage=(80, 20)) as fake, \
            live_app(monkeypatch, **fake_env(anthropic=fake)) as client:
        response = ask(client, "sec-a", PII, "US", "paid")
    assert response.status_code == 200
    security = _runs(response)["security"]
    assert (security["provider"], security["simulated"]) == ("anthropic", False)
    sent = fake.requests[0]["body"]
    assert "jana.novak@example.com" not in str(sent) and "Jana Novak" not in str(sent)
    assert "[EMAIL]" in anthropic_text(sent) and "[PERSON]" in anthropic_text(sent)
    assert security["redacted_text"] == anthropic_text(sent)  # the echo kept the floor
    assert (security["input_tokens"], security["output_tokens"]) == (80, 20)
    assert security["cost_usd"] == pytest.approx(calculate_cost("claude-haiku-4-5", 80, 20))


def test_security_and_support_on_mistral(flags_file, monkeypatch):
    with FakeMistral(answer=_security_echo(mistral_text), tool_call=SEARCH) as fake, \
            live_app(monkeypatch, **fake_env(mistral=fake)) as client:
        response = ask(client, "sec-m", PII, "DE", "free")
    assert response.status_code == 200 and response.json()["response"] == ANSWER
    runs = _runs(response)
    assert runs["security"]["variation_key"] == "strict-security"
    assert runs["security"]["provider"] == "mistral" and not runs["security"]["simulated"]
    assert "jana.novak@example.com" not in str([r["body"] for r in fake.requests])
    # security, then support twice: its tool call, then the answer after the tool result
    assert len(fake.requests) == 3
    assert runs["support"]["tools_used"] == ["search_v1"]


@pytest.mark.parametrize("provider", SUPPORT)
def test_support_agent_calls_a_tool_then_answers_with_summed_usage(provider, flags_file,
                                                                   monkeypatch):
    country, plan, model, fake_cls = SUPPORT[provider]
    with fake_cls(answer=ANSWER, tool_call=SEARCH, usage=(300, 40)) as fake, \
            live_app(monkeypatch, **fake_env(**{provider: fake})) as client:
        response = ask(client, f"sup-{provider}", CLEAN, country, plan)
    assert response.status_code == 200 and response.json()["response"] == ANSWER
    support = _runs(response)["support"]
    assert (support["provider"], support["model"], support["simulated"]) == \
        (provider, model, False)
    assert support["tools_used"] == ["search_v1"] and support["sources"]
    assert (support["input_tokens"], support["output_tokens"]) == (600, 80)  # two calls
    assert support["cost_usd"] == pytest.approx(2 * calculate_cost(model, 300, 40))
    first, second = (r["body"] for r in fake.requests)
    assert first["tools"] and CLEAN in str(first["messages"])
    assert "sarsa" in str(second["messages"]).lower()  # the tool's KB passages went back


@pytest.mark.parametrize("provider", SUPPORT)
@pytest.mark.parametrize("failure", [429, 500, "cut"])
def test_support_provider_failure_is_a_502_with_the_failed_run_recorded(
        provider, failure, flags_file, monkeypatch):
    country, plan, _, fake_cls = SUPPORT[provider]
    with fake_cls(answer=ANSWER) as fake, \
            live_app(monkeypatch, **fake_env(**{provider: fake})) as client:
        if failure == "cut":
            fake.cut_after = 3
        else:
            fake.fail_status = failure
        response = ask(client, f"fail-{provider}-{failure}", CLEAN, country, plan)
        assert response.status_code == 502
        detail = response.json()["detail"]
        assert provider in detail["error"]
        assert error_events(client, detail["request_id"]) == ["support"]
        status = client.app.state.service.store.query(
            "SELECT status FROM requests WHERE request_id = ?", (detail["request_id"],))
        assert status[0]["status"] == "error"


def test_anthropic_error_event_mid_stream_fails_the_support_run(flags_file, monkeypatch):
    with FakeAnthropic(answer=ANSWER) as fake, \
            live_app(monkeypatch, **fake_env(anthropic=fake)) as client:
        fake.stream_error = "overloaded_error"
        response = ask(client, "overloaded", CLEAN, "DE", "paid")
        assert response.status_code == 502
        assert error_events(client, response.json()["detail"]["request_id"]) == ["support"]


@pytest.mark.parametrize("failure", [429, 500, "cut"])
def test_a_failing_security_model_falls_back_to_the_deterministic_redaction(
        failure, flags_file, monkeypatch):
    with FakeAnthropic() as fake, live_app(monkeypatch, **fake_env(anthropic=fake)) as client:
        if failure == "cut":
            fake.cut_after = 4
        else:
            fake.fail_status = failure
        response = ask(client, f"sec-fail-{failure}", PII, "US", "paid")
        assert response.status_code == 200  # the floor went on; support (simulated) answered
        security = _runs(response)["security"]
        assert security["success"] is False and "security model failed" in security["error"]
        assert "[EMAIL]" in security["redacted_text"]
        assert "jana.novak@example.com" not in security["redacted_text"]
        assert error_events(client, response.json()["request_id"]) == ["security"]
