"""The run recorder: exact event rows per agent run, for the clean and the PII route."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage

from utils.flags.client import AgentConfig
from utils.telemetry import metrics
from utils.telemetry.cost_calculator import get_pricing_table
from utils.telemetry.instrumentation import (
    ModelUsage,
    RunRecorder,
    RunTimer,
    feedback_batch,
)

US_PAID = {"country": "US", "plan": "paid"}
RUN_KEYS = {metrics.DURATION_TOTAL, metrics.TOKENS_TOTAL, metrics.TOKENS_INPUT,
            metrics.TOKENS_OUTPUT, metrics.GENERATION_SUCCESS, metrics.COST_PER_REQUEST}


@pytest.fixture
async def service(flags_file: Path):
    """The chat service over the per-test flag file and store (no HTTP layer needed)."""
    from api.composition import build_service
    from utils.settings import get_settings

    service = build_service(get_settings())
    yield service
    service.close()


async def _chat(service, message: str, user_id: str = "rec-user"):
    from api.schemas import ChatRequest

    return await service.chat(ChatRequest(user_id=user_id, message=message,
                                          user_context=US_PAID))


def _events_by_agent(service, request_id: str) -> dict[str, Counter]:
    rows = service.store.query("SELECT agent, event_key FROM events WHERE request_id = ?",
                               (request_id,))
    grouped: dict[str, Counter] = {}
    for row in rows:
        grouped.setdefault(row["agent"], Counter())[row["event_key"]] += 1
    return grouped


def _expected_keys(run) -> Counter:
    keys = Counter(RUN_KEYS)
    if run.time_to_first_token_ms is not None:
        keys[metrics.TIME_TO_FIRST_TOKEN] += 1
    keys[metrics.TOOL_CALL] += len(run.tools_used)
    if run.agent == "support":
        keys[metrics.PII_EXPOSED_ENTITIES] += 1
    return keys


def _assert_graph_rows(service, response) -> None:
    """The request's graph rows (agent NULL): path, each handoff, duration, tokens, success,
    on the graph config and the served graph variation."""
    rows = [e for e in service.store.events_of(response.request_id) if e["agent"] is None]
    path = [run.config_key for run in response.agents]
    assert [e["event_key"] for e in rows] == [metrics.GRAPH_PATH] + \
        [metrics.GRAPH_HANDOFF_SUCCESS] * (len(path) - 1) + \
        [metrics.GRAPH_DURATION_TOTAL, metrics.GRAPH_TOKENS_TOTAL,
         metrics.GRAPH_INVOCATION_SUCCESS]
    assert {(e["config_key"], e["variation_key"], e["model"], e["simulated"]) for e in rows} \
        == {("support-assistant-graph", "detector-routed", None, 1)}
    assert rows[0]["data"] == {"path": path}
    assert [e["data"] for e in rows[1:len(path)]] == [
        {"sourceKey": a, "targetKey": b} for a, b in zip(path, path[1:], strict=False)]
    values = {e["event_key"]: e["value"] for e in rows}
    assert values[metrics.GRAPH_TOKENS_TOTAL] == response.totals.total_tokens
    assert values[metrics.GRAPH_DURATION_TOTAL] == round(response.totals.duration_ms)


def _assert_rows_match_runs(service, response) -> None:
    by_agent = _events_by_agent(service, response.request_id)
    _assert_graph_rows(service, response)
    by_agent.pop(None)
    assert set(by_agent) == {run.agent for run in response.agents}
    for run in response.agents:
        assert by_agent[run.agent] == _expected_keys(run), run.agent
        values = {row["event_key"]: row["value"] for row in service.store.query(
            "SELECT event_key, value FROM events WHERE request_id = ? AND agent = ?",
            (response.request_id, run.agent))}
        assert values[metrics.TOKENS_TOTAL] == run.total_tokens
        assert values[metrics.TOKENS_INPUT] == run.input_tokens
        assert values[metrics.TOKENS_OUTPUT] == run.output_tokens
        assert values[metrics.DURATION_TOTAL] == pytest.approx(run.duration_ms)
        assert values[metrics.COST_PER_REQUEST] == pytest.approx(run.cost_usd)
        variations = {(r["config_key"], r["variation_key"], r["model"], r["simulated"])
                      for r in service.store.query(
                          "SELECT * FROM events WHERE request_id = ? AND agent = ?",
                          (response.request_id, run.agent))}
        assert variations == {(run.config_key, run.variation_key, run.model, 1)}


async def test_clean_route_records_supervisor_and_support_runs(service) -> None:
    response = await _chat(service, "What is Q-learning?")
    assert [run.agent for run in response.agents] == ["supervisor", "support"]
    _assert_rows_match_runs(service, response)
    exposures = service.store.query(
        "SELECT config_key, variation_key FROM exposures WHERE request_id = ? ORDER BY id",
        (response.request_id,))
    assert [tuple(e) for e in exposures] == [("support-assistant-graph", "detector-routed"),
                                             ("supervisor-agent", "supervisor-basic"),
                                             ("support-agent", "other-paid")]
    request = service.store.query("SELECT * FROM requests WHERE request_id = ?",
                                  (response.request_id,))[0]
    assert (request["routed_to_security"], request["status"], request["simulated"]) == \
        (0, "ok", 1)


async def test_pii_route_records_all_three_agents_and_no_message_text(service) -> None:
    message = "My email is jane.doe@example.com, how does TD(0) work?"
    response = await _chat(service, message)
    assert [run.agent for run in response.agents] == ["supervisor", "security", "support"]
    _assert_rows_match_runs(service, response)
    exposures = service.store.query(
        "SELECT config_key, context_json FROM exposures WHERE request_id = ? ORDER BY id",
        (response.request_id,))
    assert [e["config_key"] for e in exposures] == ["support-assistant-graph",
                                                    "supervisor-agent", "security-agent",
                                                    "support-agent"]
    assert json.loads(exposures[0]["context_json"]) == US_PAID
    request = service.store.query("SELECT * FROM requests WHERE request_id = ?",
                                  (response.request_id,))[0]
    assert request["routed_to_security"] == 1
    assert "example.com" not in request["context_json"]


def _config(model: str = "gpt-4o") -> AgentConfig:
    return AgentConfig(config_key="support-agent", variation_key="other-paid", enabled=True,
                       model=model, provider="openai", in_experiment=True)


def _usage(input_tokens: int = 100, output_tokens: int = 20) -> ModelUsage:
    usage = ModelUsage()
    usage.add(AIMessage("ok", usage_metadata={"input_tokens": input_tokens,
                                              "output_tokens": output_tokens,
                                              "total_tokens": input_tokens + output_tokens},
                        response_metadata={"simulated": True, "simulated_latency_ms": 250.0,
                                           "slept_ms": 0.0, "time_to_first_token_ms": 80.0}))
    return usage


def recorder_for(*args, **kwargs) -> RunRecorder:
    return RunRecorder(*args, **kwargs, pricing=get_pricing_table())


def test_finish_run_reports_modelled_latency_tokens_and_cost() -> None:
    recorder = recorder_for("r1", "u1", {})
    run = recorder.finish_run(_config(), "support", RunTimer(), _usage(), tools_used=["search_v1"])
    assert recorder.runs == [run]
    assert (run.input_tokens, run.output_tokens, run.total_tokens) == (100, 20, 120)
    assert 250.0 <= run.duration_ms < 1000.0  # modelled time plus the (tiny) real wall time
    assert run.time_to_first_token_ms == 80.0 and run.simulated and run.in_experiment
    assert run.cost_usd is not None and run.cost_usd > 0


def test_failed_run_records_an_error_event_and_no_success() -> None:
    recorder = recorder_for("r1", "u1", {})
    recorder.finish_run(_config(), "support", RunTimer(), ModelUsage(), error="boom")
    keys = Counter(row.event_key for row in recorder.events)
    assert keys[metrics.GENERATION_ERROR] == 1 and metrics.GENERATION_SUCCESS not in keys


def test_unpriced_model_records_a_null_cost_not_zero() -> None:
    recorder = recorder_for("r1", "u1", {})
    recorder.finish_run(_config(model="no-such-model-xyz"), "support", RunTimer(), _usage())
    cost = [row.value for row in recorder.events if row.event_key == metrics.COST_PER_REQUEST]
    assert cost == [None]


def test_failed_run_without_usage_costs_what_was_sent() -> None:
    from langchain_core.messages import HumanMessage, SystemMessage

    from utils.telemetry.cost_calculator import calculate_cost
    from utils.tokens import count_tokens

    config, recorder = _config(), recorder_for("r1", "u1", {})
    sent = [SystemMessage("You are a support agent."), HumanMessage("How does TD(0) work?")]
    run = recorder.finish_run(config, "support", RunTimer(), ModelUsage(), error="timeout", sent=sent)
    expected = count_tokens("You are a support agent.") + count_tokens("How does TD(0) work?")
    assert run.input_tokens == expected > 0 and run.output_tokens == 0
    assert run.cost_usd == calculate_cost(config.model, expected, 0,
                                          table=get_pricing_table()) > 0
    assert not run.success and run.duration_ms >= 0
    # Usage the provider did return wins over the count.
    reported = recorder.finish_run(config, "support", RunTimer(), _usage(), error="late", sent=sent)
    assert reported.input_tokens == 100


def test_run_with_no_tokens_costs_nothing_even_unpriced() -> None:
    recorder = recorder_for("r1", "u1", {})
    run = recorder.finish_run(_config(model="no-such-model-xyz"), "support", RunTimer(), ModelUsage())
    assert run.cost_usd == 0.0  # nothing sent or received: no bill, priced or not
    failed = recorder.finish_run(_config(model="no-such-model-xyz"), "support", RunTimer(),
                                 ModelUsage(), error="boom", sent=["some prompt"])
    assert failed.cost_usd is None  # tokens were sent to a model without a price


class _ExplodingClient:
    def track(self, *args, **kwargs) -> None:
        raise RuntimeError("LaunchDarkly is down")


def test_tracking_failures_never_raise_into_the_request() -> None:
    recorder = recorder_for("r1", "u1", {}, ld_context=object(), ld_client=_ExplodingClient())

    def broken_tracker():
        raise RuntimeError("tracker factory failed")

    from dataclasses import replace

    config = replace(_config(), tracker_factory=broken_tracker)
    run = recorder.finish_run(config, "support", RunTimer(), _usage())
    recorder.track_metric(metrics.PII_EXPOSED_ENTITIES, 2, run)
    assert recorder.runs == [run]
    assert metrics.PII_EXPOSED_ENTITIES in {row.event_key for row in recorder.events}


def test_batch_carries_exposures_events_and_route() -> None:
    recorder = recorder_for("r1", "u1", {"plan": "paid"})
    config = _config()
    recorder.record_exposure(config)
    recorder.finish_run(config, "support", RunTimer(), _usage())
    batch = recorder.batch(status="ok", routed_to_security=True)
    assert (batch.request_id, batch.user_key, batch.request_status) == ("r1", "u1", "ok")
    assert batch.routed_to_security and batch.simulated
    assert [(e.config_key, e.variation_key, e.in_experiment) for e in batch.exposures] == [
        ("support-agent", "other-paid", True)]
    assert len(batch.events) == len(recorder.events)


def test_feedback_batch_has_one_event_per_served_config() -> None:
    exposures = [{"config_key": "supervisor-agent", "variation_key": "supervisor-basic"},
                 {"config_key": "support-agent", "variation_key": "other-paid"}]
    batch = feedback_batch("r1", "u1", "negative", "real_user", exposures)
    assert batch.feedback == ("negative", "real_user") and batch.request_status is None
    assert [(e.event_key, e.config_key, e.variation_key, e.value) for e in batch.events] == [
        (metrics.FEEDBACK_NEGATIVE, "supervisor-agent", "supervisor-basic", 1.0),
        (metrics.FEEDBACK_NEGATIVE, "support-agent", "other-paid", 1.0)]
