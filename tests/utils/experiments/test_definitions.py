"""bootstrap/experiments.yaml: content and validation errors."""

from __future__ import annotations

import copy

import pytest
import yaml

from utils.experiments.definitions import (
    DEFAULT_PATH,
    CostValueRatioAtLeast,
    ExperimentConfigError,
    find_experiment,
    load_experiments,
    parse_experiments,
)
from utils.telemetry.metrics import METRICS


@pytest.fixture()
def raw() -> dict:
    return yaml.safe_load(DEFAULT_PATH.read_text())


def test_both_experiments_load_with_their_arms():
    experiments = {e.key: e for e in load_experiments()}
    assert set(experiments) == {"security-level", "premium-model-value", "security-routing"}
    routing = experiments["security-routing"]
    assert (routing.config, routing.control, routing.treatment) == (
        "support-assistant-graph", "detector-routed", "always-security")
    sec = experiments["security-level"]
    assert (sec.config, sec.control, sec.treatment) == (
        "security-agent", "basic-security", "strict-security")
    prem = experiments["premium-model-value"]
    assert (prem.config, prem.control, prem.treatment) == (
        "support-agent", "other-paid", "claude-opus-treatment")
    for e in experiments.values():
        assert e.audience == "other-paid"
        assert e.split == {e.control: 50, e.treatment: 50}
        assert e.threshold == 0.90
        assert e.randomize_by == "user"
        assert all(m in METRICS for m in e.metrics)
    assert sec.seed != prem.seed


def test_security_level_rules_match_the_tutorial():
    e = find_experiment(load_experiments(), "security-level")
    kinds = [(c.kind, getattr(c, "metric", None)) for c in e.decision.ship_if_all]
    assert kinds == [
        ("non_inferiority_margin", "positive_feedback_rate"),
        ("relative_increase_at_most", "ai_cost_per_request"),
        ("absolute_increase_at_most", "p95_total_user_latency"),
        ("probability_to_beat", "pii_exposed_entities"),
    ]
    # "As satisfied": no more than 5% worse, with 90% probability (a margin, not P(worse)).
    assert e.decision.ship_if_all[0].non_inferiority_margin == 0.05
    assert e.decision.ship_if_all[0].probability == 0.90
    assert e.decision.ship_if_all[1].relative_increase_at_most == 0.15
    assert e.decision.ship_if_all[1].probability == 0.75
    assert e.decision.ship_if_all[2].absolute_increase_at_most == 3000
    assert e.decision.ship_if_all[2].probability == 0.90
    assert e.decision.otherwise == "need_more_data"
    assert e.decision.futility_floor == 0.05


def test_premium_model_rules_match_the_tutorial():
    e = find_experiment(load_experiments(), "premium-model-value")
    rules = e.decision.ship_if_all
    assert rules[0].relative_lift_at_least == 0.15
    assert (rules[1].metric, rules[1].probability_to_beat) == ("positive_feedback_rate", 0.90)
    # The tutorial's "probability_to_beat for cost >= 90%" is confidence in the ratio's cost
    # side, P(ratio >= 0.25) >= 0.9; "cheaper" would forbid the trade the ratio prices.
    assert isinstance(rules[2], CostValueRatioAtLeast)
    assert rules[2].cost_value_ratio_at_least == 0.25
    assert rules[2].probability == 0.90
    assert len(rules) == 3
    assert not any(getattr(r, "metric", None) == "ai_cost_per_request" for r in rules)
    assert e.decision.otherwise == "keep_control"


def test_unknown_experiment_key_names_the_known_keys():
    with pytest.raises(KeyError, match="security-level"):
        find_experiment(load_experiments(), "nope")


def test_split_not_summing_to_100_is_rejected_with_file_and_key_path(raw):
    raw["experiments"][0]["split"]["basic-security"] = 40
    with pytest.raises(ExperimentConfigError) as err:
        parse_experiments(raw, "exp.yaml")
    text = str(err.value)
    assert "exp.yaml" in text
    assert "experiments[0](security-level).split" in text
    assert "sum to 100" in text


