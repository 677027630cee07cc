"""Offline experiments' state: a baseline and a tree of one-change variants, with a lifecycle.

One JSON file per experiment under DATA_DIR/offline_experiments/. Running the baseline locks
the experiment: the task set's text and every step's baseline config are copied into the
state, so later edits of the task file or the flags change nothing for it. A variant changes
one parameter of one step and branches from the baseline or another variant; its effective
configuration is the chain of overrides from the baseline. Illegal transitions raise
`RuleBroken`, whose message names the rule.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from utils.flags.client import AGENT_CONFIG_KEYS
from utils.flags.overrides import (
    PARAMETERS,
    apply_overrides,
    check_step_parameter,
    config_from_snapshot,
    parameter_value,
)

BASELINE = "baseline"
STATUSES = ("draft", "baseline_pending", "running_baseline", "baseline_complete",
            "baseline_failed", "running_variant", "idle", "completed", "archived")
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"baseline_pending", "archived"}),
    "baseline_pending": frozenset({"draft", "running_baseline", "archived"}),
    "running_baseline": frozenset({"baseline_complete", "baseline_failed"}),
    "baseline_failed": frozenset({"baseline_pending", "running_baseline", "archived"}),
    "baseline_complete": frozenset({"running_variant", "completed", "archived"}),
    "running_variant": frozenset({"idle"}),
    "idle": frozenset({"running_variant", "completed", "archived"}),
    "completed": frozenset({"archived"}),
    "archived": frozenset(),
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
STATE_FOLDER = "offline_experiments"


class RuleBroken(ValueError):
    """An operation breaks a rule of offline experiments (the message names it)."""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def check_name(kind: str, name: str) -> str:
    if not _NAME.match(name or ""):
        raise RuleBroken(f"{kind} name {name!r} is not allowed: use 1-64 lower-case letters, "
                         "digits, '-', '_' or '.', starting with a letter or digit")
    return name


def transition(state: dict[str, Any], to: str, reason: str | None = None) -> None:
    """Move the experiment to `to`, or raise naming the illegal transition."""
    current = state["status"]
    if to not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (archived is final)"
        raise RuleBroken(f"experiment {state['key']} is {current}; it cannot become {to} "
                         f"(from {current} it may become: {allowed})")
    state["status"] = to
    state["reason"] = reason
    state["updated_at"] = _now()


def new_state(key: str, *, steps: list[str], tasks_path: str, context: dict[str, Any],
              repeats: int, description: str, missing: list[str]) -> dict[str, Any]:
    """A new experiment: `baseline_pending`, or `draft` when something it needs is missing."""
    check_name("experiment", key)
    if not steps:
        raise RuleBroken("an experiment needs at least one step (--steps)")
    unknown = [s for s in steps if s not in AGENT_CONFIG_KEYS]
    if unknown:
        raise RuleBroken(f"unknown step(s) {', '.join(unknown)}; steps are the config keys "
                         f"{', '.join(AGENT_CONFIG_KEYS)}")
    if len(set(steps)) != len(steps):
        raise RuleBroken(f"--steps names a step twice: {','.join(steps)}")
    if not isinstance(repeats, int) or isinstance(repeats, bool) or not 1 <= repeats <= 50:
        raise RuleBroken(f"repeats must be an integer within 1..50, got {repeats!r}")
    return {
        "key": key, "description": description, "steps": steps, "repeats": repeats,
        "context": context, "status": "draft" if missing else "baseline_pending",
        "reason": "; ".join(missing) or None, "created_at": _now(), "updated_at": _now(),
        "tasks": {"path": tasks_path, "sha256": None, "count": None, "text": None},
        "baseline_config": None, "baseline_source": None, "running": None,
        "variants": {BASELINE: {"name": BASELINE, "parent": None, "step": None,
                                "override": {}, "status": "pending", "created_at": _now(),
                                "completed_at": None, "result": None}},
    }


def is_locked(state: dict[str, Any]) -> bool:
    return state["baseline_config"] is not None and state["tasks"]["text"] is not None


def lock(state: dict[str, Any], *, tasks_text: str, sha256: str, count: int,
         configs: dict[str, dict[str, Any]], source: str) -> None:
    """Copy the task set and the baseline configs into the state (once; never replaced)."""
    if is_locked(state):
        raise RuleBroken(f"experiment {state['key']} is already locked to task set "
                         f"{state['tasks']['sha256'][:12]}; its baseline cannot change")
    state["tasks"].update(text=tasks_text, sha256=sha256, count=count)
    state["baseline_config"] = configs
    state["baseline_source"] = source


def chain(state: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The variants from the baseline's first child down to `name` (empty for the baseline)."""
    variants = state["variants"]
    if name not in variants:
        raise RuleBroken(f"experiment {state['key']} has no variant {name!r}; it has "
                         f"{', '.join(variants)}")
    path: list[dict[str, Any]] = []
    while name != BASELINE:
        variant = variants[name]
        path.append(variant)
        name = variant["parent"]
    return list(reversed(path))


