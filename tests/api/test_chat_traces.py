"""Traces of /chat and /feedback: span tree per route, GenAI attributes, trace ids, no raw PII."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from agents.context import PresidioPiiDetector
from agents.simulated import SimulatedChatModel
from api.composition import build_service
from api.schemas import ChatRequest
from tests.fakes.tracing import captured_spans, dump, named, tree
from utils.settings import Settings, get_settings

US_PAID = {"country": "US", "plan": "paid"}
MARIA = ("Hi, I'm Maria Gonzalez from Acme GmbH in Munich, card 4111 1111 1111 1111, mail "
         "maria.g@acme.de — how does Q-learning work?")
RAW = ("Maria Gonzalez", "Acme GmbH", "Munich", "4111 1111 1111 1111", "maria.g@acme.de")


@pytest.fixture
def spans():
    with captured_spans() as exporter:
        yield exporter


def _agent(exported, agent: str):
    (span,) = named(exported, f"invoke_agent {agent}")
    return span


def _under(exported, parent) -> list:
    return [s for s in exported if s.parent and s.parent.span_id == parent.context.span_id]


def test_clean_request_is_one_trace_server_workflow_agents_models_tools(client, spans) -> None:
    body = {"user_id": "t1", "message": "How does SARSA differ from Q-learning?",
            "user_context": US_PAID}
    data = client.post("/chat", json=body).json()
    exported = spans.get_finished_spans()
    shape = tree(exported)
    assert shape[:3] == [(0, "POST /chat"), (1, "invoke_workflow support-assistant"),
                         (2, "invoke_agent supervisor")]
    assert [name for depth, name in shape if depth == 2] == [
        "invoke_agent supervisor", "invoke_agent support"]
    assert len({s.context.trace_id for s in exported}) == 1
    assert data["trace_id"] == f"{exported[0].context.trace_id:032x}"

    server = named(exported, "POST /chat")[0]
    assert server.kind is SpanKind.SERVER
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["mae.request.id"] == data["request_id"]

    support = _agent(exported, "support")
    children = [s.name for s in sorted(_under(exported, support), key=lambda s: s.start_time)]
    run = next(r for r in data["agents"] if r["agent"] == "support")
    assert children[0] == f"chat {run['model']}" and children[-1] == f"chat {run['model']}"
    assert [f"execute_tool {t}" for t in run["tools_used"]] == \
        [c for c in children if c.startswith("execute_tool")]
    tool = next(s for s in _under(exported, support) if s.name.startswith("execute_tool"))
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == run["tools_used"][0]
    assert tool.attributes["gen_ai.tool.call.id"]


def test_agent_and_model_spans_carry_the_genai_and_project_attributes(client, spans) -> None:
    data = client.post("/chat", json={"user_id": "t2", "message": "What is an MDP?",
                                      "user_context": US_PAID}).json()
    exported = spans.get_finished_spans()
    for run in data["agents"]:
        span = _agent(exported, run["agent"])
        a = span.attributes
        assert span.kind is SpanKind.INTERNAL
        assert a["gen_ai.operation.name"] == "invoke_agent"
        assert a["gen_ai.agent.name"] == run["agent"]
        assert a["gen_ai.provider.name"] == {"mistral": "mistral_ai"}.get(run["provider"],
                                                                          run["provider"])
        assert a["gen_ai.request.model"] == run["model"]
        assert a["gen_ai.usage.input_tokens"] == run["input_tokens"]
        assert a["gen_ai.usage.output_tokens"] == run["output_tokens"]
        assert a["mae.config.key"] == run["config_key"]
        assert a["mae.variation.key"] == run["variation_key"]
        assert a["mae.in_experiment"] is run["in_experiment"]
        assert a["mae.cost_usd"] == pytest.approx(run["cost_usd"])
        assert a["mae.time_to_first_token_ms"] == run["time_to_first_token_ms"]
        assert a["mae.simulated"] is True
        chats = [s for s in _under(exported, span) if s.name.startswith("chat ")]
        assert chats and all(c.kind is SpanKind.CLIENT for c in chats)
        # the model spans add up to their agent's usage
        assert sum(c.attributes["gen_ai.usage.input_tokens"] for c in chats) == \
            run["input_tokens"]
        assert sum(c.attributes["gen_ai.usage.output_tokens"] for c in chats) == \
            run["output_tokens"]
        for chat in chats:
            assert chat.attributes["gen_ai.operation.name"] == "chat"
            assert chat.attributes["gen_ai.response.model"] == run["model"]
            assert "gen_ai.request.temperature" in chat.attributes
    support = _agent(exported, "support").attributes
    assert support["gen_ai.request.max_tokens"] > 0  # the support variations set a limit
    workflow = named(exported, "invoke_workflow support-assistant")[0].attributes
    assert (workflow["mae.status"], workflow["mae.route"]) == ("ok", "support")
    assert "gen_ai.input.messages" not in dump(exported)  # no content unless switched on


def test_pii_request_traces_security_and_holds_no_raw_pii(client, spans) -> None:
    data = client.post("/chat", json={"user_id": "t3", "message": MARIA,
                                      "user_context": {"country": "DE", "plan": "paid"}}).json()
    client.post("/feedback", json={"request_id": data["request_id"], "user_id": "t3",
                                   "kind": "negative"})
    exported = spans.get_finished_spans()
    assert [name for depth, name in tree(exported) if depth == 2] == [
        "invoke_agent supervisor", "invoke_agent security", "invoke_agent support"]
    security = _agent(exported, "security")
    assert {"PERSON", "EMAIL", "CREDIT_CARD"} <= set(security.attributes["mae.pii.types"])
    assert security.attributes["mae.variation.key"] == "strict-security"
    text = dump(exported)
    assert all(raw not in text for raw in RAW)
    assert "4111111111111111" not in text


def test_content_capture_puts_only_the_redacted_text_on_the_support_span(
        client, monkeypatch) -> None:
    settings = Settings(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="SPAN_ONLY")
    with captured_spans(settings) as exporter:
        data = client.post("/chat", json={
            "user_id": "t4", "message": MARIA, "user_context": {"country": "DE", "plan": "paid"},
            "history": [{"role": "user", "content": "My phone is +44 20 7946 0958"},
                        {"role": "assistant", "content": "Noted."}]}).json()
    exported = exporter.get_finished_spans()
    redacted = next(r for r in data["agents"] if r["agent"] == "security")["redacted_text"]
    carrying = [s for s in exported if "gen_ai.input.messages" in s.attributes]
    assert [s.name for s in carrying] == ["invoke_agent support"]
    messages = json.loads(carrying[0].attributes["gen_ai.input.messages"])
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[-1]["parts"] == [{"type": "text", "content": redacted}]
    assert messages[0]["parts"][0]["content"] != "My phone is +44 20 7946 0958"
    assert messages[1]["parts"][0]["content"] == "Noted."
    text = dump(exported)
    assert all(raw not in text for raw in RAW)
    assert "7946 0958" not in text


def test_feedback_span_links_to_its_request_trace_and_store_keeps_both_ids(
        client, spans) -> None:
    data = client.post("/chat", json={"user_id": "t5", "message": "What is TD learning?",
                                      "user_context": US_PAID}).json()
    feedback = client.post("/feedback", json={"request_id": data["request_id"],
                                              "user_id": "t5", "kind": "positive"}).json()
    assert feedback["trace_id"] == data["trace_id"] and data["trace_id"]
    exported = spans.get_finished_spans()
    workflow = named(exported, "invoke_workflow support-assistant")[0]
    (span,) = named(exported, "POST /feedback")
    assert span.context.trace_id != workflow.context.trace_id  # its own trace, linked
    assert [(link.context.trace_id, link.context.span_id) for link in span.links] == [
        (workflow.context.trace_id, workflow.context.span_id)]
    assert span.attributes["mae.feedback.kind"] == "positive"
    with sqlite3.connect(get_settings().events_db) as conn:
        row = conn.execute("SELECT trace_id, span_id FROM requests WHERE request_id = ?",
                           (data["request_id"],)).fetchone()
    assert row == (data["trace_id"], f"{workflow.context.span_id:016x}")


def test_unknown_request_feedback_is_a_404_span(client, spans) -> None:
    assert client.post("/feedback", json={"request_id": "nope", "user_id": "x",
                                          "kind": "positive"}).status_code == 404
    (span,) = named(spans.get_finished_spans(), "POST /feedback")
    assert span.attributes["http.response.status_code"] == 404 and not span.links


def test_callers_traceparent_is_continued(client, spans) -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    data = client.post("/chat", headers={"traceparent": parent},
                       json={"user_id": "t6", "message": "What is PPO?",
                             "user_context": US_PAID}).json()
    server = named(spans.get_finished_spans(), "POST /chat")[0]
    assert data["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert f"{server.parent.span_id:016x}" == "b7ad6b7169203331"


class LeakyDetector(PresidioPiiDetector):
    """Fails with the user's text in its exception message (as a careless library might)."""

    def detect(self, text: str, policy: str):
        raise ValueError(f"cannot parse {text!r}")

    def redact(self, text: str, policy: str):
        raise ValueError(f"cannot parse {text!r}")


