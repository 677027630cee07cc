"""Which agent moved it: per-agent splits add up to the metric's difference."""

from __future__ import annotations

import math

import pytest

from tests.fakes.event_store import make_store
from utils.experiments.agent_split import split_from_sums, split_to_dict
from utils.experiments.user_metrics import connect_event_store, load_all_arm_data
from utils.experiments.verdicts import build_report, report_to_dict


def test_cost_paradox_by_hand():
    # 100 users per arm. Security got cheaper ($0.50 -> $0.20 in total), support answers got
    # dearer ($1.00 -> $1.60): cost per user +$0.003 overall, support is the mover.
    sums = {(0, "security"): 0.50, (1, "security"): 0.20,
            (0, "support"): 1.00, (1, "support"): 1.60}
    split = split_from_sums("ai_cost_per_request", sums, (100, 100))
    assert [a.agent for a in split.agents] == ["support", "security"]
    support, security = split.agents
    assert support.difference == pytest.approx(0.006)
    assert security.difference == pytest.approx(-0.003)
    assert split.difference == pytest.approx(0.003)
    assert not split.of_mean
    out = split_to_dict(split)
    assert out["agents"][0] == {"agent": "support", "control": 0.01, "treatment": 0.016,
                                "difference": 0.006, "unknown_runs": 0}


def test_unequal_arms_missing_agents_and_unknown_runs():
    split = split_from_sums("p95_total_user_latency", {(0, "a"): 300.0, (1, "b"): 50.0},
                            (3, 1), unknown={(1, "a"): 2})
    by = {a.agent: a for a in split.agents}
    assert by["a"].control == 100.0 and by["a"].treatment == 0.0 and by["a"].unknown_runs == 2
    assert by["b"].control == 0.0 and by["b"].treatment == 50.0
    assert split.of_mean  # a percentile metric: the split is of the per-user mean
    empty = split_from_sums("ai_cost_per_request", {(0, "a"): 1.0}, (0, 0))
    assert math.isnan(empty.agents[0].control)
    assert split_to_dict(empty)["agents"][0]["control"] is None


def test_splits_from_a_store_add_up_to_each_mean_difference(tmp_path):
    path = make_store(tmp_path / "e.db", users=600, seed=3)
    report = build_report(path)
    conn = connect_event_store(path)
    data = load_all_arm_data(conn, [r.experiment for r in report.experiments])
    conn.close()
    for r in report.experiments:
        assert r.agent_splits, r.experiment.key
        d = data[r.experiment.key]
        for split in r.agent_splits:
            if split.of_mean:
                continue  # percentiles: the split is of the mean, checked below for cost
            diff = d.arm_values(split.metric, 1).mean() - d.arm_values(split.metric, 0).mean()
            assert split.difference == pytest.approx(diff, rel=1e-9, abs=1e-12), split.metric
        cost = next(s for s in r.agent_splits if s.metric == "ai_cost_per_request")
        assert {a.agent for a in cost.agents} >= {"support"}
    out = report_to_dict(report)["experiments"][0]["agent_split"]
    assert out and all("agents" in s for s in out)
