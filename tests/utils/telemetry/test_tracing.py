"""Tracing set-up from the OTEL_* variables, the cost-free off state, and trace ids at rest."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agents.simulated import SimulatedChatModel
from tests.fakes.tracing import captured_spans
from utils.settings import Settings
from utils.telemetry import tracing
from utils.telemetry.event_store import SCHEMA_VERSION, EventStore, WriteBatch
from utils.telemetry.instrumentation import RunTimer
from utils.telemetry.store_schema import _MIGRATIONS


@pytest.mark.parametrize("env, on", [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "TRUE"},
     False),
])
def test_tracing_is_on_only_with_an_otlp_endpoint(monkeypatch, env, on) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tracing.tracing_requested(Settings()) is on


@pytest.mark.parametrize("value, on", [
    (None, False), ("", False), ("false", False), ("NO_CONTENT", False), ("EVENT_ONLY", False),
    ("true", True), ("True", True), ("SPAN_ONLY", True), ("span_and_event", True),
])
def test_content_capture_reads_the_boolean_and_the_enum(value, on) -> None:
    assert tracing.capture_content_from(value) is on


def test_a_bad_capture_value_is_an_error_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"):
        tracing.capture_content_from("yes please")


def test_the_stability_opt_in_drops_the_old_system_attribute() -> None:
    assert tracing.latest_only_from("http, gen_ai_latest_experimental")
    assert not tracing.latest_only_from("http")
    with captured_spans():
        assert tracing.request_attributes("mistral", "m", {})["gen_ai.system"] == "mistral_ai"
    with captured_spans(Settings(OTEL_SEMCONV_STABILITY_OPT_IN="gen_ai_latest_experimental")):
        attributes = tracing.request_attributes("mistral", "m", {"temperature": 1,
                                                                 "max_tokens": "x"})
    assert attributes == {"gen_ai.provider.name": "mistral_ai", "gen_ai.request.model": "m",
                          "gen_ai.request.temperature": 1.0}  # a non-integer limit is left out


def test_off_means_no_spans_no_callbacks_no_ids() -> None:
    assert not tracing.active()
    model = SimulatedChatModel(model_name="gpt-4o-mini", provider="openai")

    class Config:
        provider, model, parameters = "openai", "gpt-4o-mini", {}

    assert RunTimer().config_for(model, Config()) == {}  # nothing attached to model calls
    assert tracing.model_callbacks("openai", "m", {}) is None
    assert tracing.current_ids() == (None, None)
    with tracing.agent_span("support") as span, tracing.workflow_span("r") as root:
        assert span is None and root is None
    with captured_spans():
        assert len(RunTimer().config_for(model, Config())["callbacks"]) == 1


def test_setup_follows_the_otel_variables_and_defaults_the_service_name(monkeypatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    provider = tracing.setup_tracing(Settings())
    try:
        assert provider.resource.attributes["service.name"] == "multi-agent-experiments"
        assert tracing.active()
    finally:
        tracing.shutdown()
    assert not tracing.active()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "my-assistant")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
    provider = tracing.setup_tracing(Settings())
    try:
        assert provider.resource.attributes["service.name"] == "my-assistant"
        assert provider.resource.attributes["deployment.environment.name"] == "test"
    finally:
        tracing.shutdown()


def test_setup_leaves_tracing_alone_when_not_asked() -> None:
    with captured_spans():
        assert tracing.setup_tracing(Settings()) is None
        assert tracing.active()  # a provider installed by a test survives the app's start-up


def test_otel_values_from_dotenv_reach_the_sdk(monkeypatch, tmp_path: Path) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)  # restored (absent) after the test
    env_file = tmp_path / ".env"
    env_file.write_text("OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9\n"
                        "OTEL_SERVICE_NAME=from-dotenv\n")
    provider = tracing.setup_tracing(Settings(_env_file=env_file))
    try:
        assert provider.resource.attributes["service.name"] == "from-dotenv"
    finally:
        tracing.shutdown()


def test_malformed_stored_ids_link_nothing() -> None:
    links = [("zz", "1"), ("0" * 32, "0" * 16)]
    with captured_spans() as exporter, tracing.server_span("POST", "/feedback", {}, links):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.links == ()


# -- the trace id at rest ---------------------------------------------------------------------

def _batch(request_id: str, trace_id: str | None = None) -> WriteBatch:
    return WriteBatch(request_id=request_id, user_key="u", request_status="ok",
                      trace_id=trace_id, span_id="00f067aa0ba902b7" if trace_id else None)


def test_store_keeps_request_and_trace_ids_together(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.db")
    try:
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        store.write_sync(_batch("r1", trace_id))
        store.write_sync(_batch("r2"))
        assert store.get_request("r1").trace_id == trace_id
        assert store.get_request("r1").span_id == "00f067aa0ba902b7"
        assert store.get_request("r2").trace_id is None
        assert store.trace_ids(["r1", "r2", "r1", "missing"]) == {"r1": trace_id}
        assert store.trace_ids([]) == {}
        many = [f"x{i}" for i in range(1200)]  # past SQLite's bound-parameter limit
        assert store.trace_ids(many + ["r1"]) == {"r1": trace_id}
    finally:
        store.close()


def test_a_version_1_store_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(_MIGRATIONS[0])
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute("INSERT INTO requests VALUES ('old', 1.0, 'u', '{}', 0, 'ok', 1)")
    store = EventStore(path)
    try:
        assert store.get_request("old").trace_id is None
        store.write_sync(_batch("new", "4bf92f3577b34da6a3ce929d0e0e4736"))
        assert store.trace_ids(["old", "new"]) == {"new": "4bf92f3577b34da6a3ce929d0e0e4736"}
        assert store.summary()["schema_version"] == SCHEMA_VERSION  # every later migration ran
    finally:
        store.close()


def test_readers_tolerate_a_requests_table_without_the_trace_columns(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.db")
    try:
        store.write_sync(_batch("r1", "4bf92f3577b34da6a3ce929d0e0e4736"))
        with sqlite3.connect(store.path) as conn:  # as a file written by another version
            conn.execute("ALTER TABLE requests DROP COLUMN span_id")
            conn.execute("ALTER TABLE requests DROP COLUMN trace_id")
        record = store.get_request("r1")
        assert record is not None and record.trace_id is None and record.status == "ok"
        assert store.trace_ids(["r1"]) == {}
    finally:
        store.close()
