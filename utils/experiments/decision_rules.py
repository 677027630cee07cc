"""Decision rules: metric comparisons and `ship_if_all` criteria (docs/STATISTICS.md).

Every criterion reports its observed value against its bar, and `probability_met`: the
posterior probability that what it asks is true. That probability drives futility (a
criterion below the decision's floor has decisively failed). Probabilities come exactly
from the Beta or normal posteriors, or from bootstrap draws for percentiles, never from the
delta-method interval. A criterion on a metric some users' values of which are unknown (an
unpriced model's cost) is `blocked`: it cannot pass, however much data comes in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from utils.experiments.definitions import (
    AbsoluteIncreaseAtMost,
    CostValueRatioAtLeast,
    Experiment,
    NonInferiority,
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
)
from utils.stats.resampling import CostValueRatio, cost_value_ratio
from utils.telemetry.metrics import METRICS, MetricDefinition

MIN_USERS_PER_ARM = 100
PRICING_HINT = ("add its price to a pricing override file named by PRICING_OVERRIDES_PATH "
                '(same format as utils/telemetry/pricing.json: {"models": {"<model>": '
                '{"input": <USD per 1M>, "output": <USD per 1M>}}}); runs recorded before '
                "that keep an unknown cost, so judge cost on traffic recorded after it")
_NAN = math.nan


@dataclass
class MetricResult:
    """One metric's comparison, plus what the views need to label it."""

    key: str
    definition: MetricDefinition
    comparison: Comparison
    users: tuple[int, int]  # users with a value in (control, treatment)
    unknown_users: tuple[int, int] = (0, 0)  # users whose value is unknown (unpriced runs)
    unknown_models: tuple[tuple[str, str, int], ...] = ()  # (arm, model, runs) behind them

    @property
    def blocked(self) -> str:
        """Why this metric cannot be judged whatever the sample ('' when it can)."""
        if not any(self.unknown_users):
            return ""
        models = ", ".join(f"{model} ({arm}, {runs:,} runs)"
                           for arm, model, runs in self.unknown_models) or "a model"
        return (f"{self.key} is unknown for {sum(self.unknown_users):,} users: {models} "
                f"has no price; {PRICING_HINT}")


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
    probability_met: float = _NAN  # posterior probability that the criterion holds
    futile: bool = False  # probability_met below the decision's futility floor
    blocked: str = ""  # why it cannot pass whatever the sample (unpriced runs)
    in_words: str = ""  # the criterion and where it stands, in a sentence


# --- comparisons ---------------------------------------------------------------------------


def compare_metric(data: ArmData, d: MetricDefinition, experiment: Experiment) -> MetricResult:
    """Run the comparison that the metric's statistic calls for."""
    c, t = data.arm_values(d.key, 0), data.arm_values(d.key, 1)
    unknown = (data.unknown_users(d.key, 0), data.unknown_users(d.key, 1))
    arm_names = experiment.variations
    models = tuple(sorted((arm_names[a], model, n)
                          for (a, model), n in data.unknown_models.get(d.key, {}).items()))
    credible = experiment.threshold
    if any(unknown):
        # The users left would be a biased subset: show nothing rather than a wrong mean.
        why = f"unknown for {unknown[0]:,} + {unknown[1]:,} users (unpriced runs)"
        comp = Comparison(_NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, credible,
                          d.higher_is_better, why)
    elif d.statistic == "conversion":
        comp = compare_conversion(
            ConversionStats(c.size, int(np.count_nonzero(c))),
            ConversionStats(t.size, int(np.count_nonzero(t))),
            credible=credible, higher_is_better=d.higher_is_better, seed=experiment.seed)
    elif d.statistic == "mean":
        # Sums of non-negative events have a non-negative mean: draws respect that range.
        floor = 0.0 if (c.size and t.size and min(c.min(), t.min()) >= 0) else None
        comp = compare_mean(MeanStats.from_values(c), MeanStats.from_values(t),
                            credible=credible, higher_is_better=d.higher_is_better,
                            lower_bound=floor, seed=experiment.seed)
    else:
        comp = compare_percentile(c, t, q=d.percentile or 0.95, credible=credible,
                                  higher_is_better=d.higher_is_better, seed=experiment.seed)
    return MetricResult(d.key, d, comp, (int(c.size), int(t.size)), unknown, models)