def test_refused_request_traces_security_without_support_and_no_exception_text(
        flags_file: Path) -> None:
    service = build_service(get_settings(), pii=LeakyDetector())
    try:
        with captured_spans() as exporter:
            response = asyncio.run(service.chat(ChatRequest(
                user_id="t7", message="Call me at +44 20 7946 0958 about SARSA",
                user_context=US_PAID)))
    finally:
        service.close()
    assert response.refused
    exported = exporter.get_finished_spans()
    assert tree(exported) == [(0, "invoke_workflow support-assistant"),
                              (1, "invoke_agent supervisor"), (1, "invoke_agent security")]
    workflow = named(exported, "invoke_workflow support-assistant")[0]
    assert workflow.parent is None  # no HTTP request: the workflow is the root
    assert workflow.attributes["mae.status"] == "refused"
    security = _agent(exported, "security")
    assert security.status.status_code is StatusCode.ERROR
    assert security.attributes["error.type"] == "_OTHER"  # "redaction failed": no exception
    assert "7946" not in dump(exported)


class FailingSupportModel(SimulatedChatModel):
    """Answers the supervisor (RouteDecision) and security (no tools); fails the support agent."""

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
        names = {t["function"]["name"] for t in kwargs.get("tools") or []}
        if names - {"RouteDecision"}:
            raise ConnectionError("provider unreachable")
        return await super()._agenerate(messages, stop, run_manager, **kwargs)


