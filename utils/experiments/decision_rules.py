"""Decision rules: metric comparisons, `ship_if_all` criteria and planning (docs/STATISTICS.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

from utils.experiments.definitions import (
    AbsoluteIncreaseAtMost,
    CostValueRatioAtLeast,
    Experiment,
    NotWorse,
    ProbabilityToBeat,
    RelativeIncreaseAtMost,
    RelativeLiftAtLeast,
)
from utils.experiments.user_metrics import ArmData
from utils.stats.bayesian import (
    Comparison,
    ConversionStats,
    MeanStats,
    compare_conversion,
    compare_mean,
    compare_percentile,
    sample_size_conversion,
    sample_size_mean,
)
from utils.stats.resampling import CostValueRatio, cost_value_ratio
from utils.telemetry.metrics import METRICS, MetricDefinition

MIN_USERS_PER_ARM = 100
# When a criterion has no effect size of its own, plan to detect at least this relative change.
MIN_PLANNING_LIFT = 0.05
PLANNING_ALPHA, PLANNING_POWER = 0.05, 0.8


@dataclass
class MetricResult:
    """One metric's comparison, plus what the views need to label it."""

    key: str
    definition: MetricDefinition
    comparison: Comparison
    users: tuple[int, int]  # users with a value in (control, treatment)


@dataclass
class CriterionResult:
    """One `ship_if_all` rule: observed value against its bar."""

    kind: str
    metric: str
    description: str
    observed: float
    threshold: float
    passed: bool
    comparator: Literal[">=", "<=", "<"]
    detail: str = ""


# --- comparisons and criteria --------------------------------------------------------------


def compare_metric(data: ArmData, d: MetricDefinition, experiment: Experiment) -> MetricResult:
    """Run the comparison that the metric's statistic calls for."""
    c, t = data.arm_values(d.key, 0), data.arm_values(d.key, 1)
    credible = experiment.threshold
    if d.statistic == "conversion":
        comp = compare_conversion(
            ConversionStats(c.size, int(np.count_nonzero(c))),
            ConversionStats(t.size, int(np.count_nonzero(t))),
            credible=credible, higher_is_better=d.higher_is_better, seed=experiment.seed)
    elif d.statistic == "mean":
        comp = compare_mean(MeanStats.from_values(c), MeanStats.from_values(t),
                            credible=credible, higher_is_better=d.higher_is_better)
    else:
        comp = compare_percentile(c, t, q=d.percentile or 0.95, credible=credible,
                                  higher_is_better=d.higher_is_better, seed=experiment.seed)
    return MetricResult(d.key, d, comp, (int(c.size), int(t.size)))


def _nan_detail(comp: Comparison) -> str:
    return comp.reason or "not enough data"


def evaluate_criterion(
    criterion: Any, results: dict[str, MetricResult], data: ArmData, experiment: Experiment
) -> CriterionResult:
    """Observed value, bar and pass/fail of one criterion (docs/STATISTICS.md)."""
    if isinstance(criterion, CostValueRatioAtLeast):
        return _evaluate_cost_value(criterion, data, experiment)
    m = results[criterion.metric]
    comp = m.comparison
    better = "higher" if m.definition.higher_is_better else "lower"
    if isinstance(criterion, ProbabilityToBeat):
        obs, bar = comp.probability_to_beat_control, criterion.probability_to_beat
        res = CriterionResult(criterion.kind, m.key, f"P(treatment {better}) ≥ {bar:g}",
                              obs, bar, obs >= bar, ">=")
    elif isinstance(criterion, NotWorse):
        obs, bar = 1.0 - comp.probability_to_beat_control, criterion.not_worse
        res = CriterionResult(criterion.kind, m.key, f"not worse: P(treatment worse) < {bar:g}",
                              obs, bar, obs < bar, "<")
    elif isinstance(criterion, RelativeLiftAtLeast):
        sign = 1.0 if m.definition.higher_is_better else -1.0
        obs, bar = sign * comp.relative_difference, criterion.relative_lift_at_least
        res = CriterionResult(criterion.kind, m.key, f"relative lift ({better}) ≥ {bar:+.0%}",
                              obs, bar, obs >= bar, ">=")
    elif isinstance(criterion, RelativeIncreaseAtMost):
        v, bar = criterion.relative_increase_at_most, criterion.probability
        obs = comp.probability_relative_at_most(v)
        res = CriterionResult(
            criterion.kind, m.key, f"P(relative increase ≤ {v:.0%}) ≥ {bar:g}", obs, bar,
            obs >= bar, ">=", f"relative difference {comp.relative_difference:+.1%}")
    elif isinstance(criterion, AbsoluteIncreaseAtMost):
        obs, bar = comp.absolute_difference, criterion.absolute_increase_at_most
        res = CriterionResult(criterion.kind, m.key,
                              f"increase ≤ {bar:g} {m.definition.unit}", obs, bar, obs <= bar,
                              "<=")
    else:  # pragma: no cover - the schema admits no other kind
        raise ValueError(f"unknown criterion {criterion!r}")
    if not math.isfinite(res.observed):
        res.passed = False
        res.detail = _nan_detail(comp)
    return res


