"""The demo's choice of experiments: which ones it starts and reports, and the errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from ldclient import Context, LDClient
from ldclient.config import Config
from ldclient.integrations import Files

from bootstrap import create_configs, experiment_variations
from tools import demo
from utils.experiments.definitions import load_experiments

DEFINED = [e.key for e in load_experiments()]


def test_default_is_every_defined_experiment() -> None:
    assert demo.parse_args([]).experiment_keys == DEFINED
    assert {"security-level", "premium-model-value", "security-routing"} <= set(DEFINED)


def test_a_subset_keeps_the_file_order_and_ignores_blanks() -> None:
    args = demo.parse_args(["--experiments", " premium-model-value, ,security-level"])
    assert args.experiment_keys == [k for k in DEFINED
                                    if k in {"security-level", "premium-model-value"}]


def test_an_unknown_key_is_refused_naming_it_and_the_valid_ones(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        demo.parse_args(["--experiments", "security-level,no-such-thing"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "'no-such-thing'" in err and all(key in err for key in DEFINED)


def test_only_the_chosen_experiments_are_started(tmp_path: Path) -> None:
    subset = demo.write_experiments_subset(["security-level"], tmp_path / "experiments.yaml")
    assert [e.key for e in load_experiments(subset)] == ["security-level"]
    flags = tmp_path / "flags.json"
    assert create_configs.main(["--backend", "local", "--flags-path", str(flags)]) == 0
    assert experiment_variations.main(["--backend", "local", "--flags-path", str(flags),
                                       "--experiments", str(subset)]) == 0
    client = LDClient(config=Config("test", send_events=False, diagnostic_opt_out=True,
                                    update_processor_class=Files.new_data_source(
                                        paths=[str(flags)])), start_wait=5)
    try:
        seen: dict[str, set[bool]] = {"security-agent": set(), "support-agent": set()}
        for i in range(200):
            ctx = Context.builder(f"user-{i}").set("country", "US").set("plan", "paid").build()
            for flag in seen:
                detail = client.variation_detail(flag, ctx, None)
                seen[flag].add(bool(detail.reason.get("inExperiment")))
    finally:
        client.close()
    assert seen["security-agent"] == {True}  # security-level runs on other-paid users
    assert seen["support-agent"] == {False}  # premium-model-value was not started
