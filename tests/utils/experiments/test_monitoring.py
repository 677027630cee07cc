"""Safe to watch: planned horizons, interim looks, the early stop and the frozen final look."""

from __future__ import annotations

import numpy as np
import pytest

from utils.experiments.decision_rules import CriterionResult
from utils.experiments.definitions import (
    ExperimentConfigError,
    find_experiment,
    load_experiments,
    parse_experiments,
)
from utils.experiments.monitoring import (
    Look,
    decision_sample,
    first_arrivals,
    look_to_dict,
    plan_look,
    planned_horizon,
)
from utils.experiments.planning import estimate_users_needed
from utils.experiments.user_metrics import ArmData
from utils.experiments.verdicts import analyze_experiment, decide, experiment_to_dict

SEC = find_experiment(load_experiments(), "security-level")
PREM = find_experiment(load_experiments(), "premium-model-value")


def with_plan(experiment, **plan):
    raw = experiment.model_dump()
    raw["monitoring"] = {"method": "planned_horizon", "metric": "positive_feedback_rate",
                         "baseline": 0.30, "relative_effect": 0.20} | plan
    return parse_experiments({"experiments": [raw]})[0]


def test_horizon_is_the_planner_at_the_declared_effect():
    # docs/STATISTICS.md §8: baseline 0.20, lift 15%, alpha 0.05, power 0.8 -> 2,943 per arm.
    assert planned_horizon(with_plan(PREM, baseline=0.20, relative_effect=0.15)) == 2943
    assert planned_horizon(PREM) == 963 and planned_horizon(SEC) == 14437
    assert planned_horizon(PREM.model_copy(update={"monitoring": None})) is None


def test_look_kind_progress_and_labels():
    interim = plan_look(PREM, {PREM.control: 500, PREM.treatment: 480})
    assert interim.kind == "interim" and interim.users_per_arm == 480
    assert interim.progress == pytest.approx(480 / 963)
    assert "interim look (480 of 963 users per arm, 50%)" in interim.label
    final = plan_look(PREM, {PREM.control: 963, PREM.treatment: 2000})
    assert final.kind == "final" and final.progress == 1.0
    single = plan_look(PREM.model_copy(update={"monitoring": None}),
                       {PREM.control: 5, PREM.treatment: 5})
    assert single.kind == "single" and single.progress is None and "single look" in single.label
    assert look_to_dict(interim)["look"] == "interim"
    assert look_to_dict(interim)["horizon_per_arm"] == 963


@pytest.mark.parametrize("plan, words", [
    ({"early_stop_probability": 0.9}, "must exceed every criterion's probability"),
    ({"metric": "ai_cost_per_request"}, "must be a conversion"),
    ({"relative_effect": 0.0}, "must be non-zero"),
    ({"baseline": 1.5}, "baseline"),
    ({"method": "peeking"}, "method"),
])
def test_bad_plans_are_refused_naming_the_field(plan, words):
    with pytest.raises(ExperimentConfigError, match=words):
        with_plan(PREM, **plan)


def res(p, passed=True, futile=False):
    return CriterionResult("probability_to_beat", "m", "d", p, 0.9, passed, ">=",
                           probability_met=p, futile=futile)


def test_interim_ships_only_past_the_early_stop_bar():
    users = {PREM.control: 300, PREM.treatment: 300}
    look = plan_look(PREM, users)
    # PREM: lift (no probability bar), P(beat) >= 0.9, P(ratio) >= 0.9.
    waiting = decide(PREM, users, 1.0, [res(0.5), res(0.95), res(0.999)], look)
    assert waiting.outcome == "NEED_MORE_DATA" and "interim look" in waiting.summary
    assert "0.950" in waiting.summary and "0.99" in waiting.summary
    early = decide(PREM, users, 1.0, [res(0.5), res(0.995), res(0.999)], look)
    assert early.outcome == "SHIP" and "overwhelming evidence" in early.summary
    # The same probabilities at the final look ship on the ordinary bars.
    final = plan_look(PREM, {PREM.control: 963, PREM.treatment: 963})
    assert decide(PREM, users, 1.0, [res(0.5), res(0.95), res(0.999)], final).outcome == "SHIP"


def test_interim_keeps_only_on_futility_and_otherwise_waits_for_the_final_look():
    users = {PREM.control: 300, PREM.treatment: 300}
    look = plan_look(PREM, users)
    failing = [res(0.5), res(0.6, passed=False), res(0.95)]
    assert PREM.decision.otherwise == "keep_control"
    assert decide(PREM, users, 1.0, failing, look).outcome == "NEED_MORE_DATA"
    final = plan_look(PREM, {PREM.control: 963, PREM.treatment: 963})
    assert decide(PREM, users, 1.0, failing, final).outcome == "KEEP"
    futile = [res(0.5), res(0.01, passed=False, futile=True), res(0.95)]
    kept = decide(PREM, users, 1.0, futile, look)
    assert kept.outcome == "KEEP" and "decisively failed" in kept.summary


