"""Runs an offline experiment's tasks through the real graph, beside the composition root.

Every task of the locked task set goes through `ChatService.run` in-process: the agents are
served the experiment's locked baseline configs with the variant's chain of overrides applied
per step, each repeat with its own simulator seed, a bounded number at once. Each run is
recorded in the event store marked with the experiment and variant (online verdicts exclude
marked runs), then graded by the task's checks. State and statistics live in utils/.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agents.models import ModelCache
from agents.simulated import MODELLED_PARAMETERS
from api.chat_service import ChatFailed, ChatService
from api.schemas import ChatRequest
from utils.experiments.offline_state import (
    BASELINE,
    RuleBroken,
    effective_overrides,
    effective_parameters,
    lock,
)
from utils.experiments.offline_tasks import Observation, TaskSet, grade, load_tasks, parse_tasks
from utils.flags.baseline import Baseline, production_baseline
from utils.flags.client import AgentConfig
from utils.flags.overrides import (
    PARAMETERS,
    ConfigOverrides,
    config_from_snapshot,
    snapshot_config,
    split_model,
)
from utils.providers import PARAMETER_NAMES, PROVIDERS
from utils.settings import Settings
from utils.telemetry.event_store import RunMark

DEFAULT_CONCURRENCY = 8
DEFAULT_USER = "offline-experiment"


class Judge(Protocol):
    """What grading needs of a judge (tools.traffic.judge provides the offline and LLM ones)."""

    async def judge(self, question: str, answer: str) -> Any: ...


JudgeFactory = Callable[[int], Judge]  # a judge for one repeat's seed
Progress = Callable[[int, int], None]  # (runs done, runs in total)


class PinnedConfigs:
    """Serves the locked baseline snapshot to every context (no flag evaluation)."""

    def __init__(self, snapshots: Mapping[str, Mapping[str, Any]]) -> None:
        self._configs = {key: config_from_snapshot(s) for key, s in snapshots.items()}

    def agent_config(self, config_key: str, context: Any) -> AgentConfig:
        return self._configs[config_key]


def context_of(state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(user key, targeting attributes) of the experiment's context."""
    attributes = dict(state["context"])
    return str(attributes.pop("key", DEFAULT_USER)), attributes


def read_baseline(state: dict[str, Any], settings: Settings) -> Baseline:
    """What production serves the experiment's context now, outside online experiments."""
    user_key, attributes = context_of(state)
    return production_baseline(settings, user_key, attributes)


def lock_baseline(state: dict[str, Any], settings: Settings) -> TaskSet:
    """Copy the task set and the production baseline into the state (the experiment's lock)."""
    tasks = load_tasks(state["tasks"]["path"])
    baseline = read_baseline(state, settings)
    if baseline.missing:
        raise RuleBroken(f"cannot lock a baseline: {baseline.missing}")
    lock(state, tasks_text=tasks.text, sha256=tasks.sha256, count=tasks.count,
         configs={k: snapshot_config(c) for k, c in baseline.configs.items()},
         source=baseline.source)
    return tasks


def honesty_note(state: dict[str, Any], name: str, simulated: bool) -> tuple[bool | None, str | None]:
    """Whether the variant's own change can act in this run, and what to tell people if not."""
    if name == BASELINE:
        return None, None
    variant = state["variants"][name]
    (param, _), = variant["override"].items()
    if PARAMETERS[param].where == "parameters":
        provider, _ = split_model(effective_parameters(state, name)[variant["step"]]["model"])
        accepted = PROVIDERS[provider].parameters if provider in PROVIDERS else {}
        if PARAMETER_NAMES.get(param) not in accepted:
            return False, (f"no effect: {provider}'s API does not take {param}, so "
                           "agents/models.py never sends it, live or offline")
    if simulated and PARAMETERS[param].acts_in == "model" and param not in MODELLED_PARAMETERS:
        return False, (f"no modelled effect offline: the simulator does not model {param}; "
                       "only its token count (cost) can differ")
    return True, None


@dataclass(frozen=True)
class _Job:
    task_index: int
    repeat: int


def _support_input(state: dict[str, Any], message: str,
                   history: list[dict[str, str]]) -> list[str]:
    """The texts the support agent read (nothing if the request was refused)."""
    if state.get("refused"):
        return []
    if "safe_message" in state:
        return [state["safe_message"], *(t["content"] for t in state.get("safe_history", []))]
    return [message, *(t["content"] for t in history)]


