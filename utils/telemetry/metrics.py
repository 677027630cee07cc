"""Event keys and metric definitions: the one source of truth (docs/CONTRACTS.md).

The local verdict engine reads these definitions, and `bootstrap.experiment_variations
--backend launchdarkly` creates the same metrics in LaunchDarkly from them (kind, aggregation,
analysis, percentile, success criterion, unit), so both sides measure the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# LaunchDarkly AI SDK event keys (the AI SDK's tracker emits these names).
DURATION_TOTAL = "$ld:ai:duration:total"
TIME_TO_FIRST_TOKEN = "$ld:ai:tokens:ttf"
TOKENS_TOTAL = "$ld:ai:tokens:total"
TOKENS_INPUT = "$ld:ai:tokens:input"
TOKENS_OUTPUT = "$ld:ai:tokens:output"
GENERATION_SUCCESS = "$ld:ai:generation:success"
GENERATION_ERROR = "$ld:ai:generation:error"
TOOL_CALL = "$ld:ai:tool_call"
FEEDBACK_POSITIVE = "$ld:ai:feedback:user:positive"
FEEDBACK_NEGATIVE = "$ld:ai:feedback:user:negative"
# Graph-level events (the AI SDK's AIGraphTracker emits these names, with graphKey).
GRAPH_INVOCATION_SUCCESS = "$ld:ai:graph:invocation_success"
GRAPH_INVOCATION_FAILURE = "$ld:ai:graph:invocation_failure"
GRAPH_PATH = "$ld:ai:graph:path"
GRAPH_HANDOFF_SUCCESS = "$ld:ai:graph:handoff_success"
GRAPH_DURATION_TOTAL = "$ld:ai:graph:duration:total"
GRAPH_TOKENS_TOTAL = "$ld:ai:graph:total_tokens"
# Custom metrics sent with ld_client.track.
COST_PER_REQUEST = "ai_cost_per_request"
PII_EXPOSED_ENTITIES = "pii_exposed_entities"

FEEDBACK_EVENT_KEYS = {"positive": FEEDBACK_POSITIVE, "negative": FEEDBACK_NEGATIVE}

Aggregate = Literal["any", "sum"]
Statistic = Literal["conversion", "mean", "percentile"]
# The unit every experiment randomises by, and every metric measures per.
RANDOMIZATION_UNIT = "user"


@dataclass(frozen=True)
class MetricDefinition:
    """How a metric is computed per user and compared between arms."""

    key: str
    name: str
    event_key: str
    aggregate: Aggregate  # per user: "any" event (converted) or the "sum" of event values
    statistic: Statistic  # across users: share converted, mean, or a percentile
    higher_is_better: bool
    unit: str
    description: str
    percentile: float | None = None  # for statistic "percentile", e.g. 0.95

    def __post_init__(self) -> None:
        if (self.statistic == "percentile") != (self.percentile is not None):
            raise ValueError(f"metric {self.key}: a percentile is given exactly when the "
                             "statistic is 'percentile'")
        if (self.statistic == "conversion") != (self.aggregate == "any"):
            raise ValueError(f"metric {self.key}: conversion metrics aggregate 'any' event per "
                             "user, numeric metrics 'sum' their values")

    @property
    def is_numeric(self) -> bool:
        """A numeric metric (values summed per user) rather than a conversion."""
        return self.statistic != "conversion"


METRICS: dict[str, MetricDefinition] = {
    m.key: m
    for m in (
        MetricDefinition("positive_feedback_rate", "Positive feedback rate", FEEDBACK_POSITIVE,
                         "any", "conversion", True, "share of users",
                         "Users who gave at least one thumbs-up"),
        MetricDefinition("negative_feedback_rate", "Negative feedback rate", FEEDBACK_NEGATIVE,
                         "any", "conversion", False, "share of users",
                         "Users who gave at least one thumbs-down"),
        MetricDefinition("p95_total_user_latency", "p95 total latency per user", DURATION_TOTAL,
                         "sum", "percentile", False, "ms",
                         "95th percentile of a user's summed agent latency", percentile=0.95),
        MetricDefinition("average_total_user_tokens", "Average total tokens per user",
                         TOKENS_TOTAL, "sum", "mean", False, "tokens",
                         "Mean of a user's summed tokens over all agents"),
        MetricDefinition("ai_cost_per_request", "AI cost per user", COST_PER_REQUEST,
                         "sum", "mean", False, "USD",
                         "Mean of a user's summed dollar cost over all agents"),
        MetricDefinition("pii_exposed_entities", "PII entities exposed per user",
                         PII_EXPOSED_ENTITIES, "sum", "mean", False, "entities",
                         "Mean of a user's strict-set PII entities that reached the support agent"),
    )
}