def test_provider_error_marks_chat_agent_workflow_and_server_spans(client, spans,
                                                                   monkeypatch) -> None:
    models = client.app.state.service.models
    real_get = models.get

    def failing_get(provider, model, parameters):
        real = real_get(provider, model, parameters)
        return FailingSupportModel(model_name=model, provider=provider, seed=real.seed)

    monkeypatch.setattr(models, "get", failing_get)
    response = client.post("/chat", json={"user_id": "t8", "message": "What is SARSA?",
                                          "user_context": US_PAID})
    assert response.status_code == 502
    exported = spans.get_finished_spans()
    support = _agent(exported, "support")
    (chat,) = [s for s in _under(exported, support) if s.name.startswith("chat ")]
    assert chat.attributes["error.type"] == "ConnectionError"
    assert chat.status.status_code is StatusCode.ERROR
    assert support.attributes["error.type"] == "ConnectionError"
    workflow = named(exported, "invoke_workflow support-assistant")[0]
    assert workflow.attributes["error.type"] == "SupportAgentError"
    assert workflow.attributes["mae.status"] == "error"
    server = named(exported, "POST /chat")[0]
    assert server.attributes["http.response.status_code"] == 502
    assert server.attributes["error.type"] == "502"
    assert server.attributes["mae.request.id"] == response.json()["detail"]["request_id"]
    assert "provider unreachable" not in dump(exported)  # types, never messages
