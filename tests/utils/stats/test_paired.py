"""Paired (Bayesian McNemar) comparison of pass/fail outcomes."""

from __future__ import annotations

import numpy as np
import pytest

from utils.stats.paired import compare_paired, design_effect


def test_identical_outcomes_are_a_coin_flip_with_an_interval_around_zero():
    a = np.array([[True], [False], [True], [True]] * 15)
    result = compare_paired(a, a.copy())
    assert result.p_better == pytest.approx(0.5)
    assert result.difference == 0.0 and result.only_a == result.only_b == 0
    assert result.ci[0] < 0 < result.ci[1]


def test_only_discordant_pairs_move_the_verdict():
    base = np.zeros((60, 1), dtype=bool)
    better = base.copy()
    better[:10] = True  # 10 tasks flipped to pass, none to fail
    result = compare_paired(better, base)
    assert result.only_a == 10 and result.only_b == 0
    assert result.difference == pytest.approx(10 / 60)
    assert result.p_better > 0.99 and result.ci[0] > 0
    # P(better) is exact: P(Beta(11, 1) > 1/2) = 1 - 0.5**11
    assert result.p_better == pytest.approx(1 - 0.5 ** 11)
    swapped = compare_paired(base, better)
    assert swapped.p_better == pytest.approx(1 - result.p_better)
    assert swapped.ci[0] == pytest.approx(-result.ci[1], abs=0.01)


def test_balanced_flips_are_not_a_difference():
    a = np.zeros((40, 1), dtype=bool)
    b = np.zeros((40, 1), dtype=bool)
    a[:8], b[8:16] = True, True
    result = compare_paired(a, b)
    assert result.p_better == pytest.approx(0.5) and result.ci[0] < 0 < result.ci[1]


def test_copied_repeats_add_no_certainty():
    rng = np.random.default_rng(3)
    a1 = rng.random((50, 1)) < 0.7
    b1 = rng.random((50, 1)) < 0.6
    once = compare_paired(a1, b1)
    thrice = compare_paired(np.repeat(a1, 3, axis=1), np.repeat(b1, 3, axis=1))
    assert thrice.design_effect == pytest.approx(3.0)
    assert thrice.p_better == pytest.approx(once.p_better, abs=1e-9)


def test_design_effect_is_one_without_repeats_or_correlation():
    assert design_effect(np.ones((10, 1))) == 1.0
    assert design_effect(np.zeros((10, 4))) == 1.0
    assert 1.0 <= design_effect(np.random.default_rng(0).integers(-1, 2, (30, 3))) < 1.5


@pytest.mark.parametrize(("a", "b"), [
    (np.zeros((3, 2)), np.zeros((3, 1))), (np.zeros(3), np.zeros(3)), (np.zeros((0, 2)),
                                                                         np.zeros((0, 2))),
])
def test_misaligned_outcomes_are_refused(a, b):
    with pytest.raises(ValueError, match="tasks × repeats"):
        compare_paired(a, b)
