"""Task sets: the default set, the format's errors, and every check kind."""

from __future__ import annotations

import json

import pytest

from utils.experiments.offline_tasks import (
    CHECK_FIELDS,
    DEFAULT_TASKS_PATH,
    Observation,
    TaskSetError,
    grade,
    load_tasks,
    parse_tasks,
    run_check,
)
from utils.privacy.detector import count_exposed


def test_default_set_is_large_with_real_pii_and_out_of_scope_tasks():
    tasks = load_tasks(DEFAULT_TASKS_PATH)
    assert tasks.count >= 60 and len(tasks.sha256) == 64
    pii = [t for t in tasks.tasks if "pii" in t.tags]
    assert len(pii) >= 15
    for task in pii:  # the tag is not enough: the detector must find PII in the request
        texts = [task.message, *(turn["content"] for turn in task.history)]
        assert sum(count_exposed(text) for text in texts) > 0, task.id
    assert len([t for t in tasks.tasks if "out_of_scope" in t.tags]) >= 5
    used = {c["kind"] for t in tasks.tasks for c in t.checks}
    assert used == set(CHECK_FIELDS)  # the default set exercises every check kind


def line(**task):
    base = {"id": "t1", "message": "What is Q-learning?", "checks": [{"kind": "routes_to",
                                                                       "route": "support"}]}
    return json.dumps({**base, **task})


@pytest.mark.parametrize(("text", "named"), [
    ("not json", "demo.jsonl:1: not JSON"),
    (line(id=""), "`id` must be non-empty"),
    (line(message="  "), "`message` must be non-empty"),
    (line(checks=[]), "`checks` must be a non-empty list"),
    (line(checks=[{"kind": "smells_nice"}]), "unknown check kind 'smells_nice'"),
    (line(checks=[{"kind": "routes_to", "route": "billing"}]), "routes_to.route"),
    (line(checks=[{"kind": "routes_to"}]), "missing ['route']"),
    (line(checks=[{"kind": "mentions_any", "terms": []}]), "mentions_any.terms"),
    (line(checks=[{"kind": "max_cost_usd", "value": -1}]), "positive number"),
    (line(checks=[{"kind": "max_latency_ms", "value": True}]), "positive number"),
    (line(checks=[{"kind": "judge", "min": "great"}]), "judge.min"),
    (line(checks=[{"kind": "no_pii_to_support", "extra": 1}]), "unknown ['extra']"),
    (line(history=[{"role": "system", "content": "x"}]), "`history` must be a list"),
    (line(colour="red"), "unknown field(s) ['colour']"),
    (line() + "\n" + line(), "demo.jsonl:2: task id 't1' appears twice"),
    ("\n\n", "demo.jsonl: no tasks"),
])
def test_malformed_task_files_are_refused_naming_the_line(text, named):
    with pytest.raises(TaskSetError) as error:
        parse_tasks(text, "demo.jsonl")
    assert named in str(error.value)


def test_unreadable_file_is_named(tmp_path):
    with pytest.raises(TaskSetError, match="cannot read task file"):
        load_tasks(tmp_path / "nope.jsonl")


def test_sha256_follows_the_text():
    assert parse_tasks(line(), "a").sha256 != parse_tasks(line(message="Other?"), "a").sha256


SEEN = Observation(response="PPO clips the probability ratio.", route="support",
                   tools_used=("search_v2",), cost_usd=0.004, latency_ms=1500.0,
                   pii_to_support=0, judge_verdict="none")


@pytest.mark.parametrize(("check", "passed"), [
    ({"kind": "mentions_any", "terms": ["RATIO", "kl"]}, True),
    ({"kind": "mentions_any", "terms": ["trust region"]}, False),
    ({"kind": "no_pii_to_support"}, True),
    ({"kind": "routes_to", "route": "support"}, True),
    ({"kind": "routes_to", "route": "security"}, False),
    ({"kind": "uses_tool", "tool": "search_v2"}, True),
    ({"kind": "uses_tool", "tool": "reranking"}, False),
    ({"kind": "max_cost_usd", "value": 0.004}, True),
    ({"kind": "max_cost_usd", "value": 0.001}, False),
    ({"kind": "max_latency_ms", "value": 2000}, True),
    ({"kind": "max_latency_ms", "value": 1000}, False),
    ({"kind": "judge", "min": "none"}, True),
    ({"kind": "judge", "min": "positive"}, False),
    ({"kind": "judge", "min": "negative"}, True),
])
def test_each_check_kind(check, passed):
    assert run_check(check, SEEN).passed is passed


def test_leaks_unknown_costs_judge_failures_and_errors_fail():
    leak = Observation(pii_to_support=2)
    assert not run_check({"kind": "no_pii_to_support"}, leak).passed
    assert "cost unknown" in run_check({"kind": "max_cost_usd", "value": 1}, Observation()).detail
    failed_judge = Observation(judge_error="timed out")
    assert "timed out" in run_check({"kind": "judge", "min": "negative"}, failed_judge).detail
    task = parse_tasks(line(checks=[{"kind": "max_latency_ms", "value": 1e9}]), "x").tasks[0]
    ok, results = grade(task, Observation(error="provider down"))
    assert not ok and results[0].detail == "run failed: provider down"


def test_a_task_passes_only_when_every_check_passes():
    task = parse_tasks(line(checks=[{"kind": "routes_to", "route": "support"},
                                    {"kind": "uses_tool", "tool": "reranking"}]), "x").tasks[0]
    ok, results = grade(task, SEEN)
    assert not ok and [r.passed for r in results] == [True, False]
