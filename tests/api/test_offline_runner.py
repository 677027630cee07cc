"""The offline runner: tasks through the real graph with per-step overrides, marked in the store."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from api.composition import build_service
from api.offline_runner import honesty_note, lock_baseline, run_variant
from utils.experiments.offline_state import (
    BASELINE,
    add_variant,
    begin_run,
    finish_run,
    new_state,
)
from utils.settings import get_settings

TASKS = [
    {"id": "q-ppo", "message": "What does the clipping in PPO's objective prevent?",
     "checks": [{"kind": "routes_to", "route": "support"},
                {"kind": "uses_tool", "tool": "search_v2"}]},
    {"id": "pii-org", "message": "I work at Northwind Analytics GmbH as a data scientist; how "
     "does actor-critic reduce variance?",
     "checks": [{"kind": "routes_to", "route": "security"}, {"kind": "no_pii_to_support"}]},
    {"id": "judged", "message": "What is the Q-learning update rule?",
     "checks": [{"kind": "judge", "min": "negative"}]},
]


class CountingJudge:
    def __init__(self, seed):
        self.seed, self.calls = seed, 0

    async def judge(self, question, answer):
        self.calls += 1
        return type("R", (), {"verdict": "positive" if answer else "negative",
                              "failed": False})()


@pytest.fixture
def experiment(flags_file, tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    state = new_state("exp", steps=["support-agent", "security-agent"], tasks_path=str(path),
                      context={"key": "evaluator", "country": "US", "plan": "paid"},
                      repeats=2, description="", missing=[])
    service = build_service(get_settings())
    yield state, service, path
    service.close()


def _run(service, state, name, judges=CountingJudge):
    begin_run(state, name, pid=1)
    result = asyncio.run(run_variant(service, state, name, judges=judges, concurrency=3))
    finish_run(state, name, result)
    return result


def test_baseline_and_variants_run_through_the_graph_and_are_marked(experiment):
    state, service, path = experiment
    lock_baseline(state, get_settings())
    path.write_text("")  # the experiment keeps its locked copy
    base = _run(service, state, BASELINE)
    assert len(base["runs"]) == 6 and base["errors"] == 0 and base["simulated"] is True
    by_task = {r["task_id"]: r for r in base["runs"] if r["repeat"] == 0}
    assert by_task["q-ppo"]["passed"] and "search_v2" in by_task["q-ppo"]["tools_used"]
    # The standard flags serve basic redaction to other-paid users: the organisation leaks.
    assert not by_task["pii-org"]["passed"]
    assert {r["seed"] for r in base["runs"]} == {42, 43}

    add_variant(state, "strict", step="security-agent", param="pii_policy", value="strict")
    add_variant(state, "v1", step="support-agent", param="tools", value=["search_v1"],
                parent="strict")
    strict = _run(service, state, "strict")
    assert all(r["passed"] for r in strict["runs"] if r["task_id"] == "pii-org")
    v1 = _run(service, state, "v1")
    assert not any(r["passed"] for r in v1["runs"] if r["task_id"] == "q-ppo")
    assert all(r["passed"] for r in v1["runs"] if r["task_id"] == "pii-org")  # inherited

    service.store.close()
    conn = sqlite3.connect(service.store.path)
    marks = conn.execute("SELECT variant, COUNT(*) FROM marked_runs GROUP BY variant").fetchall()
    assert dict(marks) == {"baseline": 6, "strict": 6, "v1": 6}
    exposures = conn.execute(
        "SELECT e.variation_key, e.in_experiment FROM exposures e JOIN marked_runs m "
        "USING (request_id) WHERE m.variant = 'v1' AND e.config_key = 'support-agent'").fetchall()
    assert exposures and all(vk == "other-paid@exp/v1" and not ie for vk, ie in exposures)
    unmarked = conn.execute("SELECT COUNT(*) FROM requests WHERE request_id NOT IN "
                            "(SELECT request_id FROM marked_runs)").fetchone()[0]
    assert unmarked == 0


def test_model_override_reaches_the_model_calls(experiment):
    state, service, _ = experiment
    lock_baseline(state, get_settings())
    _run(service, state, BASELINE)
    add_variant(state, "haiku", step="support-agent", param="model",
                value="anthropic:claude-haiku-4-5")
    result = _run(service, state, "haiku")
    assert honesty_note(state, "haiku", True) == (True, None)
    service.store.close()
    models = sqlite3.connect(service.store.path).execute(
        "SELECT DISTINCT ev.model FROM events ev JOIN marked_runs m USING (request_id) "
        "WHERE m.variant = 'haiku' AND ev.agent = 'support'").fetchall()
    assert models == [("claude-haiku-4-5",)]
    assert result["modelled_offline"] is True


def test_unmodelled_parameters_are_reported_as_such(experiment):
    state, service, _ = experiment
    lock_baseline(state, get_settings())
    _run(service, state, BASELINE)
    add_variant(state, "prompt", step="support-agent", param="instructions", value="Be brief.")
    add_variant(state, "terse", step="support-agent", param="verbosity", value="low")
    result = _run(service, state, "prompt")
    assert result["modelled_offline"] is False
    assert result["note"].startswith("no modelled effect offline")
    assert honesty_note(state, "terse", False)[1].startswith(
        "no effect: openai's API does not take verbosity")
    assert honesty_note(state, "prompt", False) == (True, None)  # live models read prompts


def test_a_failing_provider_is_a_failed_run_not_a_crash(experiment, monkeypatch):
    state, service, _ = experiment
    lock_baseline(state, get_settings())

    async def broken(*args, **kwargs):
        raise RuntimeError("provider down")

    from agents import support
    monkeypatch.setattr(support._agents, "get", lambda *a, **k: type(
        "A", (), {"ainvoke": staticmethod(broken)})())
    result = _run(service, state, BASELINE)
    assert result["errors"] == 6
    assert all(not r["passed"] and "failed" in r["error"] for r in result["runs"])
