"""utils/stats/intervals.py: draw-based relative intervals and exact posterior probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from utils.stats.bayesian import (
    ConversionStats,
    MeanStats,
    compare_conversion,
    compare_mean,
    compare_percentile,
)
from utils.stats.intervals import (
    posterior_draws,
    probability_difference_at_most,
    probability_ratio_at_most,
    relative_interval,
)


def test_small_counts_keep_the_delta_method_fields_and_add_a_possible_interval():
    c = compare_conversion(ConversionStats(50, 2), ConversionStats(50, 0), prior="flat")
    # LaunchDarkly's delta method, kept as published: it leaves the possible range.
    assert c.ci_low == pytest.approx(-1.2847, abs=1e-4)
    assert c.ci_high == pytest.approx(-0.0487, abs=1e-4)
    # From posterior draws: a ratio of two rates is never below -100%, and 0/50 against
    # 2/50 does not rule out an increase.
    assert -1.0 <= c.interval_low == pytest.approx(-0.98, abs=0.01)
    assert c.interval_high == pytest.approx(0.67, abs=0.03)


def test_an_arm_with_no_conversions_gets_an_interval_inside_the_range():
    c = compare_conversion(ConversionStats(50, 0), ConversionStats(50, 2))
    assert c.ci_low < -1.0  # the delta method's impossible bound
    assert -1.0 <= c.interval_low < 0.0 < c.interval_high


def test_mean_draws_are_truncated_at_the_lower_bound():
    # PII per user: treatment almost always 0; a normal posterior would put mass below 0.
    c = compare_mean(MeanStats(100, 0.5, 0.5), MeanStats(100, 0.01, 0.01),
                     higher_is_better=False, lower_bound=0.0)
    assert -1.0 <= c.interval_low < c.interval_high < 0.0
    loose = compare_mean(MeanStats(30, 0.05, 0.3), MeanStats(30, 0.01, 0.03),
                         higher_is_better=False)
    bounded = compare_mean(MeanStats(30, 0.05, 0.3), MeanStats(30, 0.01, 0.03),
                           higher_is_better=False, lower_bound=0.0)
    assert bounded.interval_low >= -1.0
    assert bounded.ci_low == loose.ci_low  # the published fields do not move


def test_probability_ratio_is_exact_for_beta_posteriors():
    c = compare_conversion(ConversionStats(1000, 120), ConversionStats(1000, 150), prior="flat")
    # P(t <= c) is 1 - P(beat), the published vector (docs/STATISTICS.md §8).
    assert c.probability_ratio_at_most(1.0) == pytest.approx(1 - 0.975068, abs=1e-6)
    # Against an independent Monte Carlo of the same posteriors.
    rng = np.random.default_rng(7)
    pc, pt = rng.beta(121, 881, 400_000), rng.beta(151, 851, 400_000)
    for k in (0.95, 1.1, 1.25, 1.4):
        assert c.probability_ratio_at_most(k) == pytest.approx(np.mean(pt <= k * pc), abs=0.003)
    assert c.probability_difference_at_most(0.02) == pytest.approx(
        np.mean(pt - pc <= 0.02), abs=0.003)


def test_probability_ratio_is_exact_for_normal_posteriors():
    c = compare_mean(MeanStats(10, 10.0, 0.25), MeanStats(10, 10.5, 1.0), prior="flat")
    assert c.probability_ratio_at_most(1.0) == pytest.approx(1 - 0.921350, abs=1e-6)
    assert c.probability_difference_at_most(0.5) == pytest.approx(0.5)
    # P(t <= 1.1 c) = Φ((11 - 10.5) / √(0.1 + 1.21·0.025)).
    from scipy.stats import norm
    assert c.probability_ratio_at_most(1.1) == pytest.approx(
        norm.cdf(0.5 / np.sqrt(0.1 + 1.21 * 0.025)))


def test_percentile_probabilities_come_from_the_bootstrap_draws():
    control = np.full(150, 1000.0)
    slower = np.full(150, 3500.0)
    c = compare_percentile(control, slower)
    assert c.probability_difference_at_most(3000) == 1.0  # +2.5 s every draw
    assert c.probability_difference_at_most(2000) == 0.0
    assert c.interval_low == c.ci_low == pytest.approx(2.5)


def test_degenerate_posteriors_give_defined_answers():
    assert np.isnan(probability_ratio_at_most(None, 1.0))
    assert np.isnan(probability_difference_at_most(("normal", (1, 0), (1, 0)), float("nan")))
    assert probability_ratio_at_most(("normal", (1.0, 0.0), (1.0, 0.0)), 1.0) == 1.0
    assert probability_ratio_at_most(("normal", (1.0, 0.0), (2.0, 0.0)), 1.0) == 0.0
    lo, hi, why = relative_interval(np.zeros(100), np.ones(100), 0.9)
    assert np.isnan(lo) and np.isnan(hi) and "control is 0" in why
    with pytest.raises(ValueError, match="unknown posterior family"):
        posterior_draws(("gamma", (1, 1), (1, 1)), np.random.default_rng(0))
    # Entirely below the bound: the draws sit at the bound, not below it.
    c, t = posterior_draws(("normal", (-5.0, 0.1), (1.0, 0.1)), np.random.default_rng(0),
                           lower=0.0)
    assert c.min() >= 0.0 and t.min() >= 0.0
