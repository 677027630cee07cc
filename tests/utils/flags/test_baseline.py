"""The production baseline: targeting's variation for a context, experiment rollouts ignored."""

from __future__ import annotations

import pytest

from tests.fakes.flagfile import standard_flags, write_flags
from utils.flags.baseline import BaselineError, production_baseline
from utils.flags.client import ConfigFlags, build_context
from utils.flags.flag_file import EXPERIMENT_ROLLOUT, without_experiment_rollouts
from utils.settings import get_settings

OTHER_PAID = {"country": "US", "plan": "paid"}


def _with_experiment(flags):
    """An experiment on support-agent for other-paid users: other-paid 0% / eu-free 100%."""
    support = flags["flags"]["support-agent"]
    rule = {"id": "exp", "trackEvents": True,
            "clauses": [{"contextKind": "user", "attribute": "segmentMatch", "op": "segmentMatch",
                         "values": ["other-paid"]}],
            "rollout": {"kind": EXPERIMENT_ROLLOUT, "seed": 1, "contextKind": "user",
                        "variations": [{"variation": 4, "weight": 0},
                                       {"variation": 1, "weight": 100000}]}}
    support["rules"].insert(0, rule)
    return flags


def test_the_baseline_ignores_experiment_rollouts(flags_file):
    write_flags(flags_file, _with_experiment(standard_flags()))
    settings = get_settings()
    live = ConfigFlags(settings)
    try:
        served = live.agent_config("support-agent", build_context("u1", OTHER_PAID))
    finally:
        live.close()
    assert served.in_experiment and served.variation_key == "eu-free"  # the experiment's arm
    baseline = production_baseline(settings, "u1", OTHER_PAID)
    support = baseline.configs["support-agent"]
    assert support.variation_key == "other-paid" and not support.in_experiment
    assert baseline.configs["security-agent"].variation_key == "basic-security"
    assert baseline.missing is None and "experiment rollouts ignored" in baseline.source
    eu = production_baseline(settings, "u2", {"country": "DE", "plan": "paid"})
    assert eu.configs["support-agent"].variation_key == "eu-paid"


def test_only_experiment_rules_are_removed():
    document = _with_experiment(standard_flags())
    stripped = without_experiment_rollouts(document)
    assert len(stripped["flags"]["support-agent"]["rules"]) == 4
    assert len(document["flags"]["support-agent"]["rules"]) == 5  # the input is not changed


def test_a_missing_flag_file_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_FLAGS_PATH", str(tmp_path / "none.json"))
    get_settings.cache_clear()
    baseline = production_baseline(get_settings(), "u1", OTHER_PAID)
    assert "does not exist" in baseline.missing
    assert baseline.configs["support-agent"].source == "default"


def test_an_unreadable_flag_file_is_an_error(flags_file):
    flags_file.write_text("{not json")
    with pytest.raises(BaselineError, match="cannot read the flag file"):
        production_baseline(get_settings(), "u1", OTHER_PAID)
