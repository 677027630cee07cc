"""Paired comparison of two variants' pass/fail outcomes on the same tasks × repeats.

A Bayesian McNemar comparison. Each (task, repeat) pair falls in one of four cells: both
pass, only A passes, only B passes, neither. The cell probabilities get a Dirichlet posterior
(uniform prior); the difference in pass rate is p(A only) − p(B only), and
P(A better) = P(p(A only) > p(B only)) = P(Beta(α_A, α_B) > ½), exact. Only discordant pairs
move it, as in McNemar's test.

Repeats of one task are not independent (a task a variant fails tends to fail again), so the
counts are divided by the design effect 1 + (R − 1)·ICC, with the intra-task correlation of
the per-pair difference estimated by one-way ANOVA; with one repeat nothing changes.
bench/calibrate_paired.py measures the error rates this gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import betainc

PRIOR = 1.0  # per cell: uniform Dirichlet
CREDIBLE = 0.95
DRAWS = 20_000


@dataclass(frozen=True)
class PairedComparison:
    """Variant A against B on the same pairs."""

    pairs: int
    pass_rate_a: float
    pass_rate_b: float
    difference: float  # observed pass rate A − B
    ci: tuple[float, float]  # credible interval of the difference
    p_better: float  # P(A's pass rate > B's)
    only_a: int  # pairs A passed and B failed
    only_b: int
    design_effect: float


def design_effect(diff: np.ndarray) -> float:
    """1 + (R − 1)·ICC of a tasks × repeats array of per-pair differences (ICC clipped to
    0..1; 1.0 for one repeat or no variation)."""
    tasks, repeats = diff.shape
    if repeats < 2 or tasks < 2:
        return 1.0
    task_means = diff.mean(axis=1)
    msb = repeats * ((task_means - diff.mean()) ** 2).sum() / (tasks - 1)
    msw = ((diff - task_means[:, None]) ** 2).sum() / (tasks * (repeats - 1))
    denominator = msb + (repeats - 1) * msw
    if denominator <= 0:
        return 1.0
    icc = min(1.0, max(0.0, (msb - msw) / denominator))
    return 1.0 + (repeats - 1) * icc


def compare_paired(a: np.ndarray, b: np.ndarray, *, seed: int = 0,
                   credible: float = CREDIBLE) -> PairedComparison:
    """Compare pass (True) / fail outcomes `a` and `b`, arrays of shape (tasks, repeats)
    aligned pair by pair (same task, same repeat seed)."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.ndim != 2 or a.size == 0:
        raise ValueError(f"outcomes must be two non-empty tasks × repeats arrays of one shape, "
                         f"got {a.shape} and {b.shape}")
    if not 0.0 < credible < 1.0:
        raise ValueError(f"credible must be within (0, 1), got {credible}")
    only_a = int((a & ~b).sum())
    only_b = int((~a & b).sum())
    both = int((a & b).sum())
    neither = a.size - only_a - only_b - both
    deff = design_effect(a.astype(float) - b.astype(float))
    alpha = np.array([both, only_a, only_b, neither], dtype=float) / deff + PRIOR
    # P(p_A-only > p_B-only): their ratio is Beta(α_A, α_B), independent of the other cells.
    p_better = float(1.0 - betainc(alpha[1], alpha[2], 0.5))
    draws = np.random.default_rng(seed).dirichlet(alpha, size=DRAWS)
    tail = (1.0 - credible) / 2.0
    low, high = np.quantile(draws[:, 1] - draws[:, 2], [tail, 1.0 - tail])
    return PairedComparison(
        pairs=int(a.size), pass_rate_a=float(a.mean()), pass_rate_b=float(b.mean()),
        difference=float(a.mean() - b.mean()), ci=(float(low), float(high)),
        p_better=p_better, only_a=only_a, only_b=only_b, design_effect=deff)
