"""Starting an offline experiment's run from the API, the same way whichever worker is asked.

A run takes minutes of CPU and its state must be the same for every API worker and for the
command line, so it is not run inside the worker that was asked: the worker starts the command
line's own `baseline KEY` / `run KEY NAME` in a process of its own (a new session, so it
outlives a worker restart) and answers once that process has claimed the run. Claiming
happens only in the state file, under its lock (`StateStore.editing` + `begin_run`), so two
workers, or a worker and a terminal, can never start the same run twice: the loser's process
exits with the rule it broke, answered 409. Progress and results are written to the state file
by the running process; GET /offline-experiments/{key} on any worker reads them there.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from utils.experiments.offline_state import BASELINE, StateStore, begin_run

ROOT = Path(__file__).resolve().parents[1]
CLAIM_TIMEOUT_S = 120.0  # the run's process imports the app and reads the flags first


class RunNotStarted(RuntimeError):
    """The run's process did not claim the run; `status_code` and the message say why."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


def command(key: str, name: str, concurrency: int) -> list[str]:
    """The command line that runs `name` (the baseline or a variant) of experiment `key`."""
    verb = ["baseline", key] if name == BASELINE else ["run", key, name]
    return [sys.executable, "-m", "tools.offline_experiment", *verb,
            "--concurrency", str(concurrency)]


def start_run(store: StateStore, key: str, name: str, concurrency: int,
              env: dict[str, str] | None = None) -> dict[str, Any]:
    """Start the run in its own process; returns once it runs (or already finished).

    Raises RuleBroken (409) when the state forbids it now, RunNotStarted when its process
    gave up or lost the race for the claim."""
    trial = copy.deepcopy(store.load(key))
    if trial["status"] != "draft":  # (a draft's baseline may start once what it lacked is there)
        begin_run(trial, name, os.getpid())  # the obvious refusals, without a process
    store.folder.mkdir(parents=True, exist_ok=True)
    handle, log_name = tempfile.mkstemp(prefix=f"{key}.{name}.", suffix=".log", dir=store.folder)
    with os.fdopen(handle, "wb") as log:
        process = subprocess.Popen(command(key, name, concurrency), cwd=ROOT,
                                   env=env if env is not None else dict(os.environ),
                                   stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    threading.Thread(target=process.wait, name=f"offline-run-{process.pid}",
                     daemon=True).start()  # reaps it when it ends
    deadline = time.monotonic() + CLAIM_TIMEOUT_S
    while True:
        code = process.poll()
        state = store.load(key)
        running = state.get("running") or {}
        if running.get("pid") == process.pid or code == 0:
            return {"key": key, "variant": name, "pid": process.pid, "status": state["status"],
                    "running": running or None, "log": log_name, "started_by": os.getpid()}
        if code is not None:
            raise RunNotStarted(409 if code == 2 else 500, _reason(Path(log_name), code))
        if time.monotonic() > deadline:
            process.kill()
            raise RunNotStarted(504, f"the run's process {process.pid} did not claim "
                                     f"{key}/{name} within {CLAIM_TIMEOUT_S:g} s (log {log_name})")
        time.sleep(0.05)


def _reason(log: Path, code: int) -> str:
    """The error line the command line printed, else the end of its output."""
    text = log.read_text(encoding="utf-8", errors="replace").strip()
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    if errors:
        return errors[-1].removeprefix("error:").strip()
    return f"the run's process exited with code {code}: {text[-500:] or 'no output'}"

