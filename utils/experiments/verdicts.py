"""Verdict engine: event store + experiments.yaml -> comparisons, criteria and verdicts.

Per-user values come from `utils.experiments.user_metrics` (SQL over the documented columns,
SQLite or PostgreSQL), criteria from `utils.experiments.decision_rules`, the maths from
`utils.stats` (docs/STATISTICS.md). The `Report` is what every view (terminal, JSON, HTML, API)
renders."""

from __future__ import annotations

import math
import time
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import numpy as np

from utils.experiments.agent_split import MetricSplit, agent_splits, split_to_dict
from utils.experiments.decision_rules import (
    MIN_USERS_PER_ARM,
    PRICING_HINT,
    CriterionResult,
    MetricResult,
    compare_metric,
    evaluate_criterion,
)
from utils.experiments.definitions import Experiment, find_experiment, load_experiments
from utils.experiments.headline import headline
from utils.experiments.monitoring import (
    Look,
    decision_sample,
    early_stop_shortfall,
    look_to_dict,
)
from utils.experiments.planning import estimate_users_needed
from utils.experiments.user_metrics import (
    STORE_READ_ERRORS,
    ArmData,
    EventStoreError,
    connect_event_store,
    empty_arm_data,
    load_all_arm_data,
    store_exists,
    store_is_simulated,
)
from utils.stats.bayesian import Comparison, srm_p_value
from utils.stats.resampling import Interaction, interaction_2x2
from utils.telemetry.metrics import METRICS
from utils.telemetry.store_url import StoreLocation, parse_location

Outcome = Literal["SHIP", "KEEP", "NEED_MORE_DATA", "INVALID"]

SRM_ALPHA = 0.001


@dataclass
class Verdict:
    outcome: Outcome
    variation: str | None
    summary: str


@dataclass
class ExperimentResult:
    """Everything the report says about one experiment."""

    experiment: Experiment
    users: dict[str, int]
    excluded_users: int
    srm_p_value: float
    metrics: list[MetricResult]
    criteria: list[CriterionResult]
    verdict: Verdict
    users_needed: dict[str, Any] | None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    failed_runs: dict[str, int] = field(default_factory=dict)  # error runs per arm (kept in)
    look: Look | None = None  # interim, final or single look (utils.experiments.monitoring)
    agent_splits: list[MetricSplit] = field(default_factory=list)  # which agent moved it
    headline: str = ""  # one plain sentence (utils.experiments.headline)

    @property
    def unpriced_models(self) -> list[dict[str, Any]]:
        """Models whose runs have no cost, per arm, over every metric they left unknown."""
        seen: dict[tuple[str, str], int] = {}
        for m in self.metrics:
            for arm, model, runs in m.unknown_models:
                seen[(arm, model)] = max(seen.get((arm, model), 0), runs)
        return [{"variation": arm, "model": model, "runs": runs}
                for (arm, model), runs in sorted(seen.items())]

    def metric(self, key: str) -> MetricResult | None:
        return next((m for m in self.metrics if m.key == key), None)


@dataclass
class InteractionResult:
    """2x2 of two experiments that share users, on a common primary metric."""

    experiments: tuple[str, str]
    arms: tuple[tuple[str, str], tuple[str, str]]  # (control, treatment) of each experiment
    metric: str
    result: Interaction


@dataclass
class Report:
    simulated: bool
    db_path: str
    generated_at: float
    experiments: list[ExperimentResult]
    interaction: InteractionResult | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


# --- verdict -------------------------------------------------------------------------------


def _timeline(data: ArmData, experiment: Experiment, points: int = 40) -> list[dict[str, Any]]:
    """Cumulative users per arm over time, at most `points` steps (for the HTML chart)."""
    if not data.users:
        return []
    lo, hi = float(data.first_ts.min()), float(data.first_ts.max())
    edges = np.linspace(lo, hi, points) if hi > lo else np.array([hi])
    out = []
    for edge in edges:
        upto = data.first_ts <= edge
        out.append({"ts": float(edge),
                    experiment.control: int(np.count_nonzero(upto & (data.arm == 0))),
                    experiment.treatment: int(np.count_nonzero(upto & (data.arm == 1)))})
    return out


