"""Offline experiments: a baseline and a tree of one-change variants over a locked task set.

    python -m tools.offline_experiment create KEY --steps STEP[,STEP] --tasks PATH [--context JSON] [--repeats N] [--description TEXT]
    python -m tools.offline_experiment baseline KEY
    python -m tools.offline_experiment variant KEY NAME --step STEP --set PARAM=VALUE [--parent NAME]
    python -m tools.offline_experiment run KEY NAME
    python -m tools.offline_experiment show KEY [--json]
    python -m tools.offline_experiment complete KEY | archive KEY
    python -m tools.offline_experiment promote KEY NAME [--dry-run] [--backend local|launchdarkly]

State lives under DATA_DIR/offline_experiments/. Errors name the rule that was broken and
exit with status 2. See docs/OFFLINE_EXPERIMENTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agents.tools.registry import KNOWN_TOOLS
from api.composition import build_service
from api.offline_runner import DEFAULT_CONCURRENCY, DEFAULT_USER, lock_baseline, read_baseline
from api.offline_runner import run_variant as run_tasks
from tools.offline_promote import PROMOTE_ERRORS, add_promote_parser, cmd_promote
from tools.traffic.judge import make_judge
from utils.experiments.offline_report import show_document
from utils.experiments.offline_state import (
    BASELINE,
    RuleBroken,
    StateStore,
    add_variant,
    begin_run,
    finish_run,
    is_locked,
    new_state,
    transition,
)
from utils.experiments.offline_tasks import DEFAULT_TASKS_PATH, TaskSetError, load_tasks
from utils.flags.baseline import BaselineError
from utils.flags.overrides import OverrideError, parse_value, step_parameters
from utils.settings import get_settings

DEFAULT_CONTEXT = {"key": DEFAULT_USER, "country": "US", "plan": "paid"}
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


class UsageError(ValueError):
    """A command-line value is malformed."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.offline_experiment",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="define an experiment (baseline_pending or draft)")
    create.add_argument("key")
    create.add_argument("--steps", required=True, help="inference steps (config keys), comma-separated")
    create.add_argument("--tasks", required=True, type=Path,
                        help=f"task set, JSONL (the default set is {DEFAULT_TASKS_PATH.name} "
                        "under kb/tasks/)")
    create.add_argument("--context", default=json.dumps(DEFAULT_CONTEXT),
                        help=f"the context production serves, JSON (default {DEFAULT_CONTEXT})")
    create.add_argument("--repeats", type=int, default=1, help="runs per task, seeds differ")
    create.add_argument("--description", default="")
    for name, text in (("baseline", "run the baseline and lock the experiment"),
                       ("show", "variants, pass rates and comparisons"),
                       ("complete", "close the experiment to new variants"),
                       ("archive", "archive the experiment")):
        command = sub.add_parser(name, help=text)
        command.add_argument("key")
        if name == "show":
            command.add_argument("--json", action="store_true", help="the JSON document")
        if name == "baseline":
            command.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    variant = sub.add_parser("variant", help="add a variant changing one parameter of one step")
    variant.add_argument("key")
    variant.add_argument("name")
    variant.add_argument("--step", required=True)
    variant.add_argument("--set", action="append", required=True, metavar="PARAM=VALUE")
    variant.add_argument("--parent", default=BASELINE)
    run = sub.add_parser("run", help="run a variant over the locked task set")
    run.add_argument("key")
    run.add_argument("name")
    run.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    add_promote_parser(sub)
    return parser


def _context(raw: str) -> dict[str, Any]:
    try:
        context = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--context is not JSON ({exc.msg}): {raw!r}") from None
    if not isinstance(context, dict) or not all(isinstance(k, str) for k in context):
        raise UsageError(f"--context must be a JSON object of attributes, got {raw!r}")
    return context


def _missing(state: dict[str, Any]) -> list[str]:
    """What stops the baseline from running now."""
    missing = []
    if not Path(state["tasks"]["path"]).exists():
        missing.append(f"task set {state['tasks']['path']} does not exist")
    baseline = read_baseline(state, get_settings())
    if baseline.missing:
        missing.append(baseline.missing)
    return missing


def _print_baseline(state: dict[str, Any]) -> None:
    baseline = read_baseline(state, get_settings())
    out.print(f"baseline ({baseline.source}):")
    for step in state["steps"]:
        config = baseline.configs[step]
        shown = {k: v for k, v in step_parameters(config).items() if k != "instructions"}
        out.print(f"  {step}: variation {config.variation_key} {shown}")


