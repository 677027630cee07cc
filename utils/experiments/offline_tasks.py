"""Task sets of offline experiments: JSONL, one task a line, and the checks that pass a task.

A task is `{"id", "message", "history"?, "user_context"?, "tags"?, "checks": [...]}`; it
passes when every check passes. The format is documented in docs/OFFLINE_EXPERIMENTS.md.
Checks are pure functions of an `Observation` of one run (what the runner saw).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROUTES = ("security", "support")
JUDGE_VERDICTS = ("negative", "none", "positive")  # worst to best
CHECK_FIELDS: dict[str, tuple[str, ...]] = {
    "mentions_any": ("terms",),
    "no_pii_to_support": (),
    "routes_to": ("route",),
    "uses_tool": ("tool",),
    "max_cost_usd": ("value",),
    "max_latency_ms": ("value",),
    "judge": ("min",),
}
_TASK_FIELDS = frozenset({"id", "message", "history", "user_context", "tags", "checks"})
DEFAULT_TASKS_PATH = Path(__file__).resolve().parents[2] / "kb" / "tasks" / "default.jsonl"


class TaskSetError(ValueError):
    """A task file is unreadable or a line is not a valid task (the message names the line)."""


@dataclass(frozen=True)
class Task:
    id: str
    message: str
    checks: tuple[dict[str, Any], ...]
    history: tuple[dict[str, str], ...] = ()
    user_context: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    @property
    def needs_judge(self) -> bool:
        return any(c["kind"] == "judge" for c in self.checks)


@dataclass(frozen=True)
class TaskSet:
    tasks: tuple[Task, ...]
    text: str  # the file as read: a locked experiment keeps this copy
    sha256: str
    path: str

    @property
    def count(self) -> int:
        return len(self.tasks)


def _check_check(where: str, check: Any) -> dict[str, Any]:
    if not isinstance(check, dict) or "kind" not in check:
        raise TaskSetError(f"{where}: a check must be an object with a `kind`, got {check!r}")
    kind = check["kind"]
    if kind not in CHECK_FIELDS:
        raise TaskSetError(f"{where}: unknown check kind {kind!r}; expected one of "
                           f"{', '.join(CHECK_FIELDS)}")
    needed = set(CHECK_FIELDS[kind])
    extra, missing = set(check) - needed - {"kind"}, needed - set(check)
    if extra or missing:
        raise TaskSetError(f"{where}: check {kind} takes {sorted(needed) or 'no fields'}; "
                           f"missing {sorted(missing)}, unknown {sorted(extra)}")
    if kind == "mentions_any":
        terms = check["terms"]
        if not isinstance(terms, list) or not terms or not all(
                isinstance(t, str) and t.strip() for t in terms):
            raise TaskSetError(f"{where}: mentions_any.terms must be a non-empty list of text")
    elif kind == "routes_to" and check["route"] not in ROUTES:
        raise TaskSetError(f"{where}: routes_to.route must be one of {', '.join(ROUTES)}")
    elif kind == "uses_tool" and not (isinstance(check["tool"], str) and check["tool"]):
        raise TaskSetError(f"{where}: uses_tool.tool must name a tool")
    elif kind in ("max_cost_usd", "max_latency_ms"):
        value = check["value"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise TaskSetError(f"{where}: {kind}.value must be a positive number, got {value!r}")
    elif kind == "judge" and check["min"] not in JUDGE_VERDICTS:
        raise TaskSetError(f"{where}: judge.min must be one of {', '.join(JUDGE_VERDICTS)}")
    return dict(check)


def _parse_task(where: str, raw: Any) -> Task:
    if not isinstance(raw, dict):
        raise TaskSetError(f"{where}: a task must be a JSON object")
    unknown = set(raw) - _TASK_FIELDS
    if unknown:
        raise TaskSetError(f"{where}: unknown field(s) {sorted(unknown)}; a task has "
                           f"{sorted(_TASK_FIELDS)}")
    task_id, message = raw.get("id"), raw.get("message")
    if not isinstance(task_id, str) or not task_id.strip():
        raise TaskSetError(f"{where}: `id` must be non-empty text")
    if not isinstance(message, str) or not message.strip():
        raise TaskSetError(f"{where} ({task_id}): `message` must be non-empty text")
    history = raw.get("history", [])
    if not isinstance(history, list) or not all(
            isinstance(t, dict) and t.get("role") in ("user", "assistant")
            and isinstance(t.get("content"), str) and set(t) == {"role", "content"}
            for t in history):
        raise TaskSetError(f"{where} ({task_id}): `history` must be a list of "
                           '{"role": "user"|"assistant", "content": text}')
    context = raw.get("user_context", {})
    if not isinstance(context, dict):
        raise TaskSetError(f"{where} ({task_id}): `user_context` must be an object")
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise TaskSetError(f"{where} ({task_id}): `tags` must be a list of text")
    checks = raw.get("checks")
    if not isinstance(checks, list) or not checks:
        raise TaskSetError(f"{where} ({task_id}): `checks` must be a non-empty list")
    return Task(id=task_id, message=message,
                checks=tuple(_check_check(f"{where} ({task_id})", c) for c in checks),
                history=tuple(dict(t) for t in history), user_context=dict(context),
                tags=tuple(tags))


def parse_tasks(text: str, source: str) -> TaskSet:
    """The tasks of JSONL `text` (blank lines skipped); `source` names it in errors."""
    tasks: list[Task] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskSetError(f"{where}: not JSON ({exc.msg})") from None
        task = _parse_task(where, raw)
        if task.id in seen:
            raise TaskSetError(f"{where}: task id {task.id!r} appears twice")
        seen.add(task.id)
        tasks.append(task)
    if not tasks:
        raise TaskSetError(f"{source}: no tasks")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return TaskSet(tuple(tasks), text, digest, source)


def load_tasks(path: Path) -> TaskSet:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskSetError(f"cannot read task file {path}: {exc}") from None
    return parse_tasks(text, str(path))


@dataclass(frozen=True)
class Observation:
    """What one run of a task produced, as the checks read it."""

    response: str = ""
    route: str | None = None
    tools_used: tuple[str, ...] = ()
    cost_usd: float | None = None
    latency_ms: float = 0.0
    pii_to_support: int = 0  # strict-policy entities in what the support agent read
    judge_verdict: str | None = None
    judge_error: str | None = None
    error: str | None = None  # the run failed


@dataclass(frozen=True)
class CheckResult:
    kind: str
    passed: bool
    detail: str


def run_check(check: Mapping[str, Any], seen: Observation) -> CheckResult:
    """One check against one run."""
    kind = check["kind"]
    if seen.error is not None:
        return CheckResult(kind, False, f"run failed: {seen.error}")
    if kind == "mentions_any":
        text = seen.response.casefold()
        hits = [t for t in check["terms"] if t.casefold() in text]
        return CheckResult(kind, bool(hits), f"mentions {hits}" if hits else
                           f"mentions none of {check['terms']}")
    if kind == "no_pii_to_support":
        return CheckResult(kind, seen.pii_to_support == 0,
                           f"{seen.pii_to_support} PII entities reached the support agent")
    if kind == "routes_to":
        return CheckResult(kind, seen.route == check["route"], f"routed to {seen.route}")
    if kind == "uses_tool":
        return CheckResult(kind, check["tool"] in seen.tools_used,
                           f"tools used: {list(seen.tools_used)}")
    if kind == "max_cost_usd":
        if seen.cost_usd is None:
            return CheckResult(kind, False, "cost unknown (a model without a price)")
        return CheckResult(kind, seen.cost_usd <= check["value"],
                           f"cost ${seen.cost_usd:.6f} (limit ${check['value']})")
    if kind == "max_latency_ms":
        return CheckResult(kind, seen.latency_ms <= check["value"],
                           f"latency {seen.latency_ms:.0f} ms (limit {check['value']} ms)")
    # judge
    if seen.judge_verdict is None:
        return CheckResult(kind, False, f"judge failed: {seen.judge_error or 'no verdict'}")
    ok = JUDGE_VERDICTS.index(seen.judge_verdict) >= JUDGE_VERDICTS.index(check["min"])
    return CheckResult(kind, ok, f"judge said {seen.judge_verdict} (min {check['min']})")


def grade(task: Task, seen: Observation) -> tuple[bool, list[CheckResult]]:
    """Whether the run passes the task (every check passes), with each check's result."""
    results = [run_check(c, seen) for c in task.checks]
    return all(r.passed for r in results), results
