"""utils/experiments/verdicts.py on small synthetic event stores with planted effects."""

from __future__ import annotations

import math
import sqlite3

import pytest

from tests.fakes.event_store import EVENT_COLUMNS, EXPOSURE_COLUMNS, make_store
from utils.experiments.definitions import load_experiments, parse_experiments
from utils.experiments.verdicts import EventStoreError, build_report, report_to_dict
from utils.telemetry import metrics as mk


def by_key(report):
    return {r.experiment.key: r for r in report.experiments}


def test_missing_store_gives_zero_users_and_need_more_data(tmp_path):
    report = build_report(tmp_path / "nope.db")
    for r in report.experiments:
        assert sum(r.users.values()) == 0
        assert r.verdict.outcome == "NEED_MORE_DATA"
        assert r.users_needed["per_arm"] >= 100
    assert "no event store" in report.notes[0]
    assert report.simulated is False


def test_store_without_the_tables_is_a_clear_error(tmp_path):
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE x(a)").connection.close()
    with pytest.raises(EventStoreError, match="exposures"):
        build_report(path)


def test_planted_premium_effect_ships_and_security_ships(tmp_path):
    # Opus: far more thumbs-up and cheaper; strict security: less PII, same feedback.
    store = make_store(tmp_path / "e.db", feedback=(0.25, 0.45), cost=(0.012, 0.008),
                       pii=(0.8, 0.1), users=1600)
    report = build_report(store)
    r = by_key(report)
    prem = r["premium-model-value"]
    assert prem.verdict.outcome == "SHIP", prem.verdict.summary
    assert prem.verdict.variation == "claude-opus-treatment"
    assert all(c.passed for c in prem.criteria)
    assert report.simulated is True


def test_non_inferior_strict_security_ships(tmp_path):
    # Same feedback in both security arms (non-inferior by a wide margin), PII far lower.
    store = make_store(tmp_path / "e.db", feedback=(0.85, 0.85), pii=(0.8, 0.1), users=1600)
    sec = by_key(build_report(store))["security-level"]
    assert sec.verdict.outcome == "SHIP", sec.verdict.summary
    assert sec.verdict.variation == "strict-security"
    feedback = sec.criteria[0]
    assert feedback.kind == "non_inferiority_margin"
    assert feedback.observed >= 0.9 and feedback.probability_met == feedback.observed


def test_no_effect_does_not_ship(tmp_path):
    store = make_store(tmp_path / "e.db", users=1600, seed=3)
    r = by_key(build_report(store))
    assert r["premium-model-value"].verdict.outcome == "KEEP"
    assert r["premium-model-value"].verdict.variation == "other-paid"
    sec = r["security-level"]
    assert sec.verdict.outcome == "NEED_MORE_DATA"  # PII is not lower: criterion fails
    assert sec.users_needed is not None and sec.users_needed["per_arm"] > 100


def test_users_per_arm_and_per_user_aggregation_are_exact(tmp_path):
    store = make_store(tmp_path / "e.db", users=300, seed=5)
    report = build_report(store)
    conn = sqlite3.connect(store)
    arms = dict(conn.execute(
        "SELECT variation_key, COUNT(DISTINCT user_key) FROM exposures "
        "WHERE config_key='support-agent' GROUP BY variation_key").fetchall())
    prem = by_key(report)["premium-model-value"]
    assert prem.users == arms
    total_cost = conn.execute(
        "SELECT SUM(value) FROM events WHERE event_key=? AND user_key IN (SELECT user_key FROM "
        "exposures WHERE variation_key='other-paid')", (mk.COST_PER_REQUEST,)).fetchone()[0]
    cost = prem.metric("ai_cost_per_request").comparison
    assert cost.control_value == pytest.approx(total_cost / arms["other-paid"])


