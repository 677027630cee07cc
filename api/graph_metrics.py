"""A request's path through the Agent Graph: for the /chat response and LaunchDarkly's graph
metrics (through the AI SDK's `AIGraphTracker`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ldai.tracker import AIGraphTracker, TokenUsage

from api.schemas import GraphRunPublic
from utils.flags.agent_graph import GRAPH_CONFIG, ServedGraph

log = logging.getLogger(__name__)


def path_of(runs: Sequence[Any]) -> list[str]:
    """The agent config keys in the order their agents ran."""
    return [run.config_key for run in runs]


def graph_run(served: ServedGraph, runs: Sequence[Any]) -> GraphRunPublic:
    path = path_of(runs)
    return GraphRunPublic(key=GRAPH_CONFIG, variation_key=served.variation_key,
                          fell_back=served.fell_back, path=path,
                          handoffs=[[a, b] for a, b in zip(path, path[1:], strict=False)])


def track_graph(ld_client: Any, context: Any, served: ServedGraph, runs: Sequence[Any], *,
                success: bool) -> None:
    """Send the request's graph events to LaunchDarkly (`ld_client` None: nowhere).

    Tracking never fails a request: an SDK error is logged and dropped.
    """
    if ld_client is None:
        return
    try:
        tracker = AIGraphTracker(ld_client, served.variation_key, GRAPH_CONFIG, served.version,
                                 context)
        path = path_of(runs)
        tracker.track_path(path)
        for source, target in zip(path, path[1:], strict=False):
            tracker.track_handoff_success(source, target)
        tracker.track_duration(int(round(sum(r.duration_ms for r in runs))))
        inputs = sum(r.input_tokens for r in runs)
        outputs = sum(r.output_tokens for r in runs)
        tracker.track_total_tokens(TokenUsage(total=inputs + outputs, input=inputs,
                                              output=outputs))
        if success:
            tracker.track_invocation_success()
        else:
            tracker.track_invocation_failure()
    except Exception as exc:
        log.warning("graph tracking failed (%s); the request is unaffected", type(exc).__name__)