def effective_overrides(state: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """{step: {param: value}}: the chain of overrides from the baseline, later ones winning."""
    merged: dict[str, dict[str, Any]] = {}
    for variant in chain(state, name):
        merged.setdefault(variant["step"], {}).update(variant["override"])
    return merged


def effective_parameters(state: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """{step: {param: value}} of every tunable parameter of the experiment's steps."""
    if state["baseline_config"] is None:
        return {}
    overrides = effective_overrides(state, name)
    out = {}
    for step in state["steps"]:
        config = apply_overrides(config_from_snapshot(state["baseline_config"][step]),
                                 overrides.get(step, {}), name)
        out[step] = {p: parameter_value(config, p) for p, spec in PARAMETERS.items()
                     if step in spec.steps}
    return out


def add_variant(state: dict[str, Any], name: str, *, step: str, param: str, value: Any,
                parent: str = BASELINE) -> dict[str, Any]:
    """A new variant changing `param` of `step` (a checked value) relative to `parent`."""
    check_name("variant", name)
    status = state["status"]
    if status in ("completed", "archived"):
        raise RuleBroken(f"experiment {state['key']} is {status}: no variant may be added "
                         "after completion")
    if state["variants"][BASELINE]["status"] != "complete" or not is_locked(state):
        raise RuleBroken(f"experiment {state['key']} is {status}: a variant needs a completed "
                         f"baseline (run `baseline {state['key']}` first)")
    if name in state["variants"]:
        raise RuleBroken(f"variant {name!r} already exists in experiment {state['key']}")
    if parent not in state["variants"]:
        raise RuleBroken(f"parent {parent!r} is not a variant of experiment {state['key']}; "
                         f"it has {', '.join(state['variants'])}")
    if step not in state["steps"]:
        raise RuleBroken(f"step {step} is not in experiment {state['key']}'s scope "
                         f"({', '.join(state['steps'])})")
    try:
        check_step_parameter(step, param)
    except ValueError as exc:
        raise RuleBroken(str(exc)) from None
    current = effective_parameters(state, parent)[step][param]
    if current == value:
        raise RuleBroken(f"{step}.{param} is already {value!r} in {parent}: a variant must "
                         "change something")
    variant = {"name": name, "parent": parent, "step": step, "override": {param: value},
               "status": "pending", "created_at": _now(), "completed_at": None, "result": None}
    state["variants"][name] = variant
    return variant


def begin_run(state: dict[str, Any], name: str, pid: int) -> None:
    """Mark `name` running (the baseline or a variant), enforcing the lifecycle."""
    variant = state["variants"].get(name)
    if variant is None:
        chain(state, name)  # raises naming the variants
    if name == BASELINE:
        if state["status"] == "draft":
            raise RuleBroken(f"experiment {state['key']} is draft: {state['reason']}")
        if state["status"] in ("baseline_complete", "idle", "completed", "archived",
                               "running_variant"):
            raise RuleBroken(f"experiment {state['key']} is {state['status']}: its baseline "
                             "has run and is locked")
        transition(state, "running_baseline")
    else:
        if state["status"] in ("completed", "archived"):
            raise RuleBroken(f"experiment {state['key']} is {state['status']}: no variant runs "
                             "after completion")
        if state["status"] not in ("baseline_complete", "idle"):
            raise RuleBroken(f"experiment {state['key']} is {state['status']}: a variant runs "
                             "only after the baseline completed")
        transition(state, "running_variant")
    variant["status"] = "running"
    state["running"] = {"variant": name, "pid": pid, "host": socket.gethostname(),
                        "started_at": _now(), "done": 0, "total": None, "updated_at": _now()}


def record_progress(state: dict[str, Any], pid: int, done: int, total: int) -> bool:
    """Note `done` of `total` runs in the running entry if process `pid` owns it."""
    running = state.get("running")
    if not running or running.get("pid") != pid:
        return False
    running.update(done=done, total=total, updated_at=_now())
    return True


def finish_run(state: dict[str, Any], name: str, result: dict[str, Any] | None,
               failure: str | None = None) -> None:
    """Record a run's result (or its failure) and leave the running state."""
    variant = state["variants"][name]
    state["running"] = None
    if failure is None:
        variant.update(status="complete", completed_at=_now(), result=result, failure=None)
    else:
        variant.update(status="failed", failure=failure,
                       result=result if result is not None else variant.get("result"))
    if name == BASELINE:
        transition(state, "baseline_complete" if failure is None else "baseline_failed",
                   failure)
    else:
        transition(state, "idle", None if failure is None else f"{name} failed: {failure}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_orphaned(state: dict[str, Any]) -> bool:
    """Whether the state says running but the process that runs it (on this host) is gone."""
    running = state.get("running")
    if not running or running.get("host", socket.gethostname()) != socket.gethostname():
        return False  # another host's process cannot be checked from here
    return not _pid_alive(int(running["pid"]))


def recover_interrupted(state: dict[str, Any]) -> bool:
    """A run whose process is gone failed; True if the state changed."""
    running = state.get("running")
    if not running or not is_orphaned(state):
        return False
    finish_run(state, running["variant"], None,
               failure=f"interrupted: process {running['pid']} stopped before the run ended")
    return True


class StateStore:
    """The experiments' JSON files in one folder, each changed under a file lock."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = Path(data_dir) / STATE_FOLDER

    def path(self, key: str) -> Path:
        return self.folder / f"{check_name('experiment', key)}.json"

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def keys(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.json")) if self.folder.exists() else []

    def load(self, key: str) -> dict[str, Any]:
        path = self.path(key)
        if not path.exists():
            known = ", ".join(self.keys()) or "none yet"
            raise RuleBroken(f"no offline experiment {key!r} in {self.folder} (known: {known}); "
                             "create it first")
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RuleBroken(f"experiment state {path} is unreadable: {exc}") from None
        if not isinstance(state, dict) or state.get("status") not in STATUSES:
            raise RuleBroken(f"experiment state {path} is not an offline experiment's state")
        return state

    def save(self, state: dict[str, Any]) -> None:
        path = self.path(state["key"])
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".tmp{os.getpid()}")
        temporary.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, path)

    def progress_saver(self, key: str, interval_s: float = 0.5) -> Callable[[int, int], None]:
        """A progress callback writing `done`/`total` of this process's run into the state
        (at most every `interval_s`, and at the last run), so every API worker sees it."""
        last = [float("-inf")]

        def save(done: int, total: int) -> None:
            now = time.monotonic()
            if done < total and now - last[0] < interval_s:
                return
            last[0] = now
            with self.editing(key) as state:
                record_progress(state, os.getpid(), done, total)

        return save

    @contextlib.contextmanager
    def editing(self, key: str, *, create: dict[str, Any] | None = None
                ) -> Iterator[dict[str, Any]]:
        """Load (or, with `create`, create) the state under a lock; saved if no error."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f"{check_name('experiment', key)}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if create is not None:
                if self.exists(key):
                    raise RuleBroken(f"offline experiment {key!r} already exists; choose another "
                                     "key or archive it")
                state = create
            else:
                state = self.load(key)
                if recover_interrupted(state):
                    self.save(state)
            yield state
            self.save(state)
