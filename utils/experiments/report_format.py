"""Shared formatting of verdict values for the terminal and HTML views (one wording)."""

from __future__ import annotations

import math

from utils.experiments.agent_split import MetricSplit
from utils.experiments.verdicts import CriterionResult
from utils.telemetry.metrics import METRICS

SIMULATED_BANNER = (
    "SIMULATED PROVIDERS: some events in this store came from simulated models; "
    "the verdicts describe the simulator, not real models"
)


def format_value(metric_key: str, value: float) -> str:
    """A metric value in its unit."""
    if not math.isfinite(value):
        return "—"
    unit = METRICS[metric_key].unit
    if unit == "share of users":
        return f"{value:.1%}"
    if unit == "USD":
        return f"${value:.4f}" if abs(value) < 1 else f"${value:,.2f}"
    if unit == "ms":
        return f"{value:,.0f} ms"
    if unit == "tokens":
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) >= 5e-4 else "0"


def format_loss(metric_key: str, value: float) -> str:
    """Expected loss: for a rate, a difference of shares, so in percentage points (pp)."""
    if METRICS[metric_key].unit == "share of users" and math.isfinite(value):
        return f"{value * 100:.1f} pp"
    return format_value(metric_key, value)


def format_interaction(metric_key: str, value: float, low: float, high: float) -> str:
    """Difference of differences: percentage points for rates, metric units otherwise."""
    if METRICS[metric_key].unit == "share of users":
        return format_relative(value, low, high).replace("%", " pp")
    if not math.isfinite(value):
        return "—"
    text = format_value(metric_key, value)
    if math.isfinite(low) and math.isfinite(high):
        text += f" [{format_value(metric_key, low)}, {format_value(metric_key, high)}]"
    return text


def format_relative(value: float, low: float | None = None, high: float | None = None) -> str:
    """+12.3% [+1.0%, +24.0%]."""
    if not math.isfinite(value):
        return "—"
    text = f"{value:+.1%}"
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        text += f" [{low:+.1%}, {high:+.1%}]"
    return text


def format_probability(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "—"


def format_observed(c: CriterionResult) -> str:
    """The observed value of a criterion in the unit its bar uses."""
    v = c.observed
    if c.kind == "cost_value_ratio_at_least":
        if v == math.inf:
            return "cheaper and better"
        if v == -math.inf:
            return "cheaper but worse"
        return f"{v:.2f}" if math.isfinite(v) else "—"
    if not math.isfinite(v):
        return "—"
    if c.kind == "relative_lift_at_least":
        return f"{v:+.1%}"
    return f"{v:.3f}"


def format_threshold(c: CriterionResult) -> str:
    bar = f"{c.threshold:+.0%}" if c.kind == "relative_lift_at_least" else f"{c.threshold:g}"
    return f"{c.comparator} {bar}"


def format_failed_runs(failed: dict[str, int]) -> str:
    """Failed agent runs per arm; they stay in the analysis (intent to treat)."""
    return "  ".join(f"{arm}: {n:,}" for arm, n in failed.items()) + \
        "   (kept in: their latency and the cost of what was sent count)"


def format_unpriced(models: list[dict]) -> str:
    """Models whose runs have no cost, with where they ran."""
    return ", ".join(f"{m['model']} ({m['variation']}, {m['runs']:,} runs)" for m in models)


def criterion_scale(c: CriterionResult) -> tuple[float, float]:
    """(observed, bar) placed on 0..1 for a bar chart; the bar mark sits where the rule cuts."""
    probability_kinds = ("probability_to_beat", "non_inferiority_margin",
                         "relative_increase_at_most", "absolute_increase_at_most")
    if c.kind in probability_kinds:
        obs = c.observed if math.isfinite(c.observed) else 0.0
        return min(max(obs, 0.0), 1.0), c.threshold
    # Other kinds: the bar at the middle, observed scaled by twice the bar's size.
    span = 2 * abs(c.threshold) if c.threshold else 1.0
    if c.observed == math.inf:
        return 1.0, 0.5
    if not math.isfinite(c.observed):
        return 0.0, 0.5
    return min(max(0.5 + (c.observed - c.threshold) / span, 0.0), 1.0), 0.5


def format_delta(metric_key: str, value: float) -> str:
    """A signed difference in the metric's unit: +$0.0060, -12 ms."""
    if not math.isfinite(value):
        return "—"
    return ("+" if value >= 0 else "-") + format_value(metric_key, abs(value))


def split_rows(split: MetricSplit) -> list[tuple[str, str, str, str]]:
    """(agent, control, treatment, difference) per agent, per-user means in the metric's unit."""
    rows = [(a.agent + (f" ({a.unknown_runs:,} unpriced runs)" if a.unknown_runs else ""),
             format_value(split.metric, a.control), format_value(split.metric, a.treatment),
             format_delta(split.metric, a.difference)) for a in split.agents]
    rows.append(("all agents", "", "", format_delta(split.metric, split.difference)))
    return rows


def split_title(split: MetricSplit) -> str:
    what = "per-user mean total" if split.of_mean else "per-user mean"
    return f"{METRICS[split.metric].name}: {what} by agent"
