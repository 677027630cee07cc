"""The `show` document of an offline experiment: per variant, pass rate, paired comparisons
against its parent and the baseline, flipped tasks, cost, tokens and latency.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from utils.experiments.offline_state import BASELINE, effective_parameters
from utils.stats.paired import compare_paired


def _outcomes(result: dict[str, Any]) -> dict[tuple[str, int], bool]:
    return {(run["task_id"], run["repeat"]): bool(run["passed"]) for run in result["runs"]}


def _matrix(outcomes: dict[tuple[str, int], bool], tasks: list[str], repeats: int) -> np.ndarray:
    return np.array([[outcomes[(t, r)] for r in range(repeats)] for t in tasks], dtype=bool)


def compare_results(state: dict[str, Any], name: str, against: str) -> dict[str, Any] | None:
    """The paired comparison of `name` with `against`, or None until both have results."""
    variants = state["variants"]
    a, b = variants[name].get("result"), variants[against].get("result")
    if not a or not b or variants[name]["status"] != "complete" or \
            variants[against]["status"] != "complete":
        return None
    out_a, out_b = _outcomes(a), _outcomes(b)
    tasks = sorted({t for t, _ in out_a} & {t for t, _ in out_b})
    repeats = state["repeats"]
    if not tasks:
        return None
    ma, mb = _matrix(out_a, tasks, repeats), _matrix(out_b, tasks, repeats)
    stats = compare_paired(ma, mb)
    flipped = [{"task_id": t, "passed": int(ma[i].sum()), "against_passed": int(mb[i].sum()),
                "of": repeats} for i, t in enumerate(tasks) if ma[i].sum() != mb[i].sum()]
    flipped.sort(key=lambda f: (f["against_passed"] - f["passed"], f["task_id"]))
    return {"against": against, "p_better": round(stats.p_better, 4),
            "difference": round(stats.difference, 4),
            "ci": [round(stats.ci[0], 4), round(stats.ci[1], 4)],
            "pairs": stats.pairs, "only_this_passed": stats.only_a,
            "only_against_passed": stats.only_b,
            "design_effect": round(stats.design_effect, 3), "flipped": flipped}


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 8) if values else None


def _summary(result: dict[str, Any] | None) -> dict[str, Any]:
    """Pass rate and task breakdown; cost, tokens and latency are means per task run."""
    if not result:
        return {"pass_rate": None, "tasks": None, "cost_usd": None, "cost_total_usd": None,
                "unpriced_runs": None, "tokens": None, "latency_ms": None,
                "latency_p95_ms": None, "errors": None}
    runs = result["runs"]
    passed = sum(1 for r in runs if r["passed"])
    costs = [r["cost_usd"] for r in runs if r["cost_usd"] is not None]
    latencies = [r["latency_ms"] for r in runs]
    return {
        "pass_rate": round(passed / len(runs), 4) if runs else None,
        "tasks": {"total": len(runs), "passed": passed, "failed": len(runs) - passed},
        "cost_usd": _mean(costs), "cost_total_usd": round(sum(costs), 6),
        "unpriced_runs": len(runs) - len(costs),
        "tokens": _mean([r["tokens"] for r in runs]),
        "latency_ms": _mean(latencies),
        "latency_p95_ms": round(float(np.percentile(latencies, 95)), 1) if runs else None,
        "errors": sum(1 for r in runs if r.get("error")),
    }


def variant_document(state: dict[str, Any], name: str, baseline_rate: float | None
                     ) -> dict[str, Any]:
    variant = state["variants"][name]
    result = variant.get("result")
    summary = _summary(result if variant["status"] == "complete" else None)
    rate = summary["pass_rate"]
    parent = variant["parent"]
    doc = {
        "name": name, "parent": parent, "step": variant["step"],
        "override": dict(variant["override"]), "effective": effective_parameters(state, name),
        "status": variant["status"], **summary,
        "vs_baseline": (round(rate - baseline_rate, 4)
                        if rate is not None and baseline_rate is not None else None),
        "completed_at": variant["completed_at"],
        "comparison": compare_results(state, name, parent) if parent else None,
        "comparison_baseline": (compare_results(state, name, BASELINE)
                                if parent not in (None, BASELINE) else None),
        "simulated": (result or {}).get("simulated"),
        "modelled_offline": (result or {}).get("modelled_offline"),
        "note": (result or {}).get("note"), "failure": variant.get("failure"),
    }
    return doc


def show_document(state: dict[str, Any]) -> dict[str, Any]:
    """The `show --json` document."""
    baseline = state["variants"][BASELINE]
    baseline_rate = _summary(baseline.get("result") if baseline["status"] == "complete"
                             else None)["pass_rate"]
    tasks = state["tasks"]
    return {
        "key": state["key"], "description": state["description"], "status": state["status"],
        "reason": state.get("reason"), "steps": list(state["steps"]),
        "repeats": state["repeats"], "context": state["context"],
        "locked": state["baseline_config"] is not None,
        "baseline_source": state.get("baseline_source"),
        "tasks": {"path": tasks["path"], "sha256": tasks["sha256"], "count": tasks["count"]},
        "variants": [variant_document(state, name, baseline_rate)
                     for name in state["variants"]],
        "created_at": state["created_at"], "updated_at": state["updated_at"],
        "running": dict(state["running"]) if state.get("running") else None,
    }


def _pass_counts(variant: dict[str, Any]) -> dict[str, int] | None:
    result = variant.get("result")
    if variant["status"] != "complete" or not result:
        return None
    counts: dict[str, int] = {}
    for run in result["runs"]:
        counts[run["task_id"]] = counts.get(run["task_id"], 0) + bool(run["passed"])
    return counts


def _variant(state: dict[str, Any], name: str) -> dict[str, Any]:
    """Variant `name` of the experiment; KeyError naming it and the variants there are."""
    variant = state["variants"].get(name)
    if variant is None:
        raise KeyError(f"{state['key']} has no variant {name!r}; variants: "
                       f"{', '.join(state['variants'])}")
    return variant


def task_diff(state: dict[str, Any], a: str, b: str) -> dict[str, Any]:
    """Task by task, how often each of two variants passed, which differ, and the paired
    comparison of `b` against `a` (None until both have run). KeyError names an unknown
    variant."""
    counts_a, counts_b = (_pass_counts(_variant(state, n)) for n in (a, b))
    tasks = sorted(set(counts_a or {}) | set(counts_b or {}))
    rows = []
    for task in tasks:
        pa = None if counts_a is None else counts_a.get(task)
        pb = None if counts_b is None else counts_b.get(task)
        rows.append({"task_id": task, "a_passed": pa, "b_passed": pb,
                     "differs": pa is not None and pb is not None and pa != pb})
    return {"key": state["key"], "a": a, "b": b, "repeats": state["repeats"],
            "comparison": compare_results(state, b, a), "tasks": rows}


def task_runs(state: dict[str, Any], name: str, task_id: str) -> list[dict[str, Any]]:
    """The recorded runs (one per repeat) of `task_id` in variant `name`; KeyError names what is
    unknown."""
    variant = _variant(state, name)
    runs = [r for r in ((variant.get("result") or {}).get("runs") or [])
            if r["task_id"] == task_id]
    if not runs:
        raise KeyError(f"variant {name} of {state['key']} has no run of task {task_id!r}")
    return sorted(runs, key=lambda r: r["repeat"])
