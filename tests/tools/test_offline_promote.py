"""promote: an offline variant becomes a variation and a running online experiment."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from bootstrap import create_configs, experiment_variations
from bootstrap.cli import load_checked_experiments
from bootstrap.manifest import DEFAULT_PATH as MANIFEST_PATH
from bootstrap.manifest import load_manifest
from tests.fakes.launchdarkly import FakeLaunchDarkly
from tools.offline_experiment import main
from tools.offline_promote import append_to_list
from utils.experiments.definitions import DEFAULT_PATH as EXPERIMENTS_PATH
from utils.experiments.definitions import parse_experiments
from utils.flags.client import ConfigFlags, build_context
from utils.settings import get_settings

TASKS = [
    {"id": "ppo", "message": "What does the clipping in PPO's objective prevent?",
     "checks": [{"kind": "mentions_any", "terms": ["clip"]}]},
    {"id": "dqn", "message": "How does experience replay stabilise DQN training?",
     "checks": [{"kind": "max_cost_usd", "value": 0.5}]},
]
FREE = '{"key": "offline-experiment", "country": "US", "plan": "free"}'
PAID = '{"key": "offline-experiment", "country": "US", "plan": "paid"}'


@pytest.fixture
def world(tmp_path, monkeypatch):
    """Copies of the manifest and experiments, a flag file bootstrapped from them, tasks."""
    flags = tmp_path / "flags.json"
    monkeypatch.setenv("LOCAL_FLAGS_PATH", str(flags))
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EVENTS_DB", str(tmp_path / "events.db"))
    get_settings.cache_clear()
    manifest, experiments = tmp_path / "manifest.yaml", tmp_path / "experiments.yaml"
    shutil.copy(MANIFEST_PATH, manifest)
    shutil.copy(EXPERIMENTS_PATH, experiments)
    files = ["--manifest", str(manifest), "--experiments", str(experiments)]
    assert create_configs.main(["--backend", "local", *files]) == 0
    assert experiment_variations.main(["--backend", "local", *files]) == 0
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    yield {"flags": flags, "manifest": manifest, "experiments": experiments, "files": files,
           "tasks": tasks}
    get_settings.cache_clear()


def cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def offline(capsys, world, key, context, *variants):
    """Create KEY, run its baseline, then add and run each (name, step, PARAM=VALUE[, parent])."""
    assert cli(capsys, "create", key, "--steps", "support-agent,security-agent", "--tasks",
               str(world["tasks"]), "--context", context)[0] == 0
    assert cli(capsys, "baseline", key)[0] == 0
    for name, step, setting, *parent in variants:
        extra = ["--parent", parent[0]] if parent else []
        assert cli(capsys, "variant", key, name, "--step", step, "--set", setting, *extra)[0] == 0
        assert cli(capsys, "run", key, name)[0] == 0


def promote(capsys, world, *args):
    return cli(capsys, "promote", *args, *world["files"])


def _served(flags_path: Path, config: str, attributes: dict, users: int = 200):
    settings = get_settings().model_copy(update={"LOCAL_FLAGS_PATH": flags_path})
    client = ConfigFlags(settings)
    try:
        return [client.agent_config(config, build_context(f"user-{i}", attributes))
                for i in range(users)]
    finally:
        client.close()


def test_promote_writes_the_variation_and_a_running_experiment(capsys, world) -> None:
    offline(capsys, world, "free-tools", FREE,
            ("calls", "support-agent", "max_tool_calls=4"),
            ("calls-mini", "support-agent", "model=claude-haiku-4-5", "calls"))
    manifest_before = world["manifest"].read_text()
    experiments_before = world["experiments"].read_text()
    code, out, err = promote(capsys, world, "free-tools", "calls-mini")
    assert code == 0, err
    assert "experiment free-tools-calls-mini running" in out

    manifest = load_manifest(world["manifest"])
    (added,) = [v for v in manifest.experiment_variations_for("support-agent")
                if v.key == "free-tools-calls-mini"]
    base = manifest.config("support-agent").variation("other-free")
    assert (added.model, added.provider) == ("claude-haiku-4-5", "anthropic")
    assert added.custom.max_tool_calls == 4  # the whole chain, not only the last change
    assert added.tools == base.tools and added.instructions == base.instructions
    assert added.custom.pii_policy == base.custom.pii_policy
    # Only added lines: comments, anchors and the other entries are untouched.
    assert world["manifest"].read_text().startswith(manifest_before.rstrip("\n"))
    assert world["experiments"].read_text().startswith(experiments_before.rstrip("\n"))

    experiments = load_checked_experiments(world["experiments"], manifest)
    exp = experiments[-1]
    assert exp.key == "free-tools-calls-mini" and exp.config == "support-agent"
    assert (exp.audience, exp.control, exp.treatment) == ("other-free", "other-free",
                                                          "free-tools-calls-mini")
    assert exp.split == {"other-free": 50, "free-tools-calls-mini": 50}
    assert exp.primary_metric == "positive_feedback_rate" and exp.decision.ship_if_all
    # The experiments already defined stay as they were, in order, before the new one.
    assert [e.key for e in experiments[:-1]] == [
        e.key for e in parse_experiments(yaml.safe_load(experiments_before))]

    served = _served(world["flags"], "support-agent", {"country": "US", "plan": "free"})
    arms = {c.variation_key for c in served}
    assert arms == {"other-free", "free-tools-calls-mini"} and all(c.in_experiment for c in served)
    treated = next(c for c in served if c.variation_key == "free-tools-calls-mini")
    assert treated.model == "claude-haiku-4-5" and treated.custom["max_tool_calls"] == 4
    paid = {c.variation_key for c in _served(world["flags"], "support-agent",
                                             {"country": "US", "plan": "paid"}, 50)}
    assert paid == {"other-paid", "claude-opus-treatment"}  # the other experiment is untouched

    code, _, err = promote(capsys, world, "free-tools", "calls-mini")
    assert code == 2 and "already has a variation free-tools-calls-mini" in err


def test_dry_run_prints_both_and_writes_nothing(capsys, world) -> None:
    offline(capsys, world, "dry", FREE, ("calls", "support-agent", "max_tool_calls=3"))
    before = {k: world[k].read_text() for k in ("manifest", "experiments", "flags")}
    code, out, _ = promote(capsys, world, "dry", "calls", "--dry-run")
    assert code == 0
    assert "based_on: other-free" in out and "max_tool_calls: 3" in out
    assert "audience: other-free" in out and "treatment: dry-calls" in out
    assert "non_inferiority_margin" in out and "dry run: nothing written" in out
    assert {k: world[k].read_text() for k in before} == before


@pytest.mark.parametrize("name, needle", [
    ("baseline", "the baseline is what production serves"),
    ("ghost", "has no variant 'ghost'"),
    ("pending", "is pending"),
    ("both", "changes 2 steps"),
    ("topp", "top_p cannot be promoted"),
])
def test_what_cannot_be_promoted_is_refused_by_name(capsys, world, name, needle) -> None:
    offline(capsys, world, "refuse", FREE,
            ("strict", "security-agent", "pii_policy=strict"),
            ("both", "support-agent", "max_tool_calls=5", "strict"),
            ("topp", "support-agent", "top_p=0.5"))
    assert cli(capsys, "variant", "refuse", "pending", "--step", "support-agent", "--set",
               "max_tokens=64")[0] == 0
    before = world["experiments"].read_text()
    code, _, err = promote(capsys, world, "refuse", name)
    assert code == 2 and needle in err
    assert world["experiments"].read_text() == before


def test_an_audience_another_experiment_uses_is_refused(capsys, world) -> None:
    offline(capsys, world, "paid", PAID, ("calls", "support-agent", "max_tool_calls=3"))
    code, _, err = promote(capsys, world, "paid", "calls")
    assert code == 2 and "premium-model-value already targets other-paid" in err
    code, _, err = promote(capsys, world, "paid", "calls", "--audience", "nowhere")
    assert code == 2 and "nowhere" in err


def test_append_to_list_keeps_the_rest_of_the_file() -> None:
    text = "# head\nitems:\n  - a: 1\n  # trailing note\n\nother: 2\n"
    assert append_to_list(text, "items", {"b": 2}) == (
        "# head\nitems:\n  - a: 1\n  - b: 2\n  # trailing note\n\nother: 2\n")
    assert append_to_list("items: []\n", "items", {"b": 2}) == "items:\n  - b: 2\n"
    assert append_to_list("x: 1\n", "items", {"b": 2}) == "x: 1\n\nitems:\n  - b: 2\n"


def test_promote_to_launchdarkly_creates_the_variation_and_starts_the_iteration(
        capsys, world, monkeypatch) -> None:
    offline(capsys, world, "free-tools", FREE, ("calls", "support-agent", "max_tool_calls=4"))
    with FakeLaunchDarkly(api_key="api-test-key") as fake:
        monkeypatch.setenv("LD_API_KEY", "api-test-key")
        monkeypatch.setenv("LD_API_BASE_URL", fake.base_url)
        get_settings.cache_clear()
        files = world["files"]
        assert create_configs.main(files) == 0
        assert experiment_variations.main(["--start", *files]) == 0
        code, _, err = promote(capsys, world, "free-tools", "calls", "--backend", "launchdarkly")
        assert code == 0, err
        variations = {v["key"]: v for v in fake.configs["support-agent"]["variations"]}
        served = fake.served_value(variations["free-tools-calls"])
        assert served["model"]["custom"]["max_tool_calls"] == 4
        assert served["model"]["name"] == fake.served_value(variations["other-free"])[
            "model"]["name"]
        exp = fake.experiments["free-tools-calls"]
        assert exp["currentIteration"]["status"] == "running"
        names = {t["name"] for t in exp["currentIteration"]["treatments"]}
        assert names == {"other-free", "free-tools-calls"}
    assert load_checked_experiments(world["experiments"],
                                    load_manifest(world["manifest"]))[-1].key == "free-tools-calls"


def test_the_api_lists_and_shows_offline_experiments(capsys, world) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app

    offline(capsys, world, "api-view", FREE, ("calls", "support-agent", "max_tool_calls=3"))
    state_folder = Path(get_settings().DATA_DIR) / "offline_experiments"
    (state_folder / "broken.json").write_text("{not json")
    with TestClient(create_app()) as client:
        listing = client.get("/offline-experiments").json()
        assert [e["key"] for e in listing["experiments"]] == ["api-view"]
        assert listing["experiments"][0]["tasks"] == 2
        assert listing["unreadable"][0]["key"] == "broken"
        document = client.get("/offline-experiments/api-view").json()
        code, out, _ = cli(capsys, "show", "api-view", "--json")
        assert document == json.loads(out)
        assert client.get("/offline-experiments/ghost").status_code == 404
        assert client.get("/offline-experiments/..%2Fetc").status_code == 404


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_second_promotion_onto_a_running_experiment_is_refused_by_name(
        capsys, world, dry_run) -> None:
    offline(capsys, world, "first", FREE, ("calls", "support-agent", "max_tool_calls=4"))
    assert promote(capsys, world, "first", "calls")[0] == 0
    offline(capsys, world, "second", FREE, ("mini", "support-agent", "model=claude-haiku-4-5"))
    before = {k: world[k].read_text() for k in ("manifest", "experiments", "flags")}
    code, out, err = promote(capsys, world, "second", "mini", *(["--dry-run"] if dry_run else []))
    assert code == 2, out
    assert "experiment first-calls already targets other-free users of support-agent" in err
    assert "is still running" in err
    assert "python -m bootstrap.promote first-calls {other-free | first-calls}" in err
    assert "remove it from experiments.yaml" in err
    assert {k: world[k].read_text() for k in before} == before  # nothing overlapping written


def test_once_its_winner_is_promoted_the_next_promotion_runs_from_the_new_baseline(
        capsys, world) -> None:
    from bootstrap import promote as bootstrap_promote

    offline(capsys, world, "first", FREE, ("calls", "support-agent", "max_tool_calls=4"))
    assert promote(capsys, world, "first", "calls")[0] == 0
    assert bootstrap_promote.main(["first-calls", "first-calls", "--backend", "local",
                                   "--flags-path", str(world["flags"]), *world["files"]]) == 0
    assert {c.variation_key for c in _served(world["flags"], "support-agent",
                                             {"country": "US", "plan": "free"}, 50)} == {
        "first-calls"}
    offline(capsys, world, "second", FREE, ("mini", "support-agent", "model=claude-haiku-4-5"))
    code, out, err = promote(capsys, world, "second", "mini")
    assert code == 0, err
    served = _served(world["flags"], "support-agent", {"country": "US", "plan": "free"})
    assert {c.variation_key for c in served} == {"first-calls", "second-mini"}
    assert all(c.in_experiment for c in served)
