"""The verdict's plain sentence: what changed, how sure, what to do."""

from __future__ import annotations

import numpy as np
import pytest

from utils.experiments.definitions import find_experiment, load_experiments
from utils.experiments.headline import headline, how_sure
from utils.experiments.user_metrics import ArmData
from utils.experiments.verdicts import analyze_experiment

PREM = find_experiment(load_experiments(), "premium-model-value")


def data(n: int, feedback: tuple[int, int], cost: tuple[float, float]) -> ArmData:
    arm = np.tile(np.array([0, 1], np.int8), n)
    values = {k: np.full(2 * n, 5.0) for k in PREM.metrics}
    fb = np.zeros(2 * n)
    fb[np.flatnonzero(arm == 0)[:feedback[0]]] = 1
    fb[np.flatnonzero(arm == 1)[:feedback[1]]] = 1
    values["positive_feedback_rate"] = fb
    rng = np.random.default_rng(1)
    values["ai_cost_per_request"] = np.where(arm == 1, cost[1], cost[0]) * rng.gamma(8, 1 / 8, 2 * n)
    return ArmData([f"u{i}" for i in range(2 * n)], arm, np.arange(2 * n, dtype=float), values)


@pytest.mark.parametrize("p, words", [(0.995, "almost certainly"), (0.004, "almost certainly"),
                                      (0.93, "very likely"), (0.8, "probably"),
                                      (0.6, "not clearly"), (float("nan"), "cannot be told")])
def test_how_sure_in_words(p, words):
    assert how_sure(p).startswith(words)


def test_ship_keep_and_wait_read_as_sentences_without_statistics():
    ship = analyze_experiment(PREM, data(1000, (300, 420), (0.01, 0.015)))
    assert ship.verdict.outcome == "SHIP"
    text = headline(ship)
    assert text.startswith("Switch to claude-opus-treatment")
    assert "positive feedback rate is almost certainly higher" in text and "(+37.8%)" in text  # posterior means
    keep = analyze_experiment(PREM, data(1000, (300, 200), (0.01, 0.015)))
    assert keep.verdict.outcome == "KEEP"
    assert headline(keep).startswith("Stay with other-paid: positive feedback rate is")
    assert "would not change" in headline(keep)
    wait = analyze_experiment(PREM, data(300, (90, 100), (0.01, 0.011)))
    assert wait.verdict.outcome == "NEED_MORE_DATA"
    assert "300 of the planned 963 users per arm so far (31%)" in headline(wait)
    for r in (ship, keep, wait):
        assert "P(" not in headline(r) and "posterior" not in headline(r)
    few = analyze_experiment(PREM, data(50, (10, 12), (0.01, 0.01)))
    assert "too few users" in headline(few)