def test_unknown_metric_in_a_criterion_is_named(raw):
    raw["experiments"][1]["decision"]["ship_if_all"][1]["metric"] = "happiness"
    with pytest.raises(ExperimentConfigError) as err:
        parse_experiments(raw, "exp.yaml")
    text = str(err.value)
    assert "decision.ship_if_all[1].metric" in text
    assert "'happiness'" in text


def test_criterion_without_a_rule_key_says_what_is_expected(raw):
    raw["experiments"][0]["decision"]["ship_if_all"][0] = {"metric": "positive_feedback_rate"}
    with pytest.raises(ExperimentConfigError, match="exactly one rule key"):
        parse_experiments(raw)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda e: e.update(threshold=1.5), "threshold"),
        (lambda e: e.update(treatment="basic-security"), "both 'basic-security'"),
        (lambda e: e.update(split={"a": 50, "b": 50}), "exactly the control and treatment"),
        (lambda e: e.update(primary_metric="average_total_user_tokens",
                            metrics=["positive_feedback_rate"]), "not in metrics"),
        (lambda e: e["decision"].update(otherwise="ship_anyway"), "otherwise"),
        (lambda e: e.update(colour="blue"), "colour"),
        (lambda e: e.pop("seed"), "seed"),
    ],
)
def test_bad_experiment_fields_are_rejected(raw, mutate, expected):
    data = copy.deepcopy(raw)
    mutate(data["experiments"][0])
    with pytest.raises(ExperimentConfigError, match=expected):
        parse_experiments(data)


def test_duplicate_experiment_keys_are_rejected(raw):
    raw["experiments"].append(copy.deepcopy(raw["experiments"][0]))
    with pytest.raises(ExperimentConfigError, match="unique"):
        parse_experiments(raw)


def test_malformed_yaml_names_the_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("experiments: [\n  - key: x\n   oops")
    with pytest.raises(ExperimentConfigError, match="broken.yaml"):
        load_experiments(bad)


def test_retired_not_worse_says_what_replaces_it(raw):
    raw["experiments"][0]["decision"]["ship_if_all"][0] = {
        "metric": "positive_feedback_rate", "not_worse": 0.9}
    with pytest.raises(ExperimentConfigError) as err:
        parse_experiments(raw, "exp.yaml")
    text = str(err.value)
    assert "experiments[0](security-level).decision.ship_if_all[0]" in text
    assert "no margin" in text and "non_inferiority_margin" in text


@pytest.mark.parametrize(
    ("criterion", "expected"),
    [
        ({"metric": "positive_feedback_rate", "non_inferiority_margin": 0.05},
         "probability"),
        ({"metric": "positive_feedback_rate", "non_inferiority_margin": 0,
          "probability": 0.9}, "non_inferiority_margin"),
        ({"metric": "positive_feedback_rate", "non_inferiority_margin": 1.5,
          "probability": 0.9}, "non_inferiority_margin"),
        ({"metric": "p95_total_user_latency", "absolute_increase_at_most": 3000},
         "probability"),
    ],
)
def test_bad_margins_and_missing_probabilities_are_rejected(raw, criterion, expected):
    raw["experiments"][0]["decision"]["ship_if_all"][0] = criterion
    with pytest.raises(ExperimentConfigError, match=expected):
        parse_experiments(raw)


def test_futility_floor_must_sit_below_every_probability_bar(raw):
    decision = raw["experiments"][0]["decision"]
    decision["ship_if_all"][1]["probability"] = 0.3
    decision["futility_floor"] = 0.4
    with pytest.raises(ExperimentConfigError, match="must be below every criterion"):
        parse_experiments(raw)
    decision["futility_floor"] = 0.6
    with pytest.raises(ExperimentConfigError, match="futility_floor"):
        parse_experiments(raw)
    decision["ship_if_all"][1]["probability"] = 0.75
    raw["experiments"][0]["decision"].pop("futility_floor")
    assert parse_experiments(raw)[0].decision.futility_floor == 0.05  # the default
