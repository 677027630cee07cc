"""create_configs / experiment_variations / promote against the local flag file and the real SDK."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from ldclient import Context, LDClient
from ldclient.config import Config
from ldclient.integrations import Files

from bootstrap import create_configs, experiment_variations, promote
from bootstrap.manifest import DEFAULT_PATH as MANIFEST_PATH

USERS = 10_000


def sdk(path: Path) -> LDClient:
    config = Config("test", send_events=False, diagnostic_opt_out=True,
                    update_processor_class=Files.new_data_source(paths=[str(path)]))
    return LDClient(config=config, start_wait=5)


def user(key: str, country: str | None = None, plan: str | None = None) -> Context:
    builder = Context.builder(key)
    if country:
        builder.set("country", country)
    if plan:
        builder.set("plan", plan)
    return builder.build()


def served(client: LDClient, flag: str, context: Context) -> tuple[str, bool]:
    detail = client.variation_detail(flag, context, None)
    return detail.value["_ldMeta"]["variationKey"], bool(detail.reason.get("inExperiment"))


@pytest.fixture(scope="module")
def experiment_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Flags after create_configs and experiment_variations (built once for the module)."""
    path = tmp_path_factory.mktemp("exp") / "flags.json"
    assert create_configs.main(["--backend", "local", "--flags-path", str(path)]) == 0
    assert experiment_variations.main(["--backend", "local", "--flags-path", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def assignments(experiment_file: Path) -> list[tuple[str, str]]:
    """(security arm, support arm) for 10,000 synthetic other-paid users."""
    client = sdk(experiment_file)
    try:
        rows = []
        for i in range(USERS):
            ctx = user(f"user-{i}", "US", "paid")
            security, in_exp_security = served(client, "security-agent", ctx)
            support, in_exp_support = served(client, "support-agent", ctx)
            assert in_exp_security and in_exp_support
            rows.append((security, support))
        return rows
    finally:
        client.close()


def test_create_configs_writes_a_flag_file_the_sdk_serves(tmp_path: Path, capsys) -> None:
    path = tmp_path / "flags.json"
    assert create_configs.main(["--backend", "local", "--flags-path", str(path)]) == 0
    client = sdk(path)
    try:
        assert served(client, "security-agent", user("a", "DE", "free"))[0] == "strict-security"
        assert served(client, "security-agent", user("b", "FR", "paid"))[0] == "strict-security"
        assert served(client, "security-agent", user("c", "US", "paid"))[0] == "basic-security"
        assert served(client, "support-agent", user("d", "DE", "free"))[0] == "eu-free"
        assert served(client, "support-agent", user("e", "SE", "paid"))[0] == "eu-paid"
        assert served(client, "support-agent", user("f", "BR", "free"))[0] == "other-free"
        assert served(client, "support-agent", user("g", "US", "paid"))[0] == "other-paid"
        assert served(client, "support-agent", user("h"))[0] == "international-standard"
        assert served(client, "supervisor-agent", user("i"))[0] == "supervisor-basic"
        assert served(client, "support-agent", user("g", "US", "paid"))[1] is False
    finally:
        client.close()
    assert "wrote" in capsys.readouterr().out


def test_second_run_reports_no_changes_and_keeps_the_file_byte_identical(
        tmp_path: Path, capsys) -> None:
    path = tmp_path / "flags.json"
    args = ["--backend", "local", "--flags-path", str(path)]
    for script in (create_configs, experiment_variations):
        assert script.main(args) == 0
        before = path.read_bytes()
        capsys.readouterr()
        assert script.main(args) == 0
        assert "no changes" in capsys.readouterr().out
        assert path.read_bytes() == before
    # create_configs after the experiments started keeps them
    assert create_configs.main(args) == 0
    assert "no changes" in capsys.readouterr().out


def test_dry_run_prints_a_diff_and_writes_nothing(tmp_path: Path, capsys) -> None:
    path = tmp_path / "flags.json"
    args = ["--backend", "local", "--flags-path", str(path)]
    assert create_configs.main([*args, "--dry-run"]) == 0
    assert not path.exists()
    assert create_configs.main(args) == 0
    capsys.readouterr()
    assert experiment_variations.main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "+++" in out and '"kind": "experiment"' in out and "dry run" in out
    assert "claude-opus-treatment" not in path.read_text()
    assert not (tmp_path / "flags.state.json").exists()


def test_changed_variation_bumps_only_its_versions(tmp_path: Path, capsys) -> None:
    path = tmp_path / "flags.json"
    assert create_configs.main(["--backend", "local", "--flags-path", str(path)]) == 0
    manifest = yaml.safe_load(MANIFEST_PATH.read_text())
    manifest["configs"][2]["variations"][1]["parameters"]["temperature"] = 0.9
    edited = tmp_path / "manifest.yaml"
    edited.write_text(yaml.safe_dump(manifest))
    assert create_configs.main(["--backend", "local", "--flags-path", str(path),
                                "--manifest", str(edited)]) == 0
    assert "variations changed ['eu-free']" in capsys.readouterr().out
    flags = json.loads(path.read_text())["flags"]
    assert flags["support-agent"]["version"] == 2
    assert flags["security-agent"]["version"] == 1
    versions = {v["_ldMeta"]["variationKey"]: v["_ldMeta"]["version"]
                for v in flags["support-agent"]["variations"]}
    assert versions["eu-free"] == 2 and versions["other-paid"] == 1


def test_bad_manifest_exits_non_zero_and_writes_nothing(tmp_path: Path, capsys) -> None:
    manifest = yaml.safe_load(MANIFEST_PATH.read_text())
    manifest["configs"][2]["targeting"]["rules"][0]["segment"] = "apac-free"
    bad = tmp_path / "manifest.yaml"
    bad.write_text(yaml.safe_dump(manifest))
    path = tmp_path / "flags.json"
    assert create_configs.main(["--backend", "local", "--flags-path", str(path),
                                "--manifest", str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "unknown segment 'apac-free'" in err
    assert not path.exists()


def test_split_not_summing_to_100_exits_non_zero(tmp_path: Path, capsys) -> None:
    path = tmp_path / "flags.json"
    assert create_configs.main(["--backend", "local", "--flags-path", str(path)]) == 0
    before = path.read_bytes()
    data = yaml.safe_load((MANIFEST_PATH.parent / "experiments.yaml").read_text())
    data["experiments"][0]["split"] = {"basic-security": 60, "strict-security": 50}
    bad = tmp_path / "experiments.yaml"
    bad.write_text(yaml.safe_dump(data))
    assert experiment_variations.main(["--backend", "local", "--flags-path", str(path),
                                       "--experiments", str(bad)]) == 1
    assert "sum to 100" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_each_experiment_splits_other_paid_users_50_50(assignments) -> None:
    security = Counter(s for s, _ in assignments)
    support = Counter(p for _, p in assignments)
    assert abs(security["strict-security"] / USERS - 0.5) <= 0.02
    assert abs(support["claude-opus-treatment"] / USERS - 0.5) <= 0.02
    assert set(security) == {"basic-security", "strict-security"}
    assert set(support) == {"other-paid", "claude-opus-treatment"}


def test_the_two_experiments_bucket_independently(assignments) -> None:
    cells = Counter(assignments)
    assert len(cells) == 4
    for count in cells.values():
        assert abs(count / USERS - 0.25) <= 0.02


def test_the_same_user_always_gets_the_same_arm(experiment_file: Path, assignments) -> None:
    client = sdk(experiment_file)
    try:
        for i in range(0, USERS, 97):
            ctx = user(f"user-{i}", "US", "paid")
            again = (served(client, "security-agent", ctx)[0],
                     served(client, "support-agent", ctx)[0])
            assert again == assignments[i]
    finally:
        client.close()


def test_experiments_leave_other_segments_alone(experiment_file: Path) -> None:
    client = sdk(experiment_file)
    try:
        for i in range(200):
            assert served(client, "security-agent", user(f"u{i}", "DE", "paid")) == (
                "strict-security", False)
            assert served(client, "support-agent", user(f"u{i}", "IT", "free")) == (
                "eu-free", False)
            assert served(client, "support-agent", user(f"u{i}", "US", "free")) == (
                "other-free", False)
    finally:
        client.close()


def test_promotion_serves_the_winner_to_the_whole_audience(tmp_path: Path, capsys) -> None:
    path = tmp_path / "flags.json"
    args = ["--backend", "local", "--flags-path", str(path)]
    assert create_configs.main(args) == 0
    assert experiment_variations.main(args) == 0
    capsys.readouterr()
    assert promote.main(["premium-model-value", "claude-opus-treatment", *args]) == 0
    out = capsys.readouterr().out
    assert "before:" in out and "after:" in out and "archived: other-paid" in out
    client = sdk(path)
    try:
        for i in range(500):
            assert served(client, "support-agent", user(f"user-{i}", "US", "paid")) == (
                "claude-opus-treatment", False)
        # the other experiment still runs
        assert served(client, "security-agent", user("user-1", "US", "paid"))[1] is True
    finally:
        client.close()
    state = json.loads((tmp_path / "flags.state.json").read_text())
    assert state["experiments"]["premium-model-value"] == {
        "status": "promoted", "winner": "claude-opus-treatment", "archived": ["other-paid"]}
    before = path.read_bytes()
    assert promote.main(["premium-model-value", "claude-opus-treatment", *args]) == 0
    assert "no changes" in capsys.readouterr().out
    assert path.read_bytes() == before
    # a promoted experiment is not restarted
    assert experiment_variations.main(args) == 0
    assert "already promoted" in capsys.readouterr().out
    assert path.read_bytes() == before


def test_promote_refuses_a_variation_that_is_not_an_arm(tmp_path: Path, capsys) -> None:
    path = tmp_path / "flags.json"
    args = ["--backend", "local", "--flags-path", str(path)]
    assert create_configs.main(args) == 0
    assert experiment_variations.main(args) == 0
    before = path.read_bytes()
    assert promote.main(["premium-model-value", "eu-paid", *args]) == 1
    assert "not an arm of premium-model-value" in capsys.readouterr().err
    assert promote.main(["no-such-experiment", "eu-paid", *args]) == 1
    assert "unknown experiment" in capsys.readouterr().err
    assert path.read_bytes() == before