def decide(
    experiment: Experiment, users: dict[str, int], srm_p: float,
    criteria: list[CriterionResult], look: Look | None = None,
) -> Verdict:
    """The early-return ladder of docs/STATISTICS.md: SRM, minimum sample, then the criteria.

    `look` None decides as a final look; an interim look ships only past the early-stop bar
    and keeps control only on futility (§6).
    """
    n_c, n_t = users[experiment.control], users[experiment.treatment]
    if srm_p < SRM_ALPHA:
        return Verdict("INVALID", None,
                       f"INVALID (sample ratio mismatch): {n_c:,} vs {n_t:,} users against a "
                       f"{_split_text(experiment)} split, p = {srm_p:.2g} < {SRM_ALPHA}; "
                       "check exposure logging and targeting before reading any metric")
    if min(n_c, n_t) < MIN_USERS_PER_ARM:
        return Verdict("NEED_MORE_DATA", None,
                       f"NEED MORE DATA: {n_c:,} and {n_t:,} users; every arm needs at least "
                       f"{MIN_USERS_PER_ARM}")
    failed = [c for c in criteria if not c.passed]
    interim = look is not None and look.kind == "interim"
    short = early_stop_shortfall(experiment, criteria, look) if interim else []
    if not failed and short:
        names = "; ".join(f"{c.metric} ({c.description}): P(met) = {c.probability_met:.3f}"
                          for c in short)
        return Verdict("NEED_MORE_DATA", None,
                       f"NEED MORE DATA (interim look, {look.progress:.0%} of the plan): every "
                       f"criterion passes, but an early stop needs each probability ≥ "
                       f"{look.early_stop_probability:g}: {names}")
    if not failed:
        early = (f" with overwhelming evidence at an interim look ({look.progress:.0%} of the "
                 "plan)") if interim else ""
        return Verdict("SHIP", experiment.treatment,
                       f"SHIP {experiment.treatment}: all {len(criteria)} criteria passed{early}")
    futile = [c for c in failed if c.futile]
    if futile:
        floor = experiment.decision.futility_floor
        why = "; ".join(f"{c.metric} ({c.description}): P(met) = {c.probability_met:.3f} "
                        f"< {floor:g}" for c in futile)
        return Verdict("KEEP", experiment.control,
                       f"KEEP {experiment.control}: decisively failed, more data would only "
                       f"confirm it: {why}")
    names = ", ".join(f"{c.metric} ({c.description})" for c in failed)
    blocked = [c for c in failed if c.blocked]
    unpriced = f"; cost cannot be judged: {blocked[0].blocked}" if blocked else ""
    only_blocked = bool(blocked) and len(blocked) == len(failed)
    if interim and not only_blocked:
        return Verdict("NEED_MORE_DATA", None,
                       f"NEED MORE DATA (interim look, {look.progress:.0%} of the plan): "
                       f"{len(failed)} of {len(criteria)} criteria not met yet: {names}"
                       f"{unpriced}")
    if not interim and experiment.decision.otherwise == "keep_control":
        return Verdict("KEEP", experiment.control,
                       f"KEEP {experiment.control}: {len(failed)} of {len(criteria)} criteria "
                       f"failed: {names}{unpriced}")
    if only_blocked:
        return Verdict("NEED_MORE_DATA", None,
                       f"NEED MORE DATA: more users will not help until it is priced"
                       f"{unpriced}")
    return Verdict("NEED_MORE_DATA", None,
                   f"NEED MORE DATA: {len(failed)} of {len(criteria)} criteria not met yet: "
                   f"{names}{unpriced}")



def _split_text(experiment: Experiment) -> str:
    return "/".join(f"{experiment.split[v]:g}" for v in experiment.variations)


