"""Traces leave the process over OTLP/HTTP (protobuf) to a local receiver, as a backend sees them."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_app
from tests.fakes.otlp_receiver import OtlpReceiver, decode
from utils.settings import get_settings
from utils.telemetry import tracing


def test_a_chat_request_arrives_at_an_otlp_receiver(flags_file: Path, monkeypatch) -> None:
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.root_url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=team-a")
        get_settings.cache_clear()
        with TestClient(create_app()) as client:  # start-up turns tracing on
            assert tracing.active()
            data = client.post("/chat", json={
                "user_id": "otlp-1", "message": "What is Q-learning?",
                "user_context": {"country": "US", "plan": "paid"}}).json()
        # shutdown flushed the batch processor: everything is there without waiting
        assert not tracing.active()
        spans = receiver.spans()
    assert receiver.errors == []
    assert all(h.get("x-tenant") == "team-a" for h in receiver.headers)
    names = [s.name for s in spans]
    assert {"POST /chat", "invoke_workflow support-assistant", "invoke_agent supervisor",
            "invoke_agent support"} <= set(names)
    assert any(name.startswith("chat ") for name in names)
    assert {s.trace_id for s in spans} == {data["trace_id"]}
    assert {s.resource["service.name"] for s in spans} == {"multi-agent-experiments"}
    by_name = {s.name: s for s in spans}
    server, workflow = by_name["POST /chat"], by_name["invoke_workflow support-assistant"]
    assert server.kind == 2 and server.parent_span_id == ""  # SERVER, the root
    assert workflow.parent_span_id == server.span_id
    support = by_name["invoke_agent support"]
    assert support.parent_span_id == workflow.span_id
    assert support.attributes["gen_ai.agent.name"] == "support"
    assert support.attributes["mae.variation.key"] == "other-paid"
    assert support.attributes["mae.in_experiment"] in (True, False)
    assert support.attributes["gen_ai.usage.input_tokens"] > 0


def test_the_receiver_rejects_what_is_not_an_export_request() -> None:
    import httpx

    with OtlpReceiver() as receiver:
        bad = httpx.post(f"{receiver.root_url}/v1/traces", content=b"\xff\xff\xff",
                         headers={"Content-Type": "application/x-protobuf"})
        wrong_type = httpx.post(f"{receiver.root_url}/v1/traces", json={})
    assert (bad.status_code, wrong_type.status_code) == (400, 415)
    assert receiver.errors and receiver.spans() == []
    assert decode(b"") == []  # an empty export is valid protobuf: no spans