def cmd_create(store: StateStore, args: argparse.Namespace) -> int:
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    path = args.tasks.resolve()
    count = None
    if path.exists():
        count = load_tasks(path).count  # a broken file is refused now, not at baseline
    state = new_state(args.key, steps=steps, tasks_path=str(path), context=_context(args.context),
                      repeats=args.repeats, description=args.description, missing=[])
    missing = _missing(state)
    if missing:
        transition(state, "draft", "; ".join(missing))
    with store.editing(args.key, create=state):
        pass
    out.print(f"created {args.key}: {state['status']}"
              + (f" ({state['reason']})" if missing else f", {count} tasks × {args.repeats}"))
    _print_baseline(state)
    return 0


def _progress(label: str) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False, disable=not console.is_terminal)


def _execute(store: StateStore, key: str, name: str, concurrency: int) -> int:
    """Run the baseline or a variant synchronously, then record its result."""
    settings = get_settings()
    lock_error = None
    with store.editing(key) as state:
        if name == BASELINE:
            if state["status"] == "draft":
                missing = _missing(state)
                if missing:
                    raise RuleBroken(f"experiment {key} is draft: {'; '.join(missing)}")
                transition(state, "baseline_pending")
            begin_run(state, name, os.getpid())
            if not is_locked(state):
                try:
                    lock_baseline(state, settings)
                except (TaskSetError, BaselineError, RuleBroken) as exc:
                    lock_error = str(exc)
                    finish_run(state, name, None, failure=lock_error)
        else:
            begin_run(state, name, os.getpid())
    if lock_error is not None:
        raise RuleBroken(f"baseline of {key} failed: {lock_error}")
    service = build_service(settings)
    result, failure = None, None
    total = state["tasks"]["count"] * state["repeats"]
    saver = store.progress_saver(key)  # progress in the state file, for every API worker
    try:
        saver(0, total)
        with _progress(f"{key}/{name}") as bar:
            job = bar.add_task(name, total=total)
            result = asyncio.run(run_tasks(
                service, state, name, concurrency=concurrency,
                judges=lambda seed: make_judge("auto", seed=seed),
                progress=lambda done, n: (bar.update(job, completed=done), saver(done, n))))
        if name == BASELINE and result["errors"]:
            first = next(r["error"] for r in result["runs"] if r["error"])
            failure = f"{result['errors']} of {total} runs failed (first: {first})"
    except KeyboardInterrupt:
        failure = "interrupted"
    except Exception as exc:  # recorded as the run's failure, then re-raised for the trace
        failure = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        service.close()
        with store.editing(key) as state:
            finish_run(state, name, result, failure=failure)
    if failure:
        console.print(f"[red]{name} failed:[/] {failure}")
        return 1
    document = show_document(state)
    _print_variant_line(next(v for v in document["variants"] if v["name"] == name))
    return 0


def cmd_variant(store: StateStore, args: argparse.Namespace) -> int:
    if len(args.set) != 1:
        raise RuleBroken(f"a variant changes one parameter of one step; got {len(args.set)} "
                         f"--set options ({', '.join(args.set)}): make one variant per change, "
                         "branching with --parent")
    param, sep, raw = args.set[0].partition("=")
    if not sep or not param.strip():
        raise UsageError(f"--set takes PARAM=VALUE, got {args.set[0]!r}")
    value = parse_value(param.strip(), raw, known_tools=KNOWN_TOOLS)
    with store.editing(args.key) as state:
        variant = add_variant(state, args.name, step=args.step, param=param.strip(),
                              value=value, parent=args.parent)
    out.print(f"variant {args.name} of {args.key}: {args.step}.{param.strip()} = "
              f"{variant['override'][param.strip()]!r} (parent {args.parent})")
    return 0


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value * 100:+.1f} pts" if signed else f"{value * 100:.1f}%"


