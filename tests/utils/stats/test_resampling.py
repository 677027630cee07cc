"""Bootstrap resampling on inputs small enough to check by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from utils.stats.resampling import bootstrap_mean_draws, cost_value_ratio, interaction_2x2


def test_constant_values_resample_to_their_mean() -> None:
    draws = bootstrap_mean_draws(np.full(7, 2.5), 300, np.random.default_rng(0))
    assert draws.shape == (300,) and np.all(draws == 2.5)


def test_conversions_resample_as_binomial_shares() -> None:
    x = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0], dtype=float)  # 2 of 10
    draws = bootstrap_mean_draws(x, 20_000, np.random.default_rng(1))
    assert set(np.round(draws * 10, 9)) <= set(range(11))  # multiples of 1/n
    assert draws.mean() == pytest.approx(0.2, abs=0.005)
    assert draws.var() == pytest.approx(0.2 * 0.8 / 10, rel=0.05)


def test_columns_are_resampled_jointly_by_user() -> None:
    x = np.arange(1.0, 9.0)
    draws = bootstrap_mean_draws(np.column_stack([x, 3 * x]), 500, np.random.default_rng(2))
    assert np.allclose(draws[:, 1], 3 * draws[:, 0])  # same users in both columns


def _ratio(tv: float, tc: float, bar: float):
    ones = np.ones(50)
    return cost_value_ratio(2.0 * ones, 1.0 * ones, tv * ones, tc * ones, bar=bar)


def test_cost_value_ratio_is_lift_over_cost_increase() -> None:
    r = _ratio(3.0, 1.5, bar=0.25)  # +50% value for +50% cost
    assert (r.value_lift, r.cost_increase, r.ratio) == pytest.approx((0.5, 0.5, 1.0))
    assert r.probability_at_least == 1.0
    assert _ratio(3.0, 1.5, bar=2.0).probability_at_least == 0.0


def test_cheaper_and_no_worse_passes_with_an_infinite_ratio() -> None:
    r = _ratio(2.0, 0.5, bar=0.25)
    assert r.ratio == math.inf and r.probability_at_least == 1.0
    assert _ratio(1.0, 0.5, bar=0.25).ratio == -math.inf  # cheaper but worse


def test_degenerate_inputs_give_a_reason_not_an_exception() -> None:
    empty = cost_value_ratio(np.ones(3), np.ones(3), np.array([]), np.array([]), bar=0.25)
    assert empty.reason == "no users in the treatment arm" and math.isnan(empty.ratio)
    zero = cost_value_ratio(np.ones(3), np.zeros(3), np.ones(3), np.ones(3), bar=0.25)
    assert "control cost is 0" in zero.reason
    with pytest.raises(ValueError, match="one entry per user"):
        cost_value_ratio(np.ones(3), np.ones(2), np.ones(3), np.ones(3), bar=0.25)


def test_interaction_is_the_difference_of_differences() -> None:
    cells = {(0, 0): np.full(5, 1.0), (0, 1): np.full(5, 2.0), (1, 0): np.full(5, 3.0),
             (1, 1): np.full(5, 6.0)}
    result = interaction_2x2(cells, resamples=200)
    assert result.interaction == 2.0 and (result.ci_low, result.ci_high) == (2.0, 2.0)
    assert result.users == ((5, 5), (5, 5))
    missing = interaction_2x2({k: v for k, v in cells.items() if k != (1, 1)})
    assert missing.reason == "a cell of the 2x2 has no users" and math.isnan(missing.interaction)
