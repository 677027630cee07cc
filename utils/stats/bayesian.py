"""Bayesian comparisons of two arms (docs/STATISTICS.md).

Pure functions over numbers: no I/O. Degenerate input (an empty arm, zero variance, zero
conversions) gives a defined `Comparison` whose `reason` says why a value is NaN or a prior
was replaced, never an exception from deep inside numpy.

The sample ratio check and sample sizes live in `utils.stats.planning` and are re-exported
here; the user-level bootstraps (cost-value ratio, 2x2 interaction) are in
`utils.stats.resampling`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import special
from scipy import stats as sps

from utils.stats.intervals import (
    posterior_draws,
    probability_difference_at_most,
    probability_ratio_at_most,
    relative_interval,
)
from utils.stats.planning import sample_size_conversion, sample_size_mean, srm_p_value

__all__ = [
    "GAMMA2_CONVERSION", "GAMMA2_MEAN", "Comparison", "ConversionStats", "MeanStats", "Prior",
    "bootstrap_percentile_draws", "compare_conversion", "compare_mean", "compare_percentile",
    "sample_size_conversion", "sample_size_mean", "srm_p_value",
]

Prior = Literal["ld", "flat"]

# LaunchDarkly-style prior widths (docs/STATISTICS.md): relative sd of the treatment prior
# around control.
GAMMA2_CONVERSION = 0.04
GAMMA2_MEAN = 0.16
_NAN = math.nan
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(400)


@dataclass(frozen=True)
class ConversionStats:
    """Users in an arm and how many of them converted."""

    n: int
    conversions: int

    @property
    def rate(self) -> float:
        return self.conversions / self.n if self.n else _NAN


@dataclass(frozen=True)
class MeanStats:
    """Sufficient statistics of per-user values: count, mean and sample variance (ddof=1)."""

    n: int
    mean: float
    variance: float

    @classmethod
    def from_values(cls, values: np.ndarray | list[float]) -> MeanStats:
        """Summarise raw per-user values (variance 0 for fewer than two users)."""
        arr = np.asarray(values, dtype=float)
        n = int(arr.size)
        mean = float(arr.mean()) if n else _NAN
        variance = float(arr.var(ddof=1)) if n > 1 else (0.0 if n == 1 else _NAN)
        return cls(n, mean, variance)


@dataclass(frozen=True)
class Comparison:
    """Treatment against control for one metric, in the metric's good direction."""

    control_value: float
    treatment_value: float
    relative_difference: float
    ci_low: float
    ci_high: float
    probability_to_beat_control: float
    expected_loss: float
    credible: float = 0.90
    higher_is_better: bool = True
    reason: str | None = None
    # Spread of the relative difference: a normal sd (delta method) or bootstrap draws.
    relative_sd: float = field(default=_NAN, repr=False)
    relative_draws: np.ndarray | None = field(default=None, repr=False, compare=False)
    # What a chart needs to draw the posteriors: ("beta", (a0, b0), (a1, b1)),
    # ("normal", (mean0, sd0), (mean1, sd1)) or ("draws", control_draws, treatment_draws).
    posterior: tuple | None = field(default=None, repr=False, compare=False)
    # Relative difference interval from posterior draws (bootstrap for percentiles): inside
    # the metric's range, unlike the delta-method ci_low/ci_high LaunchDarkly publishes.
    interval_low: float = _NAN
    interval_high: float = _NAN

    def probability_ratio_at_most(self, factor: float) -> float:
        """P(treatment <= factor x control), exact from the posterior (draws for percentiles)."""
        return probability_ratio_at_most(self.posterior, factor)

    def probability_difference_at_most(self, bound: float) -> float:
        """P(treatment - control <= bound) in metric units, exact from the posterior."""
        return probability_difference_at_most(self.posterior, bound)

    @property
    def absolute_difference(self) -> float:
        """Posterior mean of treatment - control, in the metric's units."""
        return self.treatment_value - self.control_value

    def probability_relative_at_most(self, bound: float) -> float:
        """P(treatment / control - 1 <= bound) under this comparison's posterior."""
        if self.relative_draws is not None and self.relative_draws.size:
            return float(np.mean(self.relative_draws <= bound))
        r, sd = self.relative_difference, self.relative_sd
        if not math.isfinite(r):
            return _NAN
        if not sd > 0:
            return 1.0 if r <= bound else 0.0
        return float(sps.norm.cdf((bound - r) / sd))


