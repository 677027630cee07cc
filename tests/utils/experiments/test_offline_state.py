"""Offline experiment state: lifecycle rules, locking, the variant tree and its effective configs."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys

import pytest

from utils.experiments.offline_report import show_document
from utils.experiments.offline_state import (
    BASELINE,
    STATUSES,
    TRANSITIONS,
    RuleBroken,
    StateStore,
    add_variant,
    begin_run,
    effective_overrides,
    effective_parameters,
    finish_run,
    is_orphaned,
    lock,
    new_state,
    record_progress,
    recover_interrupted,
    transition,
)
from utils.flags.client import DEFAULT_CONFIGS
from utils.flags.overrides import snapshot_config

SNAPSHOTS = {k: snapshot_config(c) for k, c in DEFAULT_CONFIGS.items()}


def fresh(**kwargs):
    args = {"steps": ["support-agent", "security-agent"], "tasks_path": "t.jsonl",
            "context": {"plan": "paid"}, "repeats": 2, "description": "", "missing": []}
    return new_state("exp-1", **{**args, **kwargs})


def result(passes):
    return {"runs": [{"task_id": f"t{i}", "repeat": r, "passed": p, "cost_usd": 0.01,
                      "latency_ms": 100.0, "tokens": 10, "error": None}
                     for i, row in enumerate(passes) for r, p in enumerate(row)],
            "simulated": True, "modelled_offline": None, "note": None}


def with_baseline(passes=((True, True), (False, False), (True, False))):
    state = fresh()
    begin_run(state, BASELINE, pid=1)
    lock(state, tasks_text="{}", sha256="ab" * 32, count=len(passes), configs=SNAPSHOTS,
         source="test")
    finish_run(state, BASELINE, result(passes))
    return state


def test_create_is_pending_or_draft_with_the_reason():
    assert fresh()["status"] == "baseline_pending"
    draft = fresh(missing=["task set t.jsonl does not exist"])
    assert draft["status"] == "draft" and "does not exist" in draft["reason"]
    with pytest.raises(RuleBroken, match="cannot become running_baseline"):
        transition(draft, "running_baseline")


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"steps": []}, "at least one step"), ({"steps": ["billing"]}, "unknown step"),
    ({"steps": ["support-agent", "support-agent"]}, "twice"), ({"repeats": 0}, "1..50"),
])
def test_bad_definitions_are_refused(kwargs, named):
    with pytest.raises(RuleBroken, match=named):
        fresh(**kwargs)


@pytest.mark.parametrize("key", ["", "Has Space", "../escape", "x" * 65])
def test_keys_cannot_escape_the_state_folder(key, tmp_path):
    with pytest.raises(RuleBroken, match="not allowed"):
        StateStore(tmp_path).path(key)


def test_every_transition_outside_the_table_is_refused():
    for start, to in itertools.product(STATUSES, STATUSES):
        state = {**fresh(), "status": start}
        if to in TRANSITIONS[start]:
            transition(state, to)
            assert state["status"] == to
        else:
            with pytest.raises(RuleBroken, match=f"is {start}; it cannot become {to}"):
                transition(state, to)


def test_no_variant_before_the_baseline_has_run():
    state = fresh()
    with pytest.raises(RuleBroken, match="needs a completed baseline"):
        add_variant(state, "v", step="support-agent", param="max_tokens", value=10)
    with pytest.raises(RuleBroken, match="only after the baseline completed"):
        state["variants"]["v"] = {"name": "v", "parent": BASELINE, "step": "support-agent",
                                  "override": {"max_tokens": 1}, "status": "pending"}
        begin_run(state, "v", pid=1)


def test_variant_tree_chains_overrides_from_the_baseline():
    state = with_baseline()
    add_variant(state, "short", step="support-agent", param="max_tokens", value=100)
    add_variant(state, "short-mini", step="support-agent", param="model",
                value="openai:gpt-4o", parent="short")
    add_variant(state, "shorter", step="support-agent", param="max_tokens", value=50,
                parent="short-mini")
    assert effective_overrides(state, "shorter") == {
        "support-agent": {"max_tokens": 50, "model": "openai:gpt-4o"}}
    params = effective_parameters(state, "shorter")["support-agent"]
    assert params["max_tokens"] == 50 and params["model"] == "openai:gpt-4o"
    assert params["tools"] == list(DEFAULT_CONFIGS["support-agent"].tools)
    assert effective_parameters(state, BASELINE)["support-agent"]["max_tokens"] == 800


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"name": "baseline"}, "already exists"), ({"parent": "ghost"}, "parent 'ghost'"),
    ({"step": "supervisor-agent"}, "not in experiment exp-1's scope"),
    ({"param": "pii_policy", "value": "strict"}, "read only by security-agent"),
    ({"value": 800}, "already 800 in baseline: a variant must change something"),
    ({"name": "Bad Name"}, "not allowed"),
])
def test_bad_variants_are_refused_naming_the_rule(kwargs, named):
    state = with_baseline()
    args = {"name": "v", "step": "support-agent", "param": "max_tokens", "value": 10,
            "parent": BASELINE, **kwargs}
    with pytest.raises(RuleBroken, match=named):
        add_variant(state, args.pop("name"), **args)


def test_nothing_runs_or_is_added_after_completion_and_archive_is_final():
    state = with_baseline()
    add_variant(state, "v", step="support-agent", param="max_tokens", value=10)
    transition(state, "completed")
    with pytest.raises(RuleBroken, match="after completion"):
        add_variant(state, "w", step="support-agent", param="max_tokens", value=20)
    with pytest.raises(RuleBroken, match="after completion"):
        begin_run(state, "v", pid=1)
    transition(state, "archived")
    with pytest.raises(RuleBroken, match="archived is final"):
        transition(state, "completed")


def test_the_lock_is_never_replaced_and_the_baseline_never_reruns():
    state = with_baseline()
    with pytest.raises(RuleBroken, match="already locked"):
        lock(state, tasks_text="", sha256="", count=0, configs={}, source="")
    with pytest.raises(RuleBroken, match="has run and is locked"):
        begin_run(state, BASELINE, pid=1)


def test_failed_baseline_can_be_retried_and_runs_are_recorded():
    state = fresh()
    begin_run(state, BASELINE, pid=1)
    finish_run(state, BASELINE, None, failure="2 of 6 runs failed")
    assert state["status"] == "baseline_failed" and state["reason"] == "2 of 6 runs failed"
    begin_run(state, BASELINE, pid=1)
    assert state["status"] == "running_baseline"


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip())


def test_an_interrupted_run_is_recovered_when_its_process_is_gone():
    state = with_baseline()
    add_variant(state, "v", step="support-agent", param="max_tokens", value=10)
    begin_run(state, "v", pid=_dead_pid())
    assert recover_interrupted(state)
    assert state["status"] == "idle" and "interrupted" in state["variants"]["v"]["failure"]
    begin_run(state, "v", pid=1)  # pid 1 is alive: a real run is never taken over
    assert not recover_interrupted(state) and state["status"] == "running_variant"


def test_another_hosts_run_is_never_declared_interrupted_from_here():
    state = with_baseline()
    add_variant(state, "v", step="support-agent", param="max_tokens", value=10)
    begin_run(state, "v", pid=_dead_pid())
    state["running"]["host"] = "another-host"  # its pid means nothing on this one
    assert not is_orphaned(state) and not recover_interrupted(state)
    state["running"]["host"] = socket.gethostname()
    assert is_orphaned(state) and recover_interrupted(state)


def test_progress_is_saved_for_the_running_process_only_and_throttled(tmp_path):
    store = StateStore(tmp_path)
    state = with_baseline()
    add_variant(state, "v", step="support-agent", param="max_tokens", value=10)
    begin_run(state, "v", pid=os.getpid())
    with store.editing("exp-1", create=state):
        pass
    save = store.progress_saver("exp-1", interval_s=60)
    save(0, 6)
    save(3, 6)  # within the interval: not written
    assert (store.load("exp-1")["running"]["done"], store.load("exp-1")["running"]["total"]) \
        == (0, 6)
    save(6, 6)  # the last one always is
    assert store.load("exp-1")["running"]["done"] == 6
    assert not record_progress(state, os.getpid() + 1, 1, 6)  # another process's run: no


def test_store_round_trip_and_clear_errors(tmp_path):
    store = StateStore(tmp_path)
    with store.editing("exp-1", create=fresh()):
        pass
    with pytest.raises(RuleBroken, match="already exists"), store.editing("exp-1",
                                                                          create=fresh()):
        pass
    assert store.load("exp-1")["status"] == "baseline_pending" and store.keys() == ["exp-1"]
    with pytest.raises(RuleBroken, match="no offline experiment 'other'.*known: exp-1"):
        store.load("other")
    store.path("exp-1").write_text("{broken")
    with pytest.raises(RuleBroken, match="unreadable"):
        store.load("exp-1")
    with pytest.raises(RuleBroken, match="not an offline experiment"):
        store.path("exp-1").write_text(json.dumps({"status": "odd"}))
        store.load("exp-1")


def test_show_document_pairs_variants_with_parent_and_baseline():
    state = with_baseline(((True, True), (False, False), (True, False)))
    add_variant(state, "v", step="support-agent", param="max_tokens", value=10)
    add_variant(state, "w", step="support-agent", param="max_tokens", value=20, parent="v")
    for name, passes in (("v", ((True, True), (True, True), (True, True))),
                         ("w", ((True, True), (True, False), (True, True)))):
        begin_run(state, name, pid=1)
        finish_run(state, name, result(passes))
    doc = show_document(state)
    assert set(doc) >= {"key", "status", "steps", "repeats", "tasks", "variants"}
    assert doc["tasks"] == {"path": "t.jsonl", "sha256": "ab" * 32, "count": 3}
    base, v, w = doc["variants"]
    assert base["name"] == BASELINE and base["comparison"] is None
    assert base["pass_rate"] == pytest.approx(0.5) and base["tasks"] == {
        "total": 6, "passed": 3, "failed": 3}
    assert v["vs_baseline"] == pytest.approx(0.5) and v["comparison"]["against"] == BASELINE
    assert v["comparison"]["only_this_passed"] == 3 and v["comparison"]["p_better"] > 0.5
    assert [f["task_id"] for f in v["comparison"]["flipped"]] == ["t1", "t2"]
    assert w["comparison"]["against"] == "v" and w["comparison"]["difference"] < 0
    assert w["comparison_baseline"]["against"] == BASELINE
    assert w["effective"]["support-agent"]["max_tokens"] == 20 and w["override"] == {
        "max_tokens": 20}
    for key in ("name", "parent", "step", "override", "effective", "status", "pass_rate",
                "vs_baseline", "tasks", "completed_at", "comparison", "cost_usd", "latency_ms"):
        assert key in w
    assert set(w["comparison"]) >= {"against", "p_better", "difference", "ci"}