# --- criteria ------------------------------------------------------------------------------


def _relative_at_least(comp: Comparison, higher: bool, change: float) -> float:
    """P(relative change in the good direction >= change), exact from the posterior."""
    if higher:  # P(t >= (1 + change) c)
        p = comp.probability_ratio_at_most(1.0 + change)
        return 1.0 - p if math.isfinite(p) else p
    return comp.probability_ratio_at_most(1.0 - change)  # P(t <= (1 - change) c)


def _percent(p: float) -> str:
    """A probability as a percentage that never rounds across its bar (99.96% is not 100%)."""
    if not math.isfinite(p):
        return "unknown"
    if 0.999 < p < 1.0:
        return ">99.9%"
    if 0.0 < p < 0.001:
        return "<0.1%"
    return f"{p:.1%}".replace(".0%", "%")


def _sure(p: float, need: float) -> str:
    return f"{_percent(p)} sure (needs {_percent(need)})"


def _label(d: MetricDefinition) -> str:
    """How a metric's unit of analysis reads: the latency bar is a per-user total."""
    return "per-user total p95" if d.statistic == "percentile" and d.aggregate == "sum" else ""


def evaluate_criterion(
    criterion: Any, results: dict[str, MetricResult], data: ArmData, experiment: Experiment
) -> CriterionResult:
    """Observed value, bar, pass/fail and probability of being met of one criterion."""
    if isinstance(criterion, CostValueRatioAtLeast):
        res = _evaluate_cost_value(criterion, results, data, experiment)
    else:
        res = _evaluate_metric_criterion(criterion, results[criterion.metric])
    floor = experiment.decision.futility_floor
    res.futile = (not res.passed and not res.blocked and math.isfinite(res.probability_met)
                  and res.probability_met < floor)
    return res


def _evaluate_metric_criterion(criterion: Any, m: MetricResult) -> CriterionResult:
    comp, d = m.comparison, m.definition
    higher = d.higher_is_better
    better = "higher" if higher else "lower"
    if isinstance(criterion, ProbabilityToBeat):
        obs, bar = comp.probability_to_beat_control, criterion.probability_to_beat
        res = CriterionResult(criterion.kind, m.key, f"P(treatment {better}) ≥ {bar:g}",
                              obs, bar, obs >= bar, ">=", probability_met=obs)
        asks = f"{d.name} is {better} with the treatment"
    elif isinstance(criterion, NonInferiority):
        margin, bar = criterion.non_inferiority_margin, criterion.probability
        obs = _relative_at_least(comp, higher, -margin)
        change = f"change ≥ {-margin:+.0%}" if higher else f"increase ≤ {margin:+.0%}"
        detail = f"relative difference {comp.relative_difference:+.1%}"
        if math.isfinite(comp.interval_low) and math.isfinite(comp.interval_high):
            detail += f" [{comp.interval_low:+.1%}, {comp.interval_high:+.1%}]"
        res = CriterionResult(criterion.kind, m.key, f"non-inferior: P({change}) ≥ {bar:g}",
                              obs, bar, obs >= bar, ">=", detail, probability_met=obs)
        asks = f"{d.name} {'falls' if higher else 'rises'} by no more than {margin:.0%}"
    elif isinstance(criterion, RelativeLiftAtLeast):
        sign = 1.0 if higher else -1.0
        obs, bar = sign * comp.relative_difference, criterion.relative_lift_at_least
        met = _relative_at_least(comp, higher, bar)
        res = CriterionResult(criterion.kind, m.key, f"relative lift ({better}) ≥ {bar:+.0%}",
                              obs, bar, obs >= bar, ">=", f"P(lift ≥ {bar:+.0%}) = {met:.3f}",
                              probability_met=met)
        asks = f"{d.name} {'rises' if higher else 'falls'} by at least {bar:.0%}"
    elif isinstance(criterion, RelativeIncreaseAtMost):
        v, bar = criterion.relative_increase_at_most, criterion.probability
        obs = comp.probability_ratio_at_most(1.0 + v)
        res = CriterionResult(
            criterion.kind, m.key, f"P(relative increase ≤ {v:.0%}) ≥ {bar:g}", obs, bar,
            obs >= bar, ">=", f"relative difference {comp.relative_difference:+.1%}",
            probability_met=obs)
        asks = f"{d.name} rises by no more than {v:.0%}"
    elif isinstance(criterion, AbsoluteIncreaseAtMost):
        v, bar = criterion.absolute_increase_at_most, criterion.probability
        obs = comp.probability_difference_at_most(v)
        what = _label(d) or m.key
        amount = f"{v / 1000:g} s" if d.unit == "ms" and v >= 1000 else f"{v:g} {d.unit}"
        detail = f"{what} difference {comp.absolute_difference:+,.4g} {d.unit}"
        res = CriterionResult(
            criterion.kind, m.key, f"P({what} increase ≤ {amount}) ≥ {bar:g}", obs, bar,
            obs >= bar, ">=", detail, probability_met=obs)
        asks = f"{d.name} rises by no more than {amount}"
    else:  # pragma: no cover - the schema admits no other kind
        raise ValueError(f"unknown criterion {criterion!r}")
    if m.blocked:
        res.passed, res.blocked, res.detail = False, m.blocked, m.blocked
        where = f"cannot be judged ({m.blocked})"
    elif not math.isfinite(res.observed):
        res.passed = False
        res.detail = comp.reason or "not enough data"
        where = "not enough data yet"
    elif isinstance(criterion, RelativeLiftAtLeast):
        where = (f"observed {res.observed:+.1%} (needs {res.threshold:+.0%}); "
                 f"{_percent(res.probability_met)} sure the true change is that large")
    else:
        where = _sure(res.observed, res.threshold)
    res.in_words = f"{asks}: {where}"
    return res


