"""Anthropic and Mistral models as the factory builds them, against their wire fakes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from agents.models import build_chat_model
from agents.stream_check import IncompleteReply
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.live_app import fake_env, live_settings
from tests.fakes.mistral_server import FakeMistral

PROVIDERS = {"anthropic": (FakeAnthropic, "claude-haiku-4-5"),
             "mistral": (FakeMistral, "mistral-small-latest")}
MESSAGES = [SystemMessage("Be brief."), HumanMessage("What is Q-learning?")]


def _model(provider: str, fake: Any, monkeypatch, parameters: dict[str, Any]) -> Any:
    settings = live_settings(monkeypatch, **fake_env(**{provider: fake}))
    return build_chat_model(provider, PROVIDERS[provider][1], parameters, settings)


def _invoke(model: Any, messages: list = MESSAGES) -> Any:
    return asyncio.run(model.ainvoke(messages))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_streamed_text_and_usage_with_launchdarkly_parameter_names(provider, monkeypatch):
    fake_cls, model_name = PROVIDERS[provider]
    with fake_cls(usage=(120, 30)) as fake:
        model = _model(provider, fake, monkeypatch, {
            "temperature": 0.2, "maxTokens": 321, "topP": 0.9, "stopSequences": ["\n\nUser:"]})
        reply = _invoke(model)
    assert reply.text == "Q-learning is off-policy TD control."
    assert (reply.usage_metadata["input_tokens"], reply.usage_metadata["output_tokens"]) == \
        (120, 30)
    body = fake.requests[0]["body"]
    assert body["stream"] is True and body["model"] == model_name
    assert (body["max_tokens"], body["top_p"], body["temperature"]) == (321, 0.9, 0.2)
    # Each API's own name for stop sequences.
    stop_field = "stop_sequences" if provider == "anthropic" else "stop"
    assert body[stop_field] == ["\n\nUser:"]
    assert "maxTokens" not in body and "topP" not in body


def test_anthropic_request_carries_its_key_version_and_system_prompt(monkeypatch):
    with FakeAnthropic() as fake:
        _invoke(_model("anthropic", fake, monkeypatch, {"temperature": 0}))
    request = fake.requests[0]
    assert "sk-ant-test" in request["auth"] and request["version"]
    assert request["body"]["system"] == "Be brief."
    assert request["body"]["max_tokens"] == 1024  # required by the API: the factory's default


@pytest.mark.parametrize("provider", PROVIDERS)
def test_supervisor_route_tool_is_forced_and_parsed(provider, monkeypatch):
    from agents.supervisor import RouteDecision, _classifier, parse_decision

    verdict = {"needs_security": True, "reason": "a person is named"}
    fake_cls, _ = PROVIDERS[provider]
    with fake_cls(tool_call=("RouteDecision", verdict), usage=(90, 12)) as fake:
        model = _model(provider, fake, monkeypatch, {"temperature": 0})
        reply = asyncio.run(_classifier(model).ainvoke(MESSAGES))
    body = fake.requests[0]["body"]
    if provider == "anthropic":
        assert body["tool_choice"] == {"type": "any"}
        assert [t["name"] for t in body["tools"]] == ["RouteDecision"]
    else:
        assert body["tool_choice"] == "any"
        assert [t["function"]["name"] for t in body["tools"]] == ["RouteDecision"]
    assert parse_decision(reply) == RouteDecision(**verdict)
    assert reply.usage_metadata["input_tokens"] == 90


def test_anthropic_tool_input_arrives_in_json_pieces_after_text(monkeypatch):
    from langchain_core.tools import tool

    @tool
    def search_v1(query: str, top_k: int = 5) -> str:
        """Search."""
        return ""

    arguments = {"query": "eligibility traces", "top_k": 3}
    with FakeAnthropic(tool_call=("search_v1", arguments), preamble="Let me search.") as fake:
        model = _model("anthropic", fake, monkeypatch, {"temperature": 0})
        reply = asyncio.run(model.bind_tools([search_v1]).ainvoke(MESSAGES))
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("search_v1", arguments)]
    assert reply.response_metadata["stop_reason"] == "tool_use"
    assert "Let me search." in reply.text


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [429, 500])
def test_http_errors_raise_naming_the_status(provider, status, monkeypatch):
    fake_cls, _ = PROVIDERS[provider]
    with fake_cls() as fake:
        fake.fail_status = status
        with pytest.raises(Exception, match=str(status)):
            _invoke(_model(provider, fake, monkeypatch, {"temperature": 0}))
    assert fake.requests  # it was asked (Anthropic's SDK also retries 429/5xx)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_cut_stream_is_an_error_not_a_short_answer(provider, monkeypatch):
    fake_cls, _ = PROVIDERS[provider]
    with fake_cls() as fake:
        fake.cut_after = 4  # some text went out, the finish reason never came
        with pytest.raises(IncompleteReply, match="without a finish reason"):
            _invoke(_model(provider, fake, monkeypatch, {"temperature": 0}))


def test_anthropic_error_event_inside_a_200_stream_raises(monkeypatch):
    with FakeAnthropic() as fake:
        fake.stream_error = "overloaded_error"
        with pytest.raises(Exception, match="overloaded_error"):
            _invoke(_model("anthropic", fake, monkeypatch, {"temperature": 0}))


def test_unknown_and_unsupported_parameters_are_reported_once_and_not_sent(monkeypatch,
                                                                          caplog):
    import agents.models

    monkeypatch.setattr(agents.models, "_reported", set())
    with FakeMistral() as fake, caplog.at_level(logging.WARNING, logger="agents.models"):
        for _ in range(2):
            _invoke(_model("mistral", fake, monkeypatch,
                           {"temperature": 0, "topK": 40, "reasoningEffort": "high"}))
    body = fake.requests[0]["body"]
    assert "top_k" not in body and "topK" not in body and "reasoningEffort" not in body
    messages = [r.getMessage() for r in caplog.records if r.name == "agents.models"]
    assert sum("'topK'" in m and "not taken by mistral" in m for m in messages) == 1
    assert sum("'reasoningEffort'" in m and "unknown" in m for m in messages) == 1
