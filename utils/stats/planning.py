"""Sample ratio check and sample sizes (docs/STATISTICS.md); re-exported by `utils.stats.bayesian`.

Pure functions over numbers: no I/O.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps


def srm_p_value(counts: list[int] | np.ndarray, weights: list[float] | np.ndarray) -> float:
    """Chi-square goodness-of-fit p-value of users per arm against the configured split."""
    obs = np.asarray(counts, dtype=float)
    w = np.asarray(weights, dtype=float)
    if obs.shape != w.shape or obs.size < 2:
        raise ValueError(f"need one weight per arm and at least two arms, got {counts}, {weights}")
    if np.any(w <= 0):
        raise ValueError(f"split weights must be positive, got {weights}")
    total = obs.sum()
    if total == 0:
        return 1.0
    expected = total * w / w.sum()
    return float(sps.chisquare(obs, expected).pvalue)


def sample_size_conversion(
    baseline: float,
    relative_lift: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    two_sided: bool = True,
) -> int:
    """Users per arm to detect a relative lift of a conversion rate (docs/STATISTICS.md)."""
    p1 = baseline
    p2 = p1 * (1.0 + relative_lift)
    if not (0 < p1 < 1 and 0 < p2 < 1) or relative_lift == 0:
        raise ValueError(
            f"need 0 < baseline < 1, 0 < baseline*(1+lift) < 1 and lift != 0; "
            f"got baseline={baseline}, relative_lift={relative_lift}"
        )
    z_a = sps.norm.ppf(1 - alpha / 2 if two_sided else 1 - alpha)
    z_b = sps.norm.ppf(power)
    p_bar = (p1 + p2) / 2
    root = z_a * math.sqrt(2 * p_bar * (1 - p_bar)) + z_b * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(root**2 / (p2 - p1) ** 2)


def sample_size_mean(
    cv: float, relative_lift: float, *, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Users per arm to detect a relative lift of a mean with coefficient of variation `cv`."""
    if relative_lift == 0 or not math.isfinite(cv) or cv < 0:
        raise ValueError(f"need lift != 0 and a finite cv >= 0, got cv={cv}, lift={relative_lift}")
    z = sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)
    return max(2, math.ceil(2 * z**2 * cv**2 / relative_lift**2))