def _join(*reasons: str | None) -> str | None:
    parts = [r for r in reasons if r]
    return "; ".join(parts) if parts else None


def _undefined(
    reason: str, credible: float, higher: bool, control: float = _NAN, treatment: float = _NAN
) -> Comparison:
    return Comparison(control, treatment, _NAN, _NAN, _NAN, _NAN, _NAN, credible, higher, reason)


def _relative_normal(
    mc: float, vc: float, mt: float, vt: float, credible: float
) -> tuple[float, float, float, float, str | None]:
    """Delta-method relative difference mt/mc - 1, its sd and central interval."""
    if mc == 0:
        return _NAN, _NAN, _NAN, _NAN, "control value is 0, so the relative difference is undefined"
    r = mt / mc - 1.0
    # (mt²/mc²)(vt/mt² + vc/mc²) written so that mt = 0 is fine.
    var = vt / mc**2 + (mt**2) * vc / mc**4
    sd = math.sqrt(max(var, 0.0))
    z = float(sps.norm.ppf(0.5 + credible / 2.0))
    return r, sd, r - z * sd, r + z * sd, None


# --- conversions ---------------------------------------------------------------------------


def _beta_compare(a0: float, b0: float, a1: float, b1: float) -> tuple[float, float, float]:
    """P(p1 > p0), E[(p0 - p1)+] and E[(p1 - p0)+] for independent Beta posteriors.

    Exact up to quadrature error (Gauss-Legendre over the control posterior's support, with the
    inner expectation in closed form: E[(x - p1)+] = x F1(x) - m1 F(a1+1, b1)(x)).
    """
    lo, hi = sps.beta.ppf([1e-12, 1 - 1e-12], a0, b0)
    x = 0.5 * (hi - lo) * _GL_NODES + 0.5 * (hi + lo)
    w = 0.5 * (hi - lo) * _GL_WEIGHTS * sps.beta.pdf(x, a0, b0)
    f1 = special.betainc(a1, b1, x)
    m1 = a1 / (a1 + b1)
    m0 = a0 / (a0 + b0)
    p_beat = float(np.sum(w * (1.0 - f1)))
    loss_ship = float(np.sum(w * (x * f1 - m1 * special.betainc(a1 + 1.0, b1, x))))
    loss_keep = loss_ship + (m1 - m0)
    return min(max(p_beat, 0.0), 1.0), max(loss_ship, 0.0), max(loss_keep, 0.0)


def _ld_beta_prior(rate: float, n: int) -> tuple[float, float] | None:
    """Treatment Beta prior moment-matched around the control rate; None if undefined."""
    m = rate
    v = m * m * GAMMA2_CONVERSION + m * (1.0 - m) / n
    if not 0.0 < m < 1.0 or v <= 0:
        return None
    k = m * (1.0 - m) / v - 1.0
    if k <= 0:
        return None
    return m * k, (1.0 - m) * k


def compare_conversion(
    control: ConversionStats,
    treatment: ConversionStats,
    *,
    prior: Prior = "ld",
    credible: float = 0.90,
    higher_is_better: bool = True,
    seed: int = 0,
) -> Comparison:
    """Compare conversion rates with Beta posteriors (docs/STATISTICS.md).

    Probabilities come from deterministic quadrature; `seed` only drives the posterior draws
    of `interval_low`/`interval_high`.
    """
    _check_prior(prior)
    for name, arm in (("control", control), ("treatment", treatment)):
        if arm.n < 0 or not 0 <= arm.conversions <= arm.n:
            raise ValueError(f"{name} arm: need 0 <= conversions <= n, got {arm}")
    if control.n == 0 or treatment.n == 0:
        empty = "control" if control.n == 0 else "treatment"
        return _undefined(f"no users in the {empty} arm", credible, higher_is_better,
                          control.rate, treatment.rate)
    a0, b0 = 1.0 + control.conversions, 1.0 + control.n - control.conversions
    prior_t: tuple[float, float] = (1.0, 1.0)
    reason = None
    if prior == "ld":
        ld = _ld_beta_prior(control.rate, control.n)
        if ld is None:
            reason = (f"control rate is {control.rate:g}: the LaunchDarkly-style prior is "
                      "undefined, flat prior used")
        else:
            prior_t = ld
    a1 = prior_t[0] + treatment.conversions
    b1 = prior_t[1] + treatment.n - treatment.conversions
    if control.conversions == 0 and treatment.conversions == 0:
        reason = _join(reason, "no conversions in either arm")
    p_up, loss_if_higher, loss_if_lower = _beta_compare(a0, b0, a1, b1)
    mc, mt = a0 / (a0 + b0), a1 / (a1 + b1)
    vc = a0 * b0 / ((a0 + b0) ** 2 * (a0 + b0 + 1.0))
    vt = a1 * b1 / ((a1 + b1) ** 2 * (a1 + b1 + 1.0))
    r, sd, lo, hi, why = _relative_normal(mc, vc, mt, vt, credible)
    if higher_is_better:
        p_beat, loss = p_up, loss_if_higher
    else:
        p_beat, loss = 1.0 - p_up, loss_if_lower
    posterior = ("beta", (a0, b0), (a1, b1))
    ilo, ihi = _draw_interval(posterior, credible, seed)
    return Comparison(mc, mt, r, lo, hi, p_beat, loss, credible, higher_is_better,
                      _join(reason, why), sd, posterior=posterior, interval_low=ilo,
                      interval_high=ihi)