def _evaluate_cost_value(
    criterion: CostValueRatioAtLeast, data: ArmData, experiment: Experiment
) -> CriterionResult:
    value_def = METRICS[criterion.value_metric]
    cost_def = METRICS[criterion.cost_metric]

    def arm(a: int) -> tuple[np.ndarray, np.ndarray]:
        mask = data.arm == a
        v, c = data.values[value_def.key][mask], data.values[cost_def.key][mask]
        keep = ~(np.isnan(v) | np.isnan(c))
        return v[keep], c[keep]

    (cv, cc), (tv, tc) = arm(0), arm(1)
    bar = criterion.cost_value_ratio_at_least
    r: CostValueRatio = cost_value_ratio(
        cv, cc, tv, tc, bar=bar, value_higher_is_better=value_def.higher_is_better,
        seed=experiment.seed)
    need = experiment.threshold
    passed = math.isfinite(r.probability_at_least) and r.probability_at_least >= need
    if math.isnan(r.ratio):
        detail = r.reason or "not enough data"
    elif r.cost_increase <= 0:
        detail = (f"cost fell {r.cost_increase:+.1%} with value {r.value_lift:+.1%}; "
                  f"P(ratio ≥ {bar:g}) = {r.probability_at_least:.3f} over {r.resamples} "
                  "joint draws")
    else:
        detail = (f"value {r.value_lift:+.1%} / cost {r.cost_increase:+.1%} (sample means); "
                  f"P(ratio ≥ {bar:g}) = {r.probability_at_least:.3f} (needs ≥ {need:g}) "
                  f"over {r.resamples} joint draws")
    return CriterionResult(
        criterion.kind, f"{value_def.key}/{cost_def.key}",
        f"cost-value ratio ≥ {bar:g}", r.ratio, bar, passed, ">=", detail)


# --- planning ------------------------------------------------------------------------------


def users_needed_per_arm(m: MetricResult, lift: float, data: ArmData) -> int | None:
    """Users per arm to detect `lift` on this metric; None when it cannot be told."""
    lift = abs(lift)
    if not lift > 0:
        return None
    c = data.arm_values(m.key, 0)
    if c.size < 2:
        return None
    try:
        if m.definition.statistic == "conversion":
            return sample_size_conversion(float(np.mean(c > 0)), lift,
                                          alpha=PLANNING_ALPHA, power=PLANNING_POWER)
        if m.definition.statistic == "mean":
            mean = float(c.mean())
            if mean == 0:
                return None
            return sample_size_mean(float(c.std(ddof=1)) / abs(mean), lift,
                                    alpha=PLANNING_ALPHA, power=PLANNING_POWER)
    except ValueError:
        return None
    # Percentiles: scale today's bootstrap spread (sd ∝ 1/√n) to the spread the lift needs.
    sd = m.comparison.relative_sd
    if not (math.isfinite(sd) and sd > 0):
        return None
    z = sps.norm.ppf(1 - PLANNING_ALPHA / 2) + sps.norm.ppf(PLANNING_POWER)
    return math.ceil(min(m.users) * (z * sd / lift) ** 2)


def _planning_lift(criterion: Any, m: MetricResult) -> float:
    if isinstance(criterion, RelativeLiftAtLeast):
        return criterion.relative_lift_at_least
    if isinstance(criterion, RelativeIncreaseAtMost):
        return criterion.relative_increase_at_most
    if isinstance(criterion, AbsoluteIncreaseAtMost):
        base = m.comparison.control_value
        if math.isfinite(base) and base > 0:
            return max(criterion.absolute_increase_at_most / base, MIN_PLANNING_LIFT)
    r = m.comparison.relative_difference
    return max(abs(r), MIN_PLANNING_LIFT) if math.isfinite(r) else 0.10


def estimate_users_needed(
    experiment: Experiment, results: dict[str, MetricResult], data: ArmData,
    users: dict[str, int],
) -> dict[str, Any]:
    """Per-arm users each criterion metric needs and how many more users that means in total."""
    by_metric: dict[str, int | None] = {}
    for criterion in experiment.decision.ship_if_all:
        if isinstance(criterion, CostValueRatioAtLeast):
            keys = [(criterion.value_metric, None), (criterion.cost_metric, None)]
        else:
            keys = [(criterion.metric, criterion)]
        for key, crit in keys:
            m = results[key]
            lift = _planning_lift(crit, m) if crit is not None else _planning_lift(None, m)
            need = users_needed_per_arm(m, lift, data)
            prev = by_metric.get(key)
            by_metric[key] = need if prev is None else max(prev, need or 0)
    known = [n for n in by_metric.values() if n is not None]
    per_arm = max([MIN_USERS_PER_ARM, *known])
    current = min(users.values()) if users else 0
    additional = max(0, per_arm - current) * len(experiment.split)
    slowest = max(by_metric, key=lambda k: by_metric[k] or 0) if known else None
    note = (f"{slowest} needs the most users ({by_metric[slowest]:,} per arm); high-variance "
            "metrics such as cost and feedback need far more than latency or tokens"
            if slowest else f"at least {MIN_USERS_PER_ARM} users per arm before any verdict")
    return {"per_arm": per_arm, "additional": additional, "by_metric": by_metric, "note": note}
