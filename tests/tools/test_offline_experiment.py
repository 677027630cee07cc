"""The offline-experiment command line, end to end on a small task set."""

from __future__ import annotations

import json

import pytest

from tools.offline_experiment import main

TASKS = [
    {"id": "ppo", "message": "What does the clipping in PPO's objective prevent?",
     "checks": [{"kind": "mentions_any", "terms": ["clip"]},
                {"kind": "uses_tool", "tool": "search_v2"}]},
    {"id": "org", "message": "I work at Northwind Analytics GmbH; how does actor-critic reduce "
     "variance?", "tags": ["pii"], "checks": [{"kind": "no_pii_to_support"}]},
    {"id": "dqn", "message": "How does experience replay stabilise DQN training?",
     "checks": [{"kind": "max_cost_usd", "value": 0.5}]},
]


@pytest.fixture
def tasks(flags_file, tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    return path


def cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def show(capsys, key):
    code, out, _ = cli(capsys, "show", key, "--json")
    assert code == 0
    return json.loads(out)


def test_the_whole_flow(capsys, tasks):
    code, out, _ = cli(capsys, "create", "e1", "--steps", "support-agent,security-agent",
                       "--tasks", str(tasks), "--repeats", "2")
    assert code == 0 and "baseline_pending" in out and "variation other-paid" in out
    code, _, err = cli(capsys, "variant", "e1", "v", "--step", "support-agent", "--set",
                       "max_tokens=50")
    assert code == 2 and "needs a completed baseline" in err
    assert cli(capsys, "baseline", "e1")[0] == 0
    tasks.write_text(tasks.read_text().replace("clip", "nothing-matches"))  # after the lock
    doc = show(capsys, "e1")
    assert doc["status"] == "baseline_complete" and doc["tasks"]["count"] == 3
    base = doc["variants"][0]
    assert base["name"] == "baseline" and base["tasks"]["total"] == 6
    assert base["pass_rate"] == pytest.approx(4 / 6, abs=1e-3)  # the org leaks under basic redaction

    assert cli(capsys, "variant", "e1", "strict", "--step", "security-agent", "--set",
               "pii_policy=strict")[0] == 0
    assert cli(capsys, "variant", "e1", "v1", "--step", "support-agent", "--set",
               "tools=search_v1", "--parent", "strict")[0] == 0
    assert cli(capsys, "variant", "e1", "mini", "--step", "support-agent", "--set",
               "model=gpt-4o-mini", "--parent", "v1")[0] == 0
    for name in ("strict", "v1"):
        assert cli(capsys, "run", "e1", name)[0] == 0
    doc = show(capsys, "e1")
    assert doc["status"] == "idle"
    variants = {v["name"]: v for v in doc["variants"]}
    strict, v1, mini = variants["strict"], variants["v1"], variants["mini"]
    assert strict["pass_rate"] == 1.0 and strict["vs_baseline"] == pytest.approx(2 / 6, abs=1e-3)
    assert strict["comparison"]["against"] == "baseline"
    assert [f["task_id"] for f in strict["comparison"]["flipped"]] == ["org"]
    assert v1["comparison"]["against"] == "strict" and v1["comparison"]["difference"] < 0
    assert v1["effective"]["support-agent"]["tools"] == ["search_v1"]
    assert v1["effective"]["security-agent"]["pii_policy"] == "strict"
    assert mini["status"] == "pending" and mini["pass_rate"] is None
    assert mini["override"] == {"model": "openai:gpt-4o-mini"}
    code, out, _ = cli(capsys, "show", "e1")
    # 3 tasks: one flipped task, seen twice, is not enough to be sure
    assert code == 0 and "strict is not distinguishable from the baseline" in out

    assert cli(capsys, "complete", "e1")[0] == 0
    code, _, err = cli(capsys, "run", "e1", "mini")
    assert code == 2 and "after completion" in err
    code, _, err = cli(capsys, "variant", "e1", "w", "--step", "support-agent", "--set",
                       "max_tokens=5")
    assert code == 2 and "after completion" in err
    assert cli(capsys, "archive", "e1")[0] == 0
    code, _, err = cli(capsys, "complete", "e1")
    assert code == 2 and "archived is final" in err


@pytest.mark.parametrize(("args", "named"), [
    (["--set", "max_tokens=5", "--set", "top_p=0.5"], "one parameter of one step"),
    (["--set", "max_tokens"], "PARAM=VALUE"),
    (["--set", "model=gpt-99"], "not in the model table"),
    (["--set", "tools=search_v1,web"], "unknown tool"),
    (["--set", "max_tool_calls=2", "--parent", "nobody"], "parent 'nobody'"),
])
def test_variant_errors_name_the_rule(capsys, tasks, args, named, request):
    key = f"e2-{request.node.callspec.id}".lower()[:40].replace("[", "").replace("]", "")
    key = "".join(c if c.isalnum() or c == "-" else "-" for c in key)
    cli(capsys, "create", key, "--steps", "support-agent", "--tasks", str(tasks))
    assert cli(capsys, "baseline", key)[0] == 0
    code, _, err = cli(capsys, "variant", key, "v", "--step", "support-agent", *args)
    assert code == 2 and named in err


def test_missing_task_set_leaves_a_draft_until_it_exists(capsys, tasks, tmp_path):
    later = tmp_path / "later.jsonl"
    code, out, _ = cli(capsys, "create", "e3", "--steps", "support-agent", "--tasks", str(later))
    assert code == 0 and "draft" in out
    code, _, err = cli(capsys, "baseline", "e3")
    assert code == 2 and "later.jsonl does not exist" in err
    later.write_text(tasks.read_text())
    assert cli(capsys, "baseline", "e3")[0] == 0
    assert show(capsys, "e3")["status"] == "baseline_complete"


@pytest.mark.parametrize(("args", "named"), [
    (["--steps", "billing"], "unknown step"),
    (["--steps", "support-agent", "--context", "[1]"], "--context must be a JSON object"),
    (["--steps", "support-agent", "--context", "{"], "--context is not JSON"),
    (["--steps", "support-agent", "--repeats", "0"], "1..50"),
])
def test_create_errors(capsys, tasks, args, named):
    code, _, err = cli(capsys, "create", "bad", "--tasks", str(tasks), *args)
    assert code == 2 and named in err


def test_broken_task_file_is_refused_at_create(capsys, tasks):
    tasks.write_text('{"id": "x"}\n')
    code, _, err = cli(capsys, "create", "e4", "--steps", "support-agent", "--tasks", str(tasks))
    assert code == 2 and "`message` must be non-empty" in err


def test_unknown_experiment_and_run_of_the_baseline(capsys, tasks):
    code, _, err = cli(capsys, "show", "ghost")
    assert code == 2 and "no offline experiment 'ghost'" in err
    cli(capsys, "create", "e5", "--steps", "support-agent", "--tasks", str(tasks))
    code, _, err = cli(capsys, "run", "e5", "baseline")
    assert code == 2 and "runs with `baseline e5`" in err