# --- means ---------------------------------------------------------------------------------


def _normal_posterior(
    mean: float, var_of_mean: float, prior_mean: float | None, prior_var: float | None
) -> tuple[float, float]:
    """Combine a normal likelihood N(mean, var_of_mean) with an optional normal prior."""
    if prior_mean is None or prior_var is None:
        return mean, var_of_mean
    if var_of_mean == 0:  # the data pin the mean exactly
        return mean, 0.0
    precision = 1.0 / prior_var + 1.0 / var_of_mean
    post_mean = (prior_mean / prior_var + mean / var_of_mean) / precision
    return post_mean, 1.0 / precision


def _normal_loss(delta: float, sd: float) -> float:
    """E[max(-D, 0)] for D ~ N(delta, sd²): expected shortfall of the treatment."""
    if sd == 0:
        return max(0.0, -delta) + 0.0  # + 0.0 turns -0.0 into 0.0
    z = delta / sd
    return float(sd * sps.norm.pdf(z) - delta * sps.norm.cdf(-z))


def compare_mean(
    control: MeanStats,
    treatment: MeanStats,
    *,
    prior: Prior = "ld",
    credible: float = 0.90,
    higher_is_better: bool = True,
    lower_bound: float | None = None,
    seed: int = 0,
) -> Comparison:
    """Compare means with normal posteriors, sample variance plugged in (docs/STATISTICS.md).

    `lower_bound` is the least value a mean can take (0 for sums of non-negative values): the
    draws behind `interval_low`/`interval_high` are truncated there, so they stay possible.
    """
    _check_prior(prior)
    if control.n == 0 or treatment.n == 0:
        empty = "control" if control.n == 0 else "treatment"
        return _undefined(f"no users in the {empty} arm", credible, higher_is_better,
                          control.mean if control.n else _NAN,
                          treatment.mean if treatment.n else _NAN)
    for name, arm in (("control", control), ("treatment", treatment)):
        if not (math.isfinite(arm.mean) and math.isfinite(arm.variance)) or arm.variance < 0:
            raise ValueError(f"{name} arm: need a finite mean and variance >= 0, got {arm}")
    reason = None
    vc_data = control.variance / control.n
    vt_data = treatment.variance / treatment.n
    mc, vc = float(control.mean), vc_data
    prior_mean = prior_var = None
    if prior == "ld":
        w2 = control.mean**2 * GAMMA2_MEAN + vc_data
        if w2 > 0:
            prior_mean, prior_var = control.mean, w2
        else:
            reason = "control has zero mean and variance: LaunchDarkly-style prior undefined, " \
                     "flat prior used"
    mt, vt = _normal_posterior(float(treatment.mean), vt_data, prior_mean, prior_var)
    if control.variance == 0 and treatment.variance == 0:
        reason = _join(reason, "zero variance in both arms")
    sign = 1.0 if higher_is_better else -1.0
    delta = sign * (mt - mc)
    sd = math.sqrt(vc + vt)
    if sd == 0:
        p_beat = 1.0 if delta > 0 else (0.0 if delta < 0 else 0.5)
    else:
        p_beat = float(sps.norm.cdf(delta / sd))
    r, rsd, lo, hi, why = _relative_normal(mc, vc, mt, vt, credible)
    posterior = ("normal", (mc, math.sqrt(vc)), (mt, math.sqrt(vt)))
    ilo, ihi = _draw_interval(posterior, credible, seed, lower_bound)
    return Comparison(mc, mt, r, lo, hi, p_beat, _normal_loss(delta, sd), credible,
                      higher_is_better, _join(reason, why), rsd, posterior=posterior,
                      interval_low=ilo, interval_high=ihi)


