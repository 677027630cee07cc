"""utils/stats/bayesian.py: the public test vectors of docs/STATISTICS.md, edge cases, calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from utils.stats.bayesian import (
    ConversionStats,
    MeanStats,
    bootstrap_percentile_draws,
    compare_conversion,
    compare_mean,
    compare_percentile,
    sample_size_conversion,
    sample_size_mean,
    srm_p_value,
)


def test_conversion_flat_prior_matches_published_vector():
    c = compare_conversion(ConversionStats(1000, 120), ConversionStats(1000, 150), prior="flat")
    assert round(c.probability_to_beat_control, 6) == 0.975068
    assert round(c.expected_loss, 6) == 0.000144
    # Keeping control is the mirror image: lower-is-better swaps the roles of the arms.
    keep = compare_conversion(ConversionStats(1000, 150), ConversionStats(1000, 120),
                              prior="flat", higher_is_better=False)
    assert round(keep.expected_loss, 6) == 0.000144
    mirrored = compare_conversion(ConversionStats(1000, 150), ConversionStats(1000, 120),
                                  prior="flat")
    assert round(mirrored.expected_loss, 6) == 0.030084
    assert round(mirrored.probability_to_beat_control, 6) == round(1 - 0.975068, 6)


def test_conversion_posterior_means_and_interval_contain_the_lift():
    c = compare_conversion(ConversionStats(1000, 120), ConversionStats(1000, 150), prior="flat")
    assert c.control_value == pytest.approx(121 / 1002)
    assert c.treatment_value == pytest.approx(151 / 1002)
    assert c.ci_low < c.relative_difference < c.ci_high
    assert c.relative_difference == pytest.approx(151 / 121 - 1)


def test_ld_prior_shrinks_treatment_toward_control():
    flat = compare_conversion(ConversionStats(1000, 120), ConversionStats(1000, 150), prior="flat")
    ld = compare_conversion(ConversionStats(1000, 120), ConversionStats(1000, 150))
    assert flat.control_value == ld.control_value
    assert ld.control_value < ld.treatment_value < flat.treatment_value
    assert ld.probability_to_beat_control < flat.probability_to_beat_control


def test_mean_flat_prior_matches_published_vector():
    c = compare_mean(MeanStats(10, 10.0, 0.25), MeanStats(10, 10.5, 1.0), prior="flat")
    assert round(c.probability_to_beat_control, 6) == 0.921350
    lower = compare_mean(MeanStats(10, 10.0, 0.25), MeanStats(10, 10.5, 1.0), prior="flat",
                         higher_is_better=False)
    assert round(lower.probability_to_beat_control, 6) == round(1 - 0.921350, 6)


def test_mean_ld_prior_pulls_treatment_toward_control():
    ld = compare_mean(MeanStats(10, 10.0, 0.25), MeanStats(10, 10.5, 1.0))
    assert 10.0 < ld.treatment_value < 10.5


def test_srm_matches_published_vectors():
    assert round(srm_p_value([1000, 1100], [50, 50]), 6) == 0.029096
    assert round(srm_p_value([5000, 5250], [50, 50]), 6) == 0.013537
    assert srm_p_value([1000, 1000], [50, 50]) == 1.0
    assert srm_p_value([0, 0], [50, 50]) == 1.0


def test_srm_respects_an_uneven_split():
    assert srm_p_value([900, 100], [90, 10]) == 1.0


def test_sample_size_matches_published_vector():
    assert sample_size_conversion(0.20, 0.15) == 2943
    assert sample_size_conversion(0.20, 0.15, two_sided=False) < 2943


def test_sample_size_mean_grows_with_variance():
    assert sample_size_mean(0.5, 0.1) == math.ceil(2 * (1.959964 + 0.841621) ** 2 * 0.25 / 0.01)
    assert sample_size_mean(2.0, 0.1) > sample_size_mean(0.5, 0.1)


def test_sample_size_rejects_impossible_input():
    with pytest.raises(ValueError, match="baseline"):
        sample_size_conversion(0.9, 0.5)


def test_empty_arm_gives_nan_with_reason_not_a_crash():
    c = compare_conversion(ConversionStats(0, 0), ConversionStats(100, 5))
    assert math.isnan(c.probability_to_beat_control)
    assert "no users in the control arm" in c.reason
    m = compare_mean(MeanStats(50, 1.0, 1.0), MeanStats(0, math.nan, math.nan))
    assert "treatment" in m.reason
    p = compare_percentile([], [1.0, 2.0])
    assert "control" in p.reason


def test_zero_conversions_fall_back_to_flat_prior_with_reason():
    c = compare_conversion(ConversionStats(200, 0), ConversionStats(200, 0))
    assert c.probability_to_beat_control == pytest.approx(0.5, abs=1e-9)
    assert "no conversions" in c.reason
    assert "flat prior used" in c.reason
    assert math.isfinite(c.relative_difference)


def test_zero_variance_is_a_defined_comparison():
    same = compare_mean(MeanStats(100, 0.0, 0.0), MeanStats(100, 0.0, 0.0))
    assert same.probability_to_beat_control == 0.5
    assert same.expected_loss == 0.0
    assert "zero variance" in same.reason
    assert "relative difference is undefined" in same.reason
    better = compare_mean(MeanStats(100, 2.0, 0.0), MeanStats(100, 1.0, 0.0),
                          higher_is_better=False)
    assert better.probability_to_beat_control == 1.0
    assert better.relative_difference == pytest.approx(-0.5)


def test_percentile_bootstrap_is_seeded_and_deterministic():
    rng = np.random.default_rng(1)
    c, t = rng.gamma(2, 1000, 300), rng.gamma(2, 1100, 300)
    a = compare_percentile(c, t, seed=7)
    b = compare_percentile(c, t, seed=7)
    assert a == b
    assert a.control_value == pytest.approx(np.quantile(c, 0.95))
    assert a.ci_low < a.relative_difference < a.ci_high
    assert a.probability_to_beat_control < 0.5  # treatment is slower, lower is better


def test_percentile_draws_match_a_brute_force_bootstrap():
    x = np.random.default_rng(0).gamma(2, 1000, 40)
    fast = bootstrap_percentile_draws(x, 0.95, 100_000, np.random.default_rng(1))
    rng = np.random.default_rng(2)
    slow = np.quantile(x[rng.integers(0, x.size, (100_000, x.size))], 0.95, axis=1)
    assert fast.mean() == pytest.approx(slow.mean(), rel=0.003)
    assert fast.std() == pytest.approx(slow.std(), rel=0.02)


def test_probability_relative_at_most_uses_the_posterior():
    c = compare_mean(MeanStats(1000, 1.0, 1.0), MeanStats(1000, 1.10, 1.0), prior="flat")
    assert c.probability_relative_at_most(0.10) == pytest.approx(0.5, abs=0.01)
    assert c.probability_relative_at_most(0.30) > 0.99


def test_aa_calibration_flat_prior_false_positive_rate_is_ten_percent():
    rng = np.random.default_rng(20240601)
    n, p, runs = 1000, 0.3, 2000
    hits = 0
    for x0, x1 in rng.binomial(n, p, size=(runs, 2)):
        c = compare_conversion(ConversionStats(n, int(x0)), ConversionStats(n, int(x1)),
                               prior="flat")
        hits += c.probability_to_beat_control >= 0.90
    assert 0.08 <= hits / runs <= 0.12