def test_user_in_both_arms_is_excluded_and_counted(tmp_path):
    store = make_store(tmp_path / "e.db", users=200)
    conn = sqlite3.connect(store)
    conn.execute(f"INSERT INTO exposures ({EXPOSURE_COLUMNS}) VALUES "
                 "(5000, 'x', 'user-00001', 'support-agent', 'other-paid', 1, '{}'), "
                 "(5001, 'y', 'user-00001', 'support-agent', 'claude-opus-treatment', 1, '{}')")
    conn.commit()
    prem = by_key(build_report(store))["premium-model-value"]
    assert prem.excluded_users == 1
    assert sum(prem.users.values()) == 199


def test_events_before_first_exposure_do_not_count(tmp_path):
    store = make_store(tmp_path / "e.db", users=150, simulated=0)
    conn = sqlite3.connect(store)
    conn.execute(f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (1.0, 'old', 'user-00000', ?, "
                 "100.0, 'support-agent', 'other-paid', 'support', 'm', 'p', 0)",
                 (mk.COST_PER_REQUEST,))
    conn.commit()
    before = by_key(build_report(store))["premium-model-value"]
    assert max(before.metric("ai_cost_per_request").comparison.control_value,
               before.metric("ai_cost_per_request").comparison.treatment_value) < 1.0
    assert build_report(store).simulated is False


def test_sample_ratio_mismatch_makes_the_verdict_invalid(tmp_path):
    store = make_store(tmp_path / "e.db", users=1200, split=0.40)
    r = by_key(build_report(store))
    for res in r.values():
        assert res.srm_p_value < 0.001
        assert res.verdict.outcome == "INVALID"
        assert "sample ratio mismatch" in res.verdict.summary


def test_small_arms_need_more_data_with_an_estimate(tmp_path):
    store = make_store(tmp_path / "e.db", users=120)
    prem = by_key(build_report(store))["premium-model-value"]
    assert prem.verdict.outcome == "NEED_MORE_DATA"
    assert prem.users_needed["additional"] > 0
    assert "positive_feedback_rate" in prem.users_needed["by_metric"]


def test_one_empty_arm_is_a_defined_result(tmp_path):
    store = make_store(tmp_path / "e.db", users=200, split=1.0)  # everyone in control
    prem = by_key(build_report(store))["premium-model-value"]
    assert prem.users["claude-opus-treatment"] == 0
    assert prem.verdict.outcome in ("INVALID", "NEED_MORE_DATA")
    assert all(not c.passed for c in prem.criteria)
    assert all(c.detail for c in prem.criteria)
    report_to_dict(build_report(store))  # serialises without NaN trouble


def test_cost_decrease_with_value_gain_passes_the_ratio(tmp_path):
    store = make_store(tmp_path / "e.db", users=1600, feedback=(0.25, 0.40),
                       cost=(0.012, 0.006))
    prem = by_key(build_report(store))["premium-model-value"]
    ratio = next(c for c in prem.criteria if c.kind == "cost_value_ratio_at_least")
    assert ratio.passed and ratio.observed == math.inf
    assert "cost fell" in ratio.detail


def test_costlier_treatment_worth_its_cost_ships(tmp_path):
    # The premium rule prices extra cost: +60% value for ~+190% cost is a ratio above 0.25.
    store = make_store(tmp_path / "e.db", users=1600, feedback=(0.25, 0.40),
                       cost=(0.010, 0.030))
    prem = by_key(build_report(store))["premium-model-value"]
    ratio = next(c for c in prem.criteria if c.kind == "cost_value_ratio_at_least")
    assert 0.25 < ratio.observed < 1
    assert ratio.probability_met >= 0.9 and ratio.passed
    assert prem.verdict.outcome == "SHIP", prem.verdict.summary


def test_costlier_treatment_not_worth_its_cost_is_kept(tmp_path):
    # ~+60% value for ~+900% cost: a ratio near 0.07, far below 0.25.
    store = make_store(tmp_path / "e.db", users=1600, feedback=(0.25, 0.40),
                       cost=(0.010, 0.100))
    prem = by_key(build_report(store))["premium-model-value"]
    ratio = next(c for c in prem.criteria if c.kind == "cost_value_ratio_at_least")
    assert 0 < ratio.observed < 0.25
    assert not ratio.passed and ratio.probability_met < 0.05
    assert prem.verdict.outcome == "KEEP"
    assert "decisively failed" in prem.verdict.summary


def test_interaction_is_reported_for_shared_users(tmp_path):
    store = make_store(tmp_path / "e.db", users=800)
    report = build_report(store)
    data = report_to_dict(report)
    inter = data["interaction"]
    assert inter["metric"] == "positive_feedback_rate"
    assert sum(c["users"] for c in inter["cells"]) == 800
    assert inter["ci_low"] < inter["interaction"] < inter["ci_high"]


def test_report_is_deterministic(tmp_path):
    store = make_store(tmp_path / "e.db", users=400)
    a, b = report_to_dict(build_report(store)), report_to_dict(build_report(store))
    a.pop("generated_at"), b.pop("generated_at")
    assert a == b


def test_only_the_requested_experiment_is_analysed(tmp_path):
    report = build_report(tmp_path / "none.db", experiment_key="security-level")
    assert [r.experiment.key for r in report.experiments] == ["security-level"]
    with pytest.raises(KeyError, match="premium-model-value"):
        build_report(tmp_path / "none.db", experiment_key="nope")


def test_json_schema_has_the_documented_fields(tmp_path):
    store = make_store(tmp_path / "e.db", users=300)
    data = report_to_dict(build_report(store))
    assert set(data) >= {"simulated", "experiments"}
    exp = data["experiments"][0]
    assert set(exp) >= {"key", "name", "control", "treatment", "users", "srm_p_value",
                        "metrics", "criteria", "verdict", "users_needed"}
    assert set(exp["metrics"][0]) >= {"key", "control_value", "treatment_value",
                                      "relative_difference", "ci_low", "ci_high",
                                      "probability_to_beat_control", "expected_loss"}
    assert set(exp["criteria"][0]) >= {"observed", "threshold", "passed"}
    assert set(exp["verdict"]) == {"outcome", "variation", "summary", "headline"}


def test_custom_experiment_definitions_can_be_passed(tmp_path):
    raw = {"experiments": [load_experiments()[0].model_dump(exclude={"decision"}) | {
        "decision": {"ship_if_all": [{"metric": "positive_feedback_rate",
                                      "probability_to_beat": 0.5}],
                     "otherwise": "keep_control"}}]}
    for c in raw["experiments"]:
        c.pop("kind", None)
    exps = parse_experiments(raw)
    report = build_report(make_store(tmp_path / "e.db", users=300), exps)
    assert len(report.experiments) == 1


def test_unpriced_model_makes_cost_unknown_not_free(tmp_path):
    # A premium model with no price row: its runs' cost is NULL. Summing what is left would
    # give cost -90% and SHIP; unknown cost must block the cost criterion instead.
    store = make_store(tmp_path / "e.db", users=1600, feedback=(0.25, 0.45),
                       unpriced_model=(None, "claude-opus-9"))
    r = by_key(build_report(store))
    prem = r["premium-model-value"]
    cost = prem.metric("ai_cost_per_request")
    assert cost.unknown_users[0] == 0 and cost.unknown_users[1] == prem.users[
        "claude-opus-treatment"]
    assert math.isnan(cost.comparison.treatment_value)
    # 800 per arm is an interim look: the only failing criterion is blocked, so the verdict
    # waits and says more users will not help until the model is priced.
    assert prem.look.kind == "interim"
    assert prem.verdict.outcome == "NEED_MORE_DATA"
    assert "will not help" in prem.verdict.summary
    assert "claude-opus-9" in prem.verdict.summary
    conn = sqlite3.connect(store)
    runs = conn.execute("SELECT COUNT(*) FROM events WHERE event_key = ? AND value IS NULL",
                        (mk.COST_PER_REQUEST,)).fetchone()[0]
    assert prem.unpriced_models == [
        {"variation": "claude-opus-treatment", "model": "claude-opus-9", "runs": runs}]
    # Security's users ran the unpriced support model in both of its arms: its cost
    # criterion is blocked too, and more users cannot unblock it.
    sec = r["security-level"]
    blocked = next(c for c in sec.criteria if c.kind == "relative_increase_at_most")
    assert not blocked.passed and "claude-opus-9" in blocked.blocked
    data = report_to_dict(build_report(store))["experiments"][1]
    assert data["unpriced_models"][0]["model"] == "claude-opus-9"
    assert "PRICING_OVERRIDES_PATH" in data["pricing_hint"]


def test_failed_runs_stay_in_and_are_counted_per_arm(tmp_path):
    store = make_store(tmp_path / "e.db", users=600, failure_rate=(0.05, 0.30))
    prem = by_key(build_report(store))["premium-model-value"]
    conn = sqlite3.connect(store)
    expected = dict(conn.execute(
        "SELECT variation_key, COUNT(*) FROM events WHERE event_key = ? GROUP BY variation_key",
        (mk.GENERATION_ERROR,)).fetchall())
    assert prem.failed_runs == expected
    assert prem.failed_runs["claude-opus-treatment"] > 3 * prem.failed_runs["other-paid"]
    assert sum(prem.users.values()) == 600  # no user dropped for a failure
    assert report_to_dict(build_report(store))["experiments"][1]["failed_runs"] == expected


DOCUMENTED_SCHEMA = """
CREATE TABLE requests(request_id TEXT PRIMARY KEY, ts REAL, user_key TEXT, context_json TEXT,
    routed_to_security INTEGER, status TEXT, simulated INTEGER);
CREATE TABLE exposures(id INTEGER PRIMARY KEY, ts REAL, request_id TEXT, user_key TEXT,
    config_key TEXT, variation_key TEXT, in_experiment INTEGER, context_json TEXT);
CREATE TABLE events(id INTEGER PRIMARY KEY, ts REAL, request_id TEXT, user_key TEXT,
    event_key TEXT, value REAL, config_key TEXT, variation_key TEXT, agent TEXT, model TEXT,
    provider TEXT, simulated INTEGER);
CREATE TABLE feedback(request_id TEXT PRIMARY KEY, ts REAL, user_key TEXT, kind TEXT,
    source TEXT);
"""


def test_a_store_with_only_the_documented_tables_is_read(tmp_path):
    # Written by another tool: docs/CONTRACTS.md's tables and columns, no schema_version row,
    # no index, none of the columns later issues add.
    source = make_store(tmp_path / "full.db", users=400, failure_rate=(0.1, 0.1),
                        unpriced_model=(None, "mystery-model"))
    path = tmp_path / "bare.db"
    conn = sqlite3.connect(path)
    conn.executescript(DOCUMENTED_SCHEMA)
    src = sqlite3.connect(source)
    conn.executemany(f"INSERT INTO exposures ({EXPOSURE_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                     src.execute(f"SELECT {EXPOSURE_COLUMNS} FROM exposures"))
    conn.executemany(f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                     src.execute(f"SELECT {EVENT_COLUMNS} FROM events"))
    conn.commit()
    assert "schema_version" not in {r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master")}
    bare, full = report_to_dict(build_report(path)), report_to_dict(build_report(source))
    for d in (bare, full):
        d.pop("generated_at"), d.pop("db_path")
    assert bare == full


def test_one_unpriced_run_makes_that_users_cost_unknown(tmp_path):
    store = make_store(tmp_path / "e.db", users=300)
    conn = sqlite3.connect(store)
    conn.execute("UPDATE events SET value = NULL, model = 'odd-model' WHERE id = (SELECT id "
                 "FROM events WHERE event_key = ? AND user_key = 'user-00007' AND "
                 "agent = 'support' LIMIT 1)", (mk.COST_PER_REQUEST,))
    conn.commit()
    prem = by_key(build_report(store))["premium-model-value"]
    cost = prem.metric("ai_cost_per_request")
    assert sum(cost.unknown_users) == 1  # only that user; the rest of their runs do not count
    assert math.isnan(cost.comparison.control_value)
    assert [m["model"] for m in prem.unpriced_models] == ["odd-model"]
    assert prem.unpriced_models[0]["runs"] == 1
    # Other summed metrics of that user are untouched.
    assert prem.metric("average_total_user_tokens").unknown_users == (0, 0)