# --- percentiles ---------------------------------------------------------------------------


def bootstrap_percentile_draws(
    values: np.ndarray, q: float, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """The q-quantile (numpy's linear interpolation) of `resamples` bootstrap resamples.

    Exact in distribution to resampling n users with replacement, but O(resamples) after one
    sort: the k-th smallest of n draws from the empirical distribution is F⁻¹(U₍ₖ₎), with the
    uniform order statistic U₍ₖ₎ ~ Beta(k, n-k+1) and U₍ₖ₊₁₎ the minimum of the n-k uniforms
    above it. So 50,000 users cost the same as 50.
    """
    x = np.sort(np.asarray(values, dtype=float))
    n = x.size
    h = (n - 1) * q
    k = int(math.floor(h))  # 0-based index of the lower order statistic
    frac = h - k
    u_k = rng.beta(k + 1, n - k, size=resamples)
    above = n - k - 1  # uniforms above the k-th; the next order statistic is their minimum
    u_next = u_k + (1.0 - u_k) * rng.beta(1, above, size=resamples) if above > 0 else u_k

    def inverse_cdf(u: np.ndarray) -> np.ndarray:
        return x[np.clip(np.ceil(u * n).astype(np.int64) - 1, 0, n - 1)]

    lower = inverse_cdf(u_k)
    return lower + frac * (inverse_cdf(u_next) - lower)


def compare_percentile(
    control_values: np.ndarray | list[float],
    treatment_values: np.ndarray | list[float],
    *,
    q: float = 0.95,
    credible: float = 0.90,
    higher_is_better: bool = False,
    seed: int = 0,
    resamples: int = 4000,
) -> Comparison:
    """Compare a percentile of per-user values with an independent bootstrap per arm."""
    c = np.asarray(control_values, dtype=float)
    t = np.asarray(treatment_values, dtype=float)
    if c.size == 0 or t.size == 0:
        empty = "control" if c.size == 0 else "treatment"
        return _undefined(f"no users with values in the {empty} arm", credible, higher_is_better,
                          float(np.quantile(c, q)) if c.size else _NAN,
                          float(np.quantile(t, q)) if t.size else _NAN)
    rng = np.random.default_rng(seed)
    cv, tv = float(np.quantile(c, q)), float(np.quantile(t, q))
    c_draws = bootstrap_percentile_draws(c, q, resamples, rng)
    t_draws = bootstrap_percentile_draws(t, q, resamples, rng)
    sign = 1.0 if higher_is_better else -1.0
    gain = sign * (t_draws - c_draws)
    p_beat = float(np.mean(gain > 0) + 0.5 * np.mean(gain == 0))
    loss = float(np.mean(np.maximum(-gain, 0.0)))
    reason = None
    if c.size < 2 or t.size < 2:
        reason = "fewer than two users in an arm: the bootstrap has no spread"
    if cv == 0 or np.any(c_draws == 0):
        why = "control percentile is 0, so the relative difference is undefined"
        return Comparison(cv, tv, _NAN, _NAN, _NAN, p_beat, loss, credible, higher_is_better,
                          _join(reason, why), posterior=("draws", c_draws, t_draws))
    rel = t_draws / c_draws - 1.0
    tail = (1.0 - credible) / 2.0
    lo, hi = np.quantile(rel, [tail, 1.0 - tail])
    return Comparison(cv, tv, tv / cv - 1.0, float(lo), float(hi), p_beat, loss, credible,
                      higher_is_better, reason, float(np.std(rel)), rel,
                      posterior=("draws", c_draws, t_draws), interval_low=float(lo),
                      interval_high=float(hi))


def _draw_interval(posterior: tuple, credible: float, seed: int,
                   lower: float | None = None) -> tuple[float, float]:
    """Relative interval from seeded posterior draws (NaN when control sits at 0)."""
    c, t = posterior_draws(posterior, np.random.default_rng(seed), lower=lower)
    lo, hi, _ = relative_interval(c, t, credible)
    return lo, hi


def _check_prior(prior: str) -> None:
    if prior not in ("ld", "flat"):
        raise ValueError(f"prior must be 'ld' or 'flat', got {prior!r}")
