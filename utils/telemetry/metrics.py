"""Event keys and metric definitions: the one source of truth (docs/CONTRACTS.md)."""

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
# Custom metrics sent with ld_client.track.
COST_PER_REQUEST = "ai_cost_per_request"
PII_EXPOSED_ENTITIES = "pii_exposed_entities"

FEEDBACK_EVENT_KEYS = {"positive": FEEDBACK_POSITIVE, "negative": FEEDBACK_NEGATIVE}

Aggregate = Literal["any", "sum"]
Statistic = Literal["conversion", "mean", "percentile"]


@dataclass(frozen=True)
class MetricDefinition:
    """How a metric is computed per user and compared between arms."""

    key: str
    event_key: str
    aggregate: Aggregate
    statistic: Statistic
    higher_is_better: bool
    unit: str
    description: str
    percentile: float | None = None


METRICS: dict[str, MetricDefinition] = {
    m.key: m
    for m in (
        MetricDefinition("positive_feedback_rate", FEEDBACK_POSITIVE, "any", "conversion",
                         True, "share of users", "Users who gave at least one thumbs-up"),
        MetricDefinition("negative_feedback_rate", FEEDBACK_NEGATIVE, "any", "conversion",
                         False, "share of users", "Users who gave at least one thumbs-down"),
        MetricDefinition("p95_total_user_latency", DURATION_TOTAL, "sum", "percentile",
                         False, "ms", "95th percentile of a user's summed agent latency",
                         percentile=0.95),
        MetricDefinition("average_total_user_tokens", TOKENS_TOTAL, "sum", "mean",
                         False, "tokens", "Mean of a user's summed tokens over all agents"),
        MetricDefinition("ai_cost_per_request", COST_PER_REQUEST, "sum", "mean",
                         False, "USD", "Mean of a user's summed dollar cost over all agents"),
        MetricDefinition("pii_exposed_entities", PII_EXPOSED_ENTITIES, "sum", "mean",
                         False, "entities",
                         "Mean of a user's strict-set PII entities that reached the support agent"),
    )
}