def analyze_experiment(experiment: Experiment, data: ArmData) -> ExperimentResult:
    """Comparisons, checks, criteria and the verdict for one experiment's user data.

    The sample ratio test reads every user; the rest reads the decision sample (past a planned
    horizon, only its users: `utils.experiments.monitoring.decision_sample`).
    """
    srm_p = srm_p_value([int(np.count_nonzero(data.arm == a)) for a in (0, 1)],
                        [experiment.split[v] for v in experiment.variations])
    data, look = decision_sample(experiment, data)
    users = {experiment.control: int(np.count_nonzero(data.arm == 0)),
             experiment.treatment: int(np.count_nonzero(data.arm == 1))}
    results = {k: compare_metric(data, METRICS[k], experiment) for k in experiment.metrics}
    criteria = [evaluate_criterion(c, results, data, experiment)
                for c in experiment.decision.ship_if_all]
    verdict = decide(experiment, users, srm_p, criteria, look)
    needed = None
    if verdict.outcome == "NEED_MORE_DATA":
        # Under the minimum sample every criterion is still open.
        judged = criteria if min(users.values()) >= MIN_USERS_PER_ARM else None
        needed = estimate_users_needed(experiment, results, data, users, judged,
                                       horizon=look.horizon_per_arm)
    failed_runs = {experiment.control: data.failed_runs_of(0),
                   experiment.treatment: data.failed_runs_of(1)}
    return ExperimentResult(experiment, users, data.excluded_users, srm_p,
                            list(results.values()), criteria, verdict, needed,
                            _timeline(data, experiment), failed_runs, look,
                            agent_splits(experiment, data))


def analyze_interaction(
    a: Experiment, da: ArmData, b: Experiment, db: ArmData
) -> InteractionResult | None:
    """2x2 of users in both experiments on A's primary metric, when B shares it."""
    if a.primary_metric != b.primary_metric or not da.users or not db.users:
        return None
    arm_b = dict(zip(db.users, db.arm.tolist(), strict=True))
    metric = a.primary_metric
    vals = da.values[metric]
    cells: dict[tuple[int, int], list[float]] = {k: [] for k in ((0, 0), (0, 1), (1, 0), (1, 1))}
    for i, user in enumerate(da.users):
        j = arm_b.get(user)
        if j is not None and not math.isnan(vals[i]):
            cells[(int(da.arm[i]), j)].append(float(vals[i]))
    if not any(cells.values()):
        return None
    definition = METRICS[metric]
    statistic = "percentile" if definition.statistic == "percentile" else "mean"
    result = interaction_2x2({k: np.asarray(v) for k, v in cells.items()}, statistic=statistic,
                             q=definition.percentile or 0.95, credible=a.threshold,
                             seed=a.seed ^ b.seed)
    return InteractionResult((a.key, b.key), (a.variations, b.variations), metric, result)


def build_report(
    db_path: StoreLocation | Path | str,
    experiments: list[Experiment] | None = None,
    *,
    experiment_key: str | None = None,
) -> Report:
    """Analyse every experiment (or one) against the store at `db_path` (a SQLite path, a
    `sqlite:///` or `postgresql://` URL, or a `StoreLocation`)."""
    db_path = db_path if isinstance(db_path, StoreLocation) else parse_location(db_path)
    experiments = experiments if experiments is not None else load_experiments()
    if experiment_key is not None:
        experiments = [find_experiment(experiments, experiment_key)]
    notes: list[str] = []
    simulated = False
    data: dict[str, ArmData] = {}
    sql_seconds = 0.0
    if not store_exists(db_path):
        notes.append(f"no event store at {db_path} yet: run some traffic first")
        data = {e.key: empty_arm_data(e) for e in experiments}
    else:
        with ExitStack() as opened:
            # Two connections: the events pass overlaps the exposures pass (load_all_arm_data).
            conn = opened.enter_context(closing(connect_event_store(db_path)))
            events_conn = opened.enter_context(closing(connect_event_store(db_path)))
            try:
                t0 = time.perf_counter()
                simulated = store_is_simulated(conn)
                data = load_all_arm_data(conn, experiments, events_conn)
                sql_seconds += time.perf_counter() - t0
            except STORE_READ_ERRORS as err:
                raise EventStoreError(f"{db_path}: cannot read the event store: {err}") from err
    t0 = time.perf_counter()
    results = [analyze_experiment(e, data[e.key]) for e in experiments]
    for r in results:
        r.headline = headline(r)
    interaction = None
    for a, b in combinations(experiments, 2):
        interaction = analyze_interaction(a, data[a.key], b, data[b.key])
        if interaction is not None:
            break
    stats_seconds = time.perf_counter() - t0
    return Report(simulated, str(db_path), time.time(), results, interaction, notes,
                  {"sql_seconds": sql_seconds, "stats_seconds": stats_seconds})


