"""A request's path through the Agent Graph: for the /chat response, LaunchDarkly's graph
metrics and the local store.

The graph events are made once, by the AI SDK's own `AIGraphTracker`, tracking into a client
that keeps every call: each becomes an `events` row of the request's write batch (same event
key, same value, `config_key` the graph config, `variation_key` the served graph variation,
`agent` NULL, the path or handoff in `data`), and, when LaunchDarkly should hear of the
request, goes on to the SDK client. So the store and LaunchDarkly get the same events, and
the rows commit in the same transaction as the request's agent rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ldai.tracker import AIGraphTracker, TokenUsage

from api.schemas import GraphRunPublic
from utils.flags.agent_graph import GRAPH_CONFIG, ServedGraph
from utils.telemetry.instrumentation import RunRecorder, tracking_target
from utils.telemetry.store_schema import EventRow

log = logging.getLogger(__name__)

# Track data every graph event carries; the store has these as columns (or not at all).
_COLUMN_DATA = frozenset({"graphKey", "variationKey", "version"})


def path_of(runs: Sequence[Any]) -> list[str]:
    """The agent config keys in the order their agents ran."""
    return [run.config_key for run in runs]


def graph_run(served: ServedGraph, runs: Sequence[Any]) -> GraphRunPublic:
    path = path_of(runs)
    return GraphRunPublic(key=GRAPH_CONFIG, variation_key=served.variation_key,
                          fell_back=served.fell_back, path=path,
                          handoffs=[[a, b] for a, b in zip(path, path[1:], strict=False)])


class _Keeping:
    """The client `AIGraphTracker` tracks into: keeps each call, and passes it on to
    `forward` (the LaunchDarkly client, or None). A failing forward is logged, never raised."""

    def __init__(self, forward: Any) -> None:
        self.calls: list[tuple[str, dict[str, Any], float]] = []
        self._forward = forward

    def track(self, event_name: str, context: Any, data: Any = None,
              metric_value: Any = None) -> None:
        self.calls.append((event_name, dict(data or {}), metric_value))
        if self._forward is None:
            return
        try:
            self._forward.track(event_name, context, data, metric_value)
        except Exception as exc:
            log.warning("sending %s to LaunchDarkly failed (%s); the request is unaffected",
                        event_name, type(exc).__name__)


def graph_events(served: ServedGraph, runs: Sequence[Any], *, success: bool,
                 ld_client: Any = None, context: Any = None) -> list[tuple[str, dict, float]]:
    """The request's graph events as `AIGraphTracker` makes them, `(key, data, value)` each;
    sent on to `ld_client` too when given."""
    keeping = _Keeping(ld_client)
    tracker = AIGraphTracker(keeping, served.variation_key, GRAPH_CONFIG, served.version,
                             context)
    path = path_of(runs)
    tracker.track_path(path)
    for source, target in zip(path, path[1:], strict=False):
        tracker.track_handoff_success(source, target)
    tracker.track_duration(int(round(sum(r.duration_ms for r in runs))))
    inputs = sum(r.input_tokens for r in runs)
    outputs = sum(r.output_tokens for r in runs)
    tracker.track_total_tokens(TokenUsage(total=inputs + outputs, input=inputs, output=outputs))
    if success:
        tracker.track_invocation_success()
    else:
        tracker.track_invocation_failure()
    return keeping.calls


def record_graph(recorder: RunRecorder, served: ServedGraph, *, success: bool) -> None:
    """Add the request's graph events to its write batch and, in LaunchDarkly mode, send
    them (a simulated request only when LD_TRACK_SIMULATED allows, then marked simulated,
    like its agents' runs). Never fails the request."""
    simulated = any(run.simulated for run in recorder.runs)
    forward, context = None, recorder.ld_context
    if recorder.ld_client is not None and (not simulated or recorder.track_simulated):
        forward, context = tracking_target(recorder.ld_client, recorder.ld_context, simulated)
    try:
        calls = graph_events(served, recorder.runs, success=success, ld_client=forward,
                             context=context)
    except Exception as exc:
        log.warning("graph tracking failed (%s); the request is unaffected", type(exc).__name__)
        return
    recorder.events += [
        EventRow(key, None if value is None else float(value), GRAPH_CONFIG,
                 served.variation_key, None, None, None, simulated,
                 {k: v for k, v in data.items() if k not in _COLUMN_DATA} or None)
        for key, data, value in calls]