def _evaluate_cost_value(
    criterion: CostValueRatioAtLeast, results: dict[str, MetricResult], data: ArmData,
    experiment: Experiment,
) -> CriterionResult:
    value_def = METRICS[criterion.value_metric]
    cost_def = METRICS[criterion.cost_metric]
    bar, need = criterion.cost_value_ratio_at_least, criterion.probability
    label = f"{value_def.key}/{cost_def.key}"
    description = f"P(cost-value ratio ≥ {bar:g}) ≥ {need:g}"
    blocked = next((results[k].blocked for k in (value_def.key, cost_def.key)
                    if k in results and results[k].blocked), "")
    asks = f"{value_def.name} gains at least {bar:g}% for every 1% added to {cost_def.name}"
    if blocked:
        return CriterionResult(criterion.kind, label, description, _NAN, bar, False, ">=",
                               blocked, blocked=blocked,
                               in_words=f"{asks}: cannot be judged ({blocked})")

    def arm(a: int) -> tuple[np.ndarray, np.ndarray]:
        mask = data.arm == a
        v, c = data.values[value_def.key][mask], data.values[cost_def.key][mask]
        keep = ~(np.isnan(v) | np.isnan(c))
        return v[keep], c[keep]

    (cv, cc), (tv, tc) = arm(0), arm(1)
    r: CostValueRatio = cost_value_ratio(
        cv, cc, tv, tc, bar=bar, value_higher_is_better=value_def.higher_is_better,
        seed=experiment.seed)
    p = r.probability_at_least
    passed = math.isfinite(p) and p >= need
    if math.isnan(r.ratio):
        detail = r.reason or "not enough data"
    elif r.cost_increase <= 0:
        verdict = "cheaper and better" if r.value_lift >= 0 else "cheaper but worse"
        detail = (f"{verdict} (cost fell {r.cost_increase:+.1%}, value {r.value_lift:+.1%}); "
                  f"P(ratio ≥ {bar:g}) = {p:.3f} (needs ≥ {need:g}) over {r.resamples} "
                  "joint draws")
    else:
        detail = (f"value {r.value_lift:+.1%} / cost {r.cost_increase:+.1%} (sample means); "
                  f"P(ratio ≥ {bar:g}) = {p:.3f} (needs ≥ {need:g}) over {r.resamples} "
                  "joint draws")
    words = f"{asks}: " + (_sure(p, need) if math.isfinite(p) else "not enough data yet")
    return CriterionResult(criterion.kind, label, description, r.ratio, bar, passed, ">=",
                           detail, probability_met=p, in_words=words)