def _short(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    text = str(value).split(":", 1)[-1]  # a model without its provider
    return text if len(text) <= 24 else text[:21] + "..."


def _points(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f}"


def _comparison_text(c: dict[str, Any] | None) -> str:
    if not c:
        return "-"
    low, high = c["ci"]
    return (f"{c['difference'] * 100:+.1f} pts [{low * 100:+.1f}, {high * 100:+.1f}] "
            f"P(better)={c['p_better']:.2f} vs {c['against']}")


def _print_variant_line(v: dict[str, Any]) -> None:
    out.print(f"{v['name']}: pass rate {_pct(v['pass_rate'])} "
              f"({v['tasks']['passed']}/{v['tasks']['total']}), vs baseline "
              f"{_pct(v['vs_baseline'], True)}; {_comparison_text(v['comparison'])}"
              + (f"\n  note: {v['note']}" if v["note"] else ""))


def _depth(variants: dict[str, dict[str, Any]], name: str) -> int:
    depth = 0
    while variants[name]["parent"]:
        name, depth = variants[name]["parent"], depth + 1
    return depth


def _ordered(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Variants depth-first from the baseline, each under its parent."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    for v in document["variants"]:
        children.setdefault(v["parent"], []).append(v)
    ordered: list[dict[str, Any]] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        v = stack.pop()
        ordered.append(v)
        stack.extend(reversed(children.get(v["name"], [])))
    return ordered


SURE = 0.95  # P(better) at or above: better; at or below 1 - SURE: worse


def verdict_lines(document: dict[str, Any]) -> list[str]:
    """Which variant is better than the baseline, and how sure."""
    ran = [v for v in document["variants"] if v["name"] != BASELINE and v["pass_rate"] is not None]
    if not ran:
        return ["no variant has run yet"]
    base = next(v for v in document["variants"] if v["name"] == BASELINE)
    base_cost = base["cost_usd"]
    lines = []
    for v in sorted(ran, key=lambda v: -(v["vs_baseline"] or 0)):
        c = v["comparison"] if v["parent"] == BASELINE else v["comparison_baseline"]
        if c is None:
            continue
        cost = v["cost_usd"]
        cost_text = (f"; cost/run {(cost / base_cost - 1) * 100:+.1f}%"
                     if cost is not None and base_cost else "")
        if v["modelled_offline"] is False:
            lines.append(f"{v['name']}: {v['note']} (its {c['difference'] * 100:+.1f} pts "
                         f"are re-seeding noise, not an effect){cost_text}")
            continue
        p = c["p_better"]
        word = ("better than" if p >= SURE else "worse than" if p <= 1 - SURE else
                "not distinguishable from")
        low, high = c["ci"]
        lines.append(f"{v['name']} is {word} the baseline: {c['difference'] * 100:+.1f} pts "
                     f"(95% interval {low * 100:+.1f} to {high * 100:+.1f}), "
                     f"P(better) = {p:.3f}{cost_text}")
    return lines


def cmd_show(store: StateStore, args: argparse.Namespace) -> int:
    state = store.load(args.key)
    document = show_document(state)
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    tasks = document["tasks"]
    out.print(f"[bold]{document['key']}[/] {document['status']}"
              + (f" ({document['reason']})" if document["reason"] else "")
              + f" steps {','.join(document['steps'])}, repeats {document['repeats']}")
    out.print(f"tasks {tasks['path']}" + (f" locked: {tasks['count']} tasks, sha256 "
                                          f"{tasks['sha256'][:12]}" if document["locked"] else ""))
    if not document["locked"]:
        _print_baseline(state)
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, caption="Δ in points of pass rate; P = P(better than "
                  "the parent); flips = tasks whose pass count changed")
    for column in ("variant", "change", "status", "pass", "vs base", "Δ vs parent [95% CI]",
                   "P", "flips", "$/run", "latency"):
        table.add_column(column, no_wrap=True)
    variants = {v["name"]: v for v in document["variants"]}
    for v in _ordered(document):
        change = ", ".join(f"{k}={_short(val)}" for k, val in v["override"].items())
        c = v["comparison"]
        cost = v["cost_usd"]
        table.add_row(
            "  " * _depth(variants, v["name"]) + v["name"],
            f"{v['step'].removesuffix('-agent')}.{change}" if change else "-", v["status"],
            _pct(v["pass_rate"]), _points(v["vs_baseline"]),
            f"{_points(c['difference'])} [{_points(c['ci'][0])}, {_points(c['ci'][1])}]"
            if c else "-", f"{c['p_better']:.2f}" if c else "-",
            str(len(c["flipped"])) if c else "-",
            f"{cost:.5f}" if cost is not None else "-",
            f"{v['latency_ms'] / 1000:.1f} s" if v["latency_ms"] is not None else "-")
    Console(width=max(out.width, 140)).print(table)  # a narrower terminal wraps the rows
    for v in document["variants"]:
        if v["note"]:
            out.print(f"{v['name']}: {v['note']}")
        if v["failure"]:
            out.print(f"{v['name']} failed: {v['failure']}")
    for line in verdict_lines(document):
        out.print(line)
    return 0


def cmd_lifecycle(store: StateStore, args: argparse.Namespace) -> int:
    to = "completed" if args.command == "complete" else "archived"
    with store.editing(args.key) as state:
        transition(state, to)
    out.print(f"{args.key}: {to}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    store = StateStore(get_settings().DATA_DIR)
    try:
        if args.command == "create":
            return cmd_create(store, args)
        if args.command == "baseline":
            return _execute(store, args.key, BASELINE, args.concurrency)
        if args.command == "run":
            if args.name == BASELINE:
                raise RuleBroken(f"the baseline runs with `baseline {args.key}`, not `run`")
            return _execute(store, args.key, args.name, args.concurrency)
        if args.command == "variant":
            return cmd_variant(store, args)
        if args.command == "show":
            return cmd_show(store, args)
        if args.command == "promote":
            return cmd_promote(store, args, get_settings())
        return cmd_lifecycle(store, args)
    except (RuleBroken, TaskSetError, OverrideError, BaselineError, UsageError,
            *PROMOTE_ERRORS) as exc:
        console.print(f"error: {exc}", markup=False, highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
