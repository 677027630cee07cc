"""User-level bootstraps: the joint cost-value ratio and the 2x2 interaction (docs/STATISTICS.md).

Pure functions over numbers: no I/O. Degenerate input gives a result whose `reason` says why
a value is NaN, never an exception from deep inside numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from utils.stats.bayesian import bootstrap_percentile_draws

_NAN = math.nan

# Work cap for index resampling (users x resamples per arm): keeps a 50,000-user report fast.
_MAX_BOOTSTRAP_WORK = 20_000_000
_MIN_RESAMPLES = 500
_CHUNK_WORK = 2_000_000


def _effective_resamples(n: int, resamples: int) -> int:
    return int(min(resamples, max(_MIN_RESAMPLES, _MAX_BOOTSTRAP_WORK // max(n, 1))))


def bootstrap_mean_draws(
    values: np.ndarray, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Means of bootstrap resamples of per-user values; columns are kept jointly (same users).

    `values` is (n,) or (n, k). 0/1 columns alone are drawn exactly as Binomial(n, p)/n.
    """
    x = np.asarray(values, dtype=float)
    n = x.shape[0]
    if x.ndim == 1 and n and np.all((x == 0) | (x == 1)):
        return rng.binomial(n, x.mean(), size=resamples) / n
    cols = [x] if x.ndim == 1 else [np.ascontiguousarray(x[:, j]) for j in range(x.shape[1])]
    out = np.empty((resamples, len(cols)))
    rows = max(1, _CHUNK_WORK // max(n, 1))
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        # One gather per column with the same indices keeps the columns joint (same users).
        for j, col in enumerate(cols):
            out[start:stop, j] = col[idx].mean(axis=1)
    return out[:, 0] if x.ndim == 1 else out


@dataclass(frozen=True)
class CostValueRatio:
    """(value lift %) / (cost increase %) with its probability of meeting a bar."""

    value_lift: float
    cost_increase: float
    ratio: float  # +inf when the cost fell and the value did not
    probability_at_least: float  # share of joint draws meeting the bar
    bar: float
    resamples: int
    reason: str | None = None


def _ratio_meets_bar(lift: np.ndarray, cost_inc: np.ndarray, bar: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = lift / cost_inc
    cheaper = (cost_inc <= 0) & (lift >= 0)  # a cost decrease with a non-negative lift passes
    return cheaper | ((cost_inc > 0) & (ratio >= bar))


def cost_value_ratio(
    control_value: np.ndarray,
    control_cost: np.ndarray,
    treatment_value: np.ndarray,
    treatment_cost: np.ndarray,
    *,
    bar: float,
    value_higher_is_better: bool = True,
    resamples: int = 4000,
    seed: int = 0,
) -> CostValueRatio:
    """Cost-value ratio on joint user-level bootstrap draws (value and cost share the users).

    Resamples are capped so that users x resamples stays near 2·10⁷ per arm (never fewer than
    500); `resamples` in the result says how many were drawn.
    """
    cv_, cc_ = np.asarray(control_value, float), np.asarray(control_cost, float)
    tv_, tc_ = np.asarray(treatment_value, float), np.asarray(treatment_cost, float)
    if cv_.shape != cc_.shape or tv_.shape != tc_.shape:
        raise ValueError("value and cost arrays must hold one entry per user in each arm")
    if cv_.size == 0 or tv_.size == 0:
        empty = "control" if cv_.size == 0 else "treatment"
        return CostValueRatio(_NAN, _NAN, _NAN, _NAN, bar, 0, f"no users in the {empty} arm")
    sign = 1.0 if value_higher_is_better else -1.0
    if cv_.mean() == 0 or cc_.mean() == 0:
        which = "value" if cv_.mean() == 0 else "cost"
        return CostValueRatio(_NAN, _NAN, _NAN, _NAN, bar, 0,
                              f"control {which} is 0, so relative changes are undefined")
    lift = sign * (tv_.mean() / cv_.mean() - 1.0)
    cost_inc = tc_.mean() / cc_.mean() - 1.0
    # A cost decrease has no finite ratio: +inf if the value held up, -inf if it fell too.
    ratio = lift / cost_inc if cost_inc > 0 else math.copysign(math.inf, lift if lift else 1.0)
    rng = np.random.default_rng(seed)
    b = _effective_resamples(max(cv_.size, tv_.size), resamples)
    c_draws = bootstrap_mean_draws(np.column_stack([cv_, cc_]), b, rng)
    t_draws = bootstrap_mean_draws(np.column_stack([tv_, tc_]), b, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        lift_d = sign * (t_draws[:, 0] / c_draws[:, 0] - 1.0)
        cost_d = t_draws[:, 1] / c_draws[:, 1] - 1.0
    ok = np.isfinite(lift_d) & np.isfinite(cost_d)
    prob = float(np.mean(_ratio_meets_bar(lift_d, cost_d, bar) & ok))
    reason = None if ok.all() else "some resamples had a zero control mean and count as failing"
    return CostValueRatio(float(lift), float(cost_inc), float(ratio), prob, bar, b, reason)


@dataclass(frozen=True)
class Interaction:
    """2x2 cells (rows: arm of experiment A, columns: arm of B) and the difference of differences."""

    users: tuple[tuple[int, int], tuple[int, int]]
    values: tuple[tuple[float, float], tuple[float, float]]
    interaction: float
    ci_low: float
    ci_high: float
    reason: str | None = None


def interaction_2x2(
    cells: dict[tuple[int, int], np.ndarray],
    *,
    statistic: Literal["mean", "percentile"] = "mean",
    q: float = 0.95,
    credible: float = 0.90,
    resamples: int = 4000,
    seed: int = 0,
) -> Interaction:
    """(v11 - v10) - (v01 - v00) with a bootstrap interval, each cell resampled independently.

    Keys are (arm in A, arm in B) with 0 = control, 1 = treatment; conversions are means of 0/1.
    """
    arrays = {k: np.asarray(cells.get(k, ()), dtype=float) for k in
              ((0, 0), (0, 1), (1, 0), (1, 1))}
    users = tuple(tuple(int(arrays[(a, b)].size) for b in (0, 1)) for a in (0, 1))

    def point(x: np.ndarray) -> float:
        if not x.size:
            return _NAN
        return float(np.quantile(x, q)) if statistic == "percentile" else float(x.mean())

    values = tuple(tuple(point(arrays[(a, b)]) for b in (0, 1)) for a in (0, 1))
    if min(min(row) for row in users) == 0:
        return Interaction(users, values, _NAN, _NAN, _NAN, "a cell of the 2x2 has no users")
    rng = np.random.default_rng(seed)
    draws = {}
    for key, x in arrays.items():
        if statistic == "percentile":
            draws[key] = bootstrap_percentile_draws(x, q, resamples, rng)
        else:
            draws[key] = bootstrap_mean_draws(x, _effective_resamples(x.size, resamples), rng)
    b = min(d.size for d in draws.values())
    dd = (draws[(1, 1)][:b] - draws[(1, 0)][:b]) - (draws[(0, 1)][:b] - draws[(0, 0)][:b])
    tail = (1.0 - credible) / 2.0
    lo, hi = np.quantile(dd, [tail, 1.0 - tail])
    est = (values[1][1] - values[1][0]) - (values[0][1] - values[0][0])
    return Interaction(users, values, est, float(lo), float(hi))