async def run_variant(service: ChatService, state: dict[str, Any], name: str, *,
                      judges: JudgeFactory, concurrency: int = DEFAULT_CONCURRENCY,
                      progress: Progress | None = None) -> dict[str, Any]:
    """Run every task × repeat for variant `name` (the baseline included) and grade them."""
    if state["baseline_config"] is None or state["tasks"]["text"] is None:
        raise RuleBroken(f"experiment {state['key']} is not locked: run its baseline first")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    tasks = parse_tasks(state["tasks"]["text"], f"{state['key']} (locked task set)").tasks
    key, repeats = state["key"], state["repeats"]
    overrides = ConfigOverrides(f"{key}/{name}", effective_overrides(state, name))
    pinned = PinnedConfigs(state["baseline_config"])
    user_key, attributes = context_of(state)
    seeds = [service.settings.SIM_SEED + r for r in range(repeats)]
    models = [service.models if r == 0 else
              ModelCache(service.settings.model_copy(update={"SIM_SEED": seeds[r]}))
              for r in range(repeats)]
    judge_for = [judges(seed) for seed in seeds]
    jobs = [_Job(i, r) for r in range(repeats) for i in range(len(tasks))]
    gate = asyncio.Semaphore(concurrency)
    done = 0
    graph_seconds = 0.0

    async def one(job: _Job) -> dict[str, Any]:
        nonlocal done, graph_seconds
        task = tasks[job.task_index]
        request = ChatRequest(user_id=user_key, message=task.message,
                              user_context={**attributes, **task.user_context},
                              history=list(task.history))
        mark = RunMark(key, name, task.id, job.repeat)
        async with gate:
            started = time.perf_counter()
            try:
                outcome = await service.run(request, configs=pinned, overrides=overrides,
                                            models=models[job.repeat], mark=mark)
            except ChatFailed as exc:
                graph_seconds += time.perf_counter() - started
                seen, request_id, simulated, tokens = Observation(error=str(exc)), \
                    exc.request_id, None, 0
            else:
                graph_seconds += time.perf_counter() - started
                response = outcome.response
                support = next((a for a in response.agents if a.agent == "support"), None)
                texts = _support_input(outcome.state, task.message, list(task.history))
                verdict, judge_error = None, None
                if task.needs_judge:
                    judged = await judge_for[job.repeat].judge(task.message, response.response)
                    if getattr(judged, "failed", False):
                        judge_error = getattr(judged, "error", None) or "judge failed"
                    else:
                        verdict = judged.verdict
                seen = Observation(
                    response=response.response, route=response.route,
                    tools_used=tuple(support.tools_used if support else ()),
                    cost_usd=response.totals.cost_usd, latency_ms=response.totals.duration_ms,
                    pii_to_support=sum(service.pii.count_exposed(t) for t in texts),
                    judge_verdict=verdict, judge_error=judge_error)
                request_id, simulated = response.request_id, response.simulated
                tokens = response.totals.total_tokens
        passed, checks = grade(task, seen)
        done += 1
        if progress is not None:
            progress(done, len(jobs))
        return {"task_id": task.id, "repeat": job.repeat, "seed": seeds[job.repeat],
                "passed": passed, "request_id": request_id, "route": seen.route,
                "tools_used": list(seen.tools_used), "cost_usd": seen.cost_usd,
                "latency_ms": round(seen.latency_ms, 3), "tokens": tokens,
                "simulated": simulated, "error": seen.error,
                "checks": [{"kind": c.kind, "passed": c.passed, "detail": c.detail}
                           for c in checks]}

    started = time.perf_counter()
    runs = await asyncio.gather(*(one(job) for job in jobs))
    elapsed = time.perf_counter() - started
    simulated = all(run["simulated"] is not False for run in runs)
    modelled, note = honesty_note(state, name, simulated)
    return {"runs": runs, "simulated": simulated, "modelled_offline": modelled, "note": note,
            "errors": sum(1 for run in runs if run["error"]),
            "elapsed_s": round(elapsed, 3), "graph_s": round(graph_seconds, 3),
            "concurrency": concurrency}
