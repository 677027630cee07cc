"""Graph events in the store change no verdict: no metric is defined on them, and every query
that reads `events` picks its rows by a metric's event key (or GENERATION_ERROR)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace

from api.graph_metrics import record_graph
from bootstrap.graph_manifest import graph_value
from bootstrap.manifest import load_manifest
from tests.fakes.event_store import GRAPH, make_store
from utils.experiments.verdicts import build_report, report_to_dict
from utils.flags.agent_graph import GRAPH_CONFIG, serve
from utils.telemetry import metrics as mk
from utils.telemetry.cost_calculator import get_pricing_table
from utils.telemetry.event_store import EventStore, WriteBatch
from utils.telemetry.instrumentation import RunRecorder

GRAPH_KEYS = {mk.GRAPH_INVOCATION_SUCCESS, mk.GRAPH_INVOCATION_FAILURE, mk.GRAPH_PATH,
              mk.GRAPH_HANDOFF_SUCCESS, mk.GRAPH_DURATION_TOTAL, mk.GRAPH_TOKENS_TOTAL}


def _served(variation_key: str):
    graph = load_manifest().graph(GRAPH_CONFIG)
    variation = next(v for v in graph.variations if v.key == variation_key)
    return serve(graph_value(graph, variation))


def _add_graph_events(path: Path) -> int:
    """Each request's graph events, made by the app's own `record_graph` from its agent rows
    and written through the store's writer, at the request's time. Returns how many."""
    conn = sqlite3.connect(path)
    served = {rid: var for rid, var in conn.execute(
        "SELECT request_id, variation_key FROM exposures WHERE config_key = ?", (GRAPH[0],))}
    runs: dict[str, list] = {}
    for rid, user, ts, agent_key, duration, tokens, failed in conn.execute(
            "SELECT request_id, user_key, MIN(ts), config_key, "
            "SUM(CASE WHEN event_key = ? THEN value END), "
            "SUM(CASE WHEN event_key = ? THEN value END), "
            "MAX(event_key = ?) FROM events WHERE agent IN ('security', 'support') "
            "GROUP BY request_id, user_key, config_key ORDER BY MIN(id)",
            (mk.DURATION_TOTAL, mk.TOKENS_TOTAL, mk.GENERATION_ERROR)):
        runs.setdefault(rid, []).append(SimpleNamespace(
            user=user, ts=ts, config_key=agent_key, duration_ms=duration or 0.0,
            input_tokens=int(tokens or 0), output_tokens=0, simulated=True,
            failed=bool(failed)))
    conn.close()
    store, pricing, written = EventStore(path), get_pricing_table(), 0
    try:
        for rid, request_runs in runs.items():
            first = request_runs[0]
            recorder = RunRecorder(rid, first.user, {}, pricing=pricing)
            recorder.runs = request_runs
            record_graph(recorder, _served(served[rid]),
                         success=not any(r.failed for r in request_runs))
            written += len(recorder.events)
            store.write_sync(WriteBatch(request_id=rid, user_key=first.user,
                                        events=recorder.events, ts=first.ts))
    finally:
        store.close()
    return written


def _report(path: Path) -> dict:
    report = report_to_dict(build_report(path))
    report.pop("generated_at"), report.pop("db_path")
    return report


def test_graph_events_change_no_report(tmp_path: Path) -> None:
    path = make_store(tmp_path / "events.db", users=400, failure_rate=(0.1, 0.1),
                      unpriced_model=(None, "mystery-model"))
    without = _report(path)
    assert _add_graph_events(path) > 0
    conn = sqlite3.connect(path)
    keys = {k for (k,) in conn.execute("SELECT DISTINCT event_key FROM events WHERE agent IS "
                                       "NULL AND config_key = ?", (GRAPH_CONFIG,))}
    conn.close()
    assert {mk.GRAPH_PATH, mk.GRAPH_HANDOFF_SUCCESS, mk.GRAPH_INVOCATION_SUCCESS,
            mk.GRAPH_INVOCATION_FAILURE, mk.GRAPH_DURATION_TOTAL} <= keys <= GRAPH_KEYS
    assert _report(path) == without
    assert not any(m.event_key in GRAPH_KEYS for m in mk.METRICS.values())