# --- the JSON schema (documented in tools/experiment_report.py) ----------------------------


def _num(x: float | None, digits: int = 6) -> float | None:
    """JSON-safe number: NaN and ±inf become null (the reason fields say why)."""
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), digits)


def comparison_to_dict(comp: Comparison) -> dict[str, Any]:
    return {
        "control_value": _num(comp.control_value),
        "treatment_value": _num(comp.treatment_value),
        "relative_difference": _num(comp.relative_difference),
        "ci_low": _num(comp.ci_low),
        "ci_high": _num(comp.ci_high),
        "interval_low": _num(comp.interval_low),
        "interval_high": _num(comp.interval_high),
        "probability_to_beat_control": _num(comp.probability_to_beat_control),
        "expected_loss": _num(comp.expected_loss, 9),
        "credible": comp.credible,
        "reason": comp.reason,
    }


def experiment_to_dict(r: ExperimentResult) -> dict[str, Any]:
    """One experiment in the stable JSON schema."""
    e = r.experiment
    return {
        "key": e.key,
        "name": e.name,
        "config": e.config,
        "control": e.control,
        "treatment": e.treatment,
        "threshold": e.threshold,
        "primary_metric": e.primary_metric,
        "users": dict(r.users),
        "excluded_users": r.excluded_users,
        "srm_p_value": _num(r.srm_p_value),
        "metrics": [
            {"key": m.key, "name": m.definition.name, "statistic": m.definition.statistic,
             "higher_is_better": m.definition.higher_is_better, "unit": m.definition.unit,
             "users_with_values": {e.control: m.users[0], e.treatment: m.users[1]},
             "unknown_users": {e.control: m.unknown_users[0], e.treatment: m.unknown_users[1]},
             **comparison_to_dict(m.comparison)}
            for m in r.metrics
        ],
        "criteria": [
            {"kind": c.kind, "metric": c.metric, "description": c.description,
             "observed": _num(c.observed), "threshold": c.threshold,
             "comparator": c.comparator, "passed": c.passed, "detail": c.detail,
             "probability_met": _num(c.probability_met), "futile": c.futile,
             "blocked": c.blocked or None, "in_words": c.in_words}
            for c in r.criteria
        ],
        "futility_floor": e.decision.futility_floor,
        "failed_runs": dict(r.failed_runs),
        "unpriced_models": r.unpriced_models,
        "pricing_hint": PRICING_HINT if r.unpriced_models else None,
        "verdict": {"outcome": r.verdict.outcome, "variation": r.verdict.variation,
                    "summary": r.verdict.summary, "headline": r.headline or headline(r)},
        "users_needed": r.users_needed,
        "monitoring": look_to_dict(r.look) if r.look is not None else None,
        "agent_split": [split_to_dict(x) for x in r.agent_splits],
        "timeline": r.timeline,
    }


def interaction_to_dict(i: InteractionResult) -> dict[str, Any]:
    res = i.result
    (a_c, a_t), (b_c, b_t) = i.arms
    cells = [
        {i.experiments[0]: (a_c, a_t)[x], i.experiments[1]: (b_c, b_t)[y],
         "users": res.users[x][y], "value": _num(res.values[x][y])}
        for x in (0, 1) for y in (0, 1)
    ]
    return {"experiments": list(i.experiments), "metric": i.metric, "cells": cells,
            "interaction": _num(res.interaction), "ci_low": _num(res.ci_low),
            "ci_high": _num(res.ci_high), "reason": res.reason}


def report_to_dict(report: Report) -> dict[str, Any]:
    """The whole report in the stable JSON schema."""
    out: dict[str, Any] = {
        "simulated": report.simulated,
        "db_path": report.db_path,
        "generated_at": report.generated_at,
        "notes": report.notes,
        "experiments": [experiment_to_dict(r) for r in report.experiments],
    }
    if report.interaction is not None:
        out["interaction"] = interaction_to_dict(report.interaction)
    return out
