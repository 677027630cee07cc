"""Users still needed: only for criteria that more data could still turn (docs/STATISTICS.md §5).

A criterion that passed needs nothing; one that has decisively failed (futile) or cannot be
judged whatever the sample (unpriced runs) is not helped by more users, so neither counts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as sps

from utils.experiments.decision_rules import MIN_USERS_PER_ARM, CriterionResult, MetricResult
from utils.experiments.definitions import (
    AbsoluteIncreaseAtMost,
    CostValueRatioAtLeast,
    Experiment,
    NonInferiority,
    RelativeIncreaseAtMost,
    RelativeLiftAtLeast,
)
from utils.experiments.user_metrics import ArmData
from utils.stats.bayesian import sample_size_conversion, sample_size_mean

# When a criterion has no effect size of its own, plan to detect at least this relative change.
MIN_PLANNING_LIFT = 0.05
PLANNING_ALPHA, PLANNING_POWER = 0.05, 0.8


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
    if isinstance(criterion, NonInferiority):
        return criterion.non_inferiority_margin
    if isinstance(criterion, RelativeIncreaseAtMost):
        return criterion.relative_increase_at_most
    if isinstance(criterion, AbsoluteIncreaseAtMost):
        base = m.comparison.control_value
        if math.isfinite(base) and base > 0:
            return max(criterion.absolute_increase_at_most / base, MIN_PLANNING_LIFT)
    r = m.comparison.relative_difference
    return max(abs(r), MIN_PLANNING_LIFT) if math.isfinite(r) else 0.10


def _open_criteria(experiment: Experiment, criteria: list[CriterionResult] | None):
    """(definition, result) of the criteria more data could still turn."""
    results = criteria or [None] * len(experiment.decision.ship_if_all)
    for definition, result in zip(experiment.decision.ship_if_all, results, strict=True):
        if result is None or not (result.passed or result.futile or result.blocked):
            yield definition


def estimate_users_needed(
    experiment: Experiment, results: dict[str, MetricResult], data: ArmData,
    users: dict[str, int], criteria: list[CriterionResult] | None = None,
    horizon: int | None = None,
) -> dict[str, Any] | None:
    """Per-arm users each open criterion's metric needs and how many more users in total.

    `criteria` (evaluated) narrows the plan to criteria that have not passed, failed for good
    or been blocked; None when no criterion is open, so more data cannot change the outcome.
    Before a planned `horizon` (users per arm) the target is the horizon itself, where the
    full rule decides; the per-metric estimates at the effect seen so far stay in `by_metric`.
    """
    current = min(users.values()) if users else 0
    open_criteria = list(_open_criteria(experiment, criteria))
    before_horizon = horizon is not None and current < horizon
    if not open_criteria and current >= MIN_USERS_PER_ARM and not before_horizon:
        return None
    by_metric: dict[str, int | None] = {}
    for criterion in open_criteria:
        if isinstance(criterion, CostValueRatioAtLeast):
            keys = [(criterion.value_metric, None), (criterion.cost_metric, None)]
        else:
            keys = [(criterion.metric, criterion)]
        for key, crit in keys:
            m = results[key]
            need = users_needed_per_arm(m, _planning_lift(crit, m), data)
            prev = by_metric.get(key)
            by_metric[key] = need if prev is None else max(prev, need or 0)
    known = [n for n in by_metric.values() if n is not None]
    per_arm = max([MIN_USERS_PER_ARM, *known])
    additional = max(0, per_arm - current) * len(experiment.split)
    slowest = max(by_metric, key=lambda k: by_metric[k] or 0) if known else None
    note = (f"{slowest} needs the most users ({by_metric[slowest]:,} per arm); high-variance "
            "metrics such as cost and feedback need far more than latency or tokens"
            if slowest else f"at least {MIN_USERS_PER_ARM} users per arm before any verdict")
    if before_horizon:
        per_arm = horizon
        additional = (horizon - current) * len(experiment.split)
        note = (f"The planned horizon is {horizon:,} users per arm, where the full rule decides"
                + (f"; at the effect seen so far {slowest} alone would need "
                   f"{by_metric[slowest]:,} per arm" if slowest else ""))
    return {"per_arm": per_arm, "additional": additional, "by_metric": by_metric, "note": note}