def arms(n_control: int, n_treatment: int, feedback: tuple[float, float], seed=0) -> ArmData:
    """Users arriving interleaved, with the premium experiment's metrics."""
    rng = np.random.default_rng(seed)
    arm = np.r_[np.zeros(n_control, np.int8), np.ones(n_treatment, np.int8)]
    rng.shuffle(arm)
    n = arm.size
    p = np.where(arm == 1, feedback[1], feedback[0])
    values = {k: rng.gamma(8, 1.0, n) for k in PREM.metrics}
    values["positive_feedback_rate"] = (rng.random(n) < p) * 1.0
    values["negative_feedback_rate"] = (rng.random(n) < 0.1) * 1.0
    ts = rng.permutation(n).astype(float)  # arrival order is not the row order
    return ArmData([f"u{i}" for i in range(n)], arm, ts, values)


def test_first_arrivals_takes_each_arm_by_first_exposure():
    data = ArmData(["a", "b", "c", "d", "e"], np.array([0, 1, 0, 1, 0], np.int8),
                   np.array([5.0, 1.0, 2.0, 3.0, 0.0]),
                   {"m": np.array([10.0, 11.0, 12.0, 13.0, 14.0])},
                   failed_runs=np.array([1, 0, 2, 0, 3]))
    first = first_arrivals(data, (2, 1))
    assert first.users == ["b", "c", "e"]  # control e (t=0), c (t=2); treatment b (t=1)
    assert first.values["m"].tolist() == [11.0, 12.0, 14.0]
    assert first.failed_runs.tolist() == [0, 2, 3]


def test_past_the_horizon_the_planned_sample_decides_and_later_looks_agree():
    data = arms(1500, 1500, (0.30, 0.42))
    sample, look = decision_sample(PREM, data)
    assert look.kind == "final" and look.users_per_arm == 963
    assert look.later_users == 3000 - 2 * 963
    assert [int(np.count_nonzero(sample.arm == a)) for a in (0, 1)] == [963, 963]
    cutoff = np.sort(data.first_ts)[:1]  # the first arrival is always in the sample
    assert cutoff[0] in sample.first_ts
    at_horizon = first_arrivals(data, (963, 963))
    later = analyze_experiment(PREM, data)
    exact = analyze_experiment(PREM, at_horizon)
    assert later.verdict.outcome == exact.verdict.outcome
    assert later.verdict.summary == exact.verdict.summary
    assert later.users == exact.users == {PREM.control: 963, PREM.treatment: 963}
    out = experiment_to_dict(later)["monitoring"]
    assert out["look"] == "final" and out["later_users"] == 1074
    assert "not in it" in out["label"]


def test_sample_ratio_reads_every_user_even_past_the_horizon():
    # 2,500 vs 1,000: the decision sample is balanced, the assignment is not.
    r = analyze_experiment(PREM, arms(2500, 1000, (0.3, 0.3)))
    assert r.verdict.outcome == "INVALID"


def test_single_look_without_a_plan_uses_every_user():
    bare = PREM.model_copy(update={"monitoring": None})
    data = arms(1200, 1200, (0.3, 0.3))
    sample, look = decision_sample(bare, data)
    assert sample is data and look == Look("single_look", 1200)


def test_users_still_needed_before_the_horizon_is_the_horizon():
    # An interim NEED MORE DATA: the plan, not a per-metric guess, says how far there is to go.
    # Seed 0: a criterion still open; seed 1 of a larger lift: every criterion passes at its
    # bar but not at the early-stop bar, so nothing is open and the horizon still decides.
    for feedback, seed in (((0.30, 0.36), 0), ((0.30, 0.38), 1)):
        r = analyze_experiment(PREM, arms(400, 400, feedback, seed=seed))
        assert r.look.kind == "interim" and r.verdict.outcome == "NEED_MORE_DATA"
        assert r.users_needed["per_arm"] == 963
        assert r.users_needed["additional"] == 2 * (963 - 400)
        assert "planned horizon is 963 users per arm" in r.users_needed["note"]
    # The same data and criteria without a horizon: the per-metric estimate, unchanged.
    data = arms(400, 400, (0.30, 0.36), seed=0)
    planned = analyze_experiment(PREM, data)
    results = {m.key: m for m in planned.metrics}
    bare = estimate_users_needed(PREM, results, data, planned.users, planned.criteria)
    assert bare["by_metric"] == planned.users_needed["by_metric"]
    assert bare["per_arm"] == max(100, *(n for n in bare["by_metric"].values() if n))
    assert bare["per_arm"] != 963 and "planned horizon" not in bare["note"]
