"""Posterior draws, relative intervals and exact posterior probabilities (docs/STATISTICS.md §3).

LaunchDarkly's published method reports the relative difference with a delta-method normal
interval; `utils.stats.bayesian` keeps those fields. This module adds what criteria and views
use instead: intervals from posterior draws (the ratio of two positive quantities is never
below -100%) and probabilities of "treatment <= k x control" or "treatment - control <= v"
computed exactly from the Beta or normal posteriors (or from bootstrap draws).

A posterior is the tuple `Comparison.posterior` holds: ("beta", (a0, b0), (a1, b1)),
("normal", (mean0, sd0), (mean1, sd1)) or ("draws", control_draws, treatment_draws).
Pure functions over numbers: no I/O.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special
from scipy import stats as sps

POSTERIOR_DRAWS = 20_000
_NAN = math.nan
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(400)


def _truncated_normal(mean: float, sd: float, lower: float | None, size: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Draws of N(mean, sd²) restricted to [lower, ∞) by inverse-CDF sampling."""
    if not sd > 0:
        return np.full(size, mean if lower is None else max(mean, lower))
    if lower is None:
        return rng.normal(mean, sd, size)
    lo = float(sps.norm.cdf((lower - mean) / sd))
    if lo >= 1.0 - 1e-12:  # the whole posterior sits below the bound: it is the bound
        return np.full(size, lower)
    u = rng.uniform(lo, 1.0, size)
    return np.maximum(mean + sd * sps.norm.ppf(u), lower)


def posterior_draws(
    posterior: tuple, rng: np.random.Generator, *, size: int = POSTERIOR_DRAWS,
    lower: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(control, treatment) draws of a posterior; normal ones truncated at `lower` if given."""
    family, c, t = posterior
    if family == "beta":
        return rng.beta(*c, size=size), rng.beta(*t, size=size)
    if family == "normal":
        return (_truncated_normal(c[0], c[1], lower, size, rng),
                _truncated_normal(t[0], t[1], lower, size, rng))
    if family == "draws":
        return np.asarray(c, float), np.asarray(t, float)
    raise ValueError(f"unknown posterior family {family!r}")


def relative_interval(
    control_draws: np.ndarray, treatment_draws: np.ndarray, credible: float
) -> tuple[float, float, str | None]:
    """Central interval of treatment / control - 1 over paired draws, or NaN and a reason."""
    c, t = np.asarray(control_draws, float), np.asarray(treatment_draws, float)
    if not c.size or (np.any(c <= 0) and np.mean(c <= 0) > (1.0 - credible) / 2.0):
        return _NAN, _NAN, "control is 0 in too many draws for a relative interval"
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(c > 0, t / np.where(c > 0, c, 1.0) - 1.0, np.inf)
    tail = (1.0 - credible) / 2.0
    lo, hi = np.quantile(rel, [tail, 1.0 - tail])
    return float(lo), float(hi), None


def _beta_integral(control: tuple[float, float], inner) -> float:
    """E over the control Beta posterior of inner(x), by Gauss-Legendre quadrature."""
    a0, b0 = control
    lo, hi = sps.beta.ppf([1e-12, 1 - 1e-12], a0, b0)
    x = 0.5 * (hi - lo) * _GL_NODES + 0.5 * (hi + lo)
    w = 0.5 * (hi - lo) * _GL_WEIGHTS * sps.beta.pdf(x, a0, b0)
    return float(min(max(np.sum(w * inner(x)), 0.0), 1.0))


def probability_ratio_at_most(posterior: tuple | None, factor: float) -> float:
    """P(treatment <= factor x control): exact for Beta and normal posteriors."""
    if posterior is None or not math.isfinite(factor):
        return _NAN
    family, c, t = posterior
    if family == "beta":
        return _beta_integral(c, lambda x: special.betainc(*t, np.clip(factor * x, 0.0, 1.0)))
    if family == "normal":
        (mc, sc), (mt, st) = c, t
        sd = math.sqrt(st**2 + factor**2 * sc**2)
        gap = factor * mc - mt
        if sd == 0:
            return 1.0 if gap >= 0 else 0.0
        return float(sps.norm.cdf(gap / sd))
    cd, td = np.asarray(c, float), np.asarray(t, float)
    return float(np.mean(td <= factor * cd)) if cd.size else _NAN


def probability_difference_at_most(posterior: tuple | None, bound: float) -> float:
    """P(treatment - control <= bound): exact for Beta and normal posteriors."""
    if posterior is None or not math.isfinite(bound):
        return _NAN
    family, c, t = posterior
    if family == "beta":
        return _beta_integral(c, lambda x: special.betainc(*t, np.clip(x + bound, 0.0, 1.0)))
    if family == "normal":
        (mc, sc), (mt, st) = c, t
        sd = math.sqrt(st**2 + sc**2)
        gap = bound - (mt - mc)
        if sd == 0:
            return 1.0 if gap >= 0 else 0.0
        return float(sps.norm.cdf(gap / sd))
    cd, td = np.asarray(c, float), np.asarray(t, float)
    return float(np.mean(td - cd <= bound)) if cd.size else _NAN
