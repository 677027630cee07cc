"""Verdict engine: event store + experiments.yaml -> comparisons, criteria and verdicts (STATS).

Reads only the DESIGN §7 columns of `exposures` and `events`, so any SQLite file with those
tables works. Per-user values are aggregated in SQL (one pass per experiment); the maths is
in `utils.stats`. The `Report` returned here is the single source that the terminal, JSON,
HTML and API views render.
"""

from __future__ import annotations

import math
import sqlite3
import time
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

from bootstrap.experiments import (
    AbsoluteIncreaseAtMost,
    CostValueRatioAtLeast,
    Experiment,
    NotWorse,
    ProbabilityToBeat,
    RelativeIncreaseAtMost,
    RelativeLiftAtLeast,
    load_experiments,
)
from utils.metrics import METRICS, MetricDefinition
from utils.stats import (
    Comparison,
    ConversionStats,
    CostValueRatio,
    Interaction,
    MeanStats,
    compare_conversion,
    compare_mean,
    compare_percentile,
    cost_value_ratio,
    interaction_2x2,
    sample_size_conversion,
    sample_size_mean,
    srm_p_value,
)

Outcome = Literal["SHIP", "KEEP", "NEED_MORE_DATA", "INVALID"]

MIN_USERS_PER_ARM = 100
SRM_ALPHA = 0.001
# When a criterion has no effect size of its own, plan to detect at least this relative change.
MIN_PLANNING_LIFT = 0.05
PLANNING_ALPHA, PLANNING_POWER = 0.05, 0.8


class EventStoreError(RuntimeError):
    """The event store exists but cannot be read as a DESIGN §7 store."""


@dataclass
class ArmData:
    """Per-user values of one experiment: arrays aligned on users."""

    users: list[str]
    arm: np.ndarray  # 0 = control, 1 = treatment
    first_ts: np.ndarray
    values: dict[str, np.ndarray]  # metric key -> per-user value (NaN = left out)
    excluded_users: int = 0  # seen in both arms, or in a variation that is not an arm
    sql_seconds: float = 0.0

    def arm_values(self, metric: str, arm: int) -> np.ndarray:
        v = self.values[metric][self.arm == arm]
        return v[~np.isnan(v)]


@dataclass
class MetricResult:
    """One metric's comparison, plus what the views need to label it."""

    key: str
    definition: MetricDefinition
    comparison: Comparison
    users: tuple[int, int]  # users with a value in (control, treatment)


@dataclass
class CriterionResult:
    """One `ship_if_all` rule: observed value against its bar."""

    kind: str
    metric: str
    description: str
    observed: float
    threshold: float
    passed: bool
    comparator: Literal[">=", "<=", "<"]
    detail: str = ""


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


# --- reading the store ---------------------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    # Reads through mmap and an in-memory sorter: the one-pass GROUP BY is the hot spot.
    conn.execute("PRAGMA mmap_size = 1073741824")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -65536")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    missing = {"exposures", "events"} - tables
    if missing:
        conn.close()
        raise EventStoreError(
            f"{path}: no table {', '.join(sorted(missing))}; expected an event store with the "
            "DESIGN §7 tables (exposures, events). Point --db / EVENTS_DB at the right file."
        )
    return conn


def store_is_simulated(conn: sqlite3.Connection) -> bool:
    """True when any event row came from a simulated provider."""
    return conn.execute("SELECT 1 FROM events WHERE simulated = 1 LIMIT 1").fetchone() is not None


def _assign_users(conn: sqlite3.Connection, table: str, experiment: Experiment) -> None:
    """Temp table of users with their first in-experiment exposure for this config."""
    conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
    conn.execute(
        f"CREATE TEMP TABLE {table} (user_key TEXT PRIMARY KEY, arm TEXT, first_ts REAL, "
        "first_request TEXT, n_arms INTEGER) WITHOUT ROWID"
    )
    # SQLite fills the bare columns (variation_key, request_id) from the MIN(ts) row: the
    # user's first in-experiment exposure decides its arm.
    conn.execute(
        f"INSERT INTO temp.{table} SELECT user_key, variation_key, MIN(ts), request_id, "
        "COUNT(DISTINCT variation_key) FROM main.exposures "
        "WHERE config_key = ? AND in_experiment = 1 GROUP BY user_key",
        (experiment.config,),
    )


def load_arm_data(conn: sqlite3.Connection, experiment: Experiment) -> ArmData:
    """Per-user values of one experiment (see `load_all_arm_data`)."""
    return load_all_arm_data(conn, [experiment])[experiment.key]


def load_all_arm_data(
    conn: sqlite3.Connection, experiments: list[Experiment]
) -> dict[str, ArmData]:
    """Assign users to arms and aggregate every experiment's metrics in one SQL pass (STATS §1).

    One scan of `events`, joined to each experiment's assignment table by user; each metric of
    each experiment is a conditional aggregate over that user's events after (or in the request
    of) its first exposure. Grouping is by user, so Python only sees one row per user.
    """
    start = time.perf_counter()
    out: dict[str, ArmData] = {}
    select: list[str] = []
    params: list[Any] = []
    columns: list[tuple[str, MetricDefinition]] = []
    joins, any_assigned = [], []
    for i, e in enumerate(experiments):
        table = f"assigned_{i}"
        _assign_users(conn, table, e)
        arms = {e.control: 0, e.treatment: 1}
        users, arm, first_ts, excluded = [], [], [], 0
        for user_key, variation, ts, n_arms in conn.execute(
                f"SELECT user_key, arm, first_ts, n_arms FROM temp.{table} ORDER BY user_key"):
            if n_arms != 1 or variation not in arms:
                excluded += 1  # seen in both arms (or a variation that is not an arm)
                continue
            users.append(user_key)
            arm.append(arms[variation])
            first_ts.append(ts)
        definitions = [METRICS[k] for k in e.metrics]
        values = {d.key: np.full(len(users), np.nan if d.statistic == "percentile" else 0.0)
                  for d in definitions}
        out[e.key] = ArmData(users, np.asarray(arm, dtype=np.int8),
                             np.asarray(first_ts, dtype=float), values, excluded)
        alias = f"a{i}"
        joins.append(f"LEFT JOIN temp.{table} {alias} ON {alias}.user_key = e.user_key")
        any_assigned.append(f"{alias}.n_arms = 1")
        # Events of the first exposed request count even if tracked just before the exposure.
        after = f"(e.ts >= {alias}.first_ts OR e.request_id = {alias}.first_request)"
        for d in definitions:
            if d.aggregate == "any":
                select.append(f"MAX(CASE WHEN e.event_key = ? AND {after} THEN 1 END)")
            else:
                select.append(f"SUM(CASE WHEN e.event_key = ? AND {after} THEN e.value END)")
            params.append(d.event_key)
            columns.append((e.key, d))
    if select and any(d.users for d in out.values()):
        event_keys = sorted({d.event_key for _, d in columns})
        sql = (
            f"SELECT e.user_key, {', '.join(select)} FROM main.events e NOT INDEXED "
            + " ".join(joins)
            + f" WHERE e.event_key IN ({', '.join('?' * len(event_keys))})"
            + f" AND ({' OR '.join(any_assigned)}) GROUP BY e.user_key"
        )
        rows = conn.execute(sql, params + event_keys).fetchall()
        if rows:
            row_users = [r[0] for r in rows]
            # Column-wise: None (no matching event) becomes NaN and leaves the default alone.
            table = np.array([r[1:] for r in rows], dtype=float)
            for key, d in out.items():
                where = {u: j for j, u in enumerate(d.users)}
                pos = np.fromiter((where.get(u, -1) for u in row_users), dtype=np.int64,
                                  count=len(row_users))
                hit = pos >= 0
                for c, (col_key, definition) in enumerate(columns):
                    if col_key != key:
                        continue
                    col = table[hit, c]
                    ok = ~np.isnan(col)
                    d.values[definition.key][pos[hit][ok]] = col[ok]
    for i in range(len(experiments)):
        conn.execute(f"DROP TABLE IF EXISTS temp.assigned_{i}")
    elapsed = time.perf_counter() - start
    for d in out.values():
        d.sql_seconds = elapsed / max(len(out), 1)
    return out


def empty_arm_data(experiment: Experiment) -> ArmData:
    """No users at all (no store yet)."""
    return ArmData([], np.zeros(0, np.int8), np.zeros(0), {k: np.zeros(0) for k in
                                                           experiment.metrics})


# --- comparisons and criteria --------------------------------------------------------------


def compare_metric(data: ArmData, d: MetricDefinition, experiment: Experiment) -> MetricResult:
    """Run the comparison that the metric's statistic calls for."""
    c, t = data.arm_values(d.key, 0), data.arm_values(d.key, 1)
    credible = experiment.threshold
    if d.statistic == "conversion":
        comp = compare_conversion(
            ConversionStats(c.size, int(np.count_nonzero(c))),
            ConversionStats(t.size, int(np.count_nonzero(t))),
            credible=credible, higher_is_better=d.higher_is_better, seed=experiment.seed)
    elif d.statistic == "mean":
        comp = compare_mean(MeanStats.from_values(c), MeanStats.from_values(t),
                            credible=credible, higher_is_better=d.higher_is_better)
    else:
        comp = compare_percentile(c, t, q=d.percentile or 0.95, credible=credible,
                                  higher_is_better=d.higher_is_better, seed=experiment.seed)
    return MetricResult(d.key, d, comp, (int(c.size), int(t.size)))


def _nan_detail(comp: Comparison) -> str:
    return comp.reason or "not enough data"


def evaluate_criterion(
    criterion: Any, results: dict[str, MetricResult], data: ArmData, experiment: Experiment
) -> CriterionResult:
    """Observed value, bar and pass/fail of one criterion (STATS §5)."""
    if isinstance(criterion, CostValueRatioAtLeast):
        return _evaluate_cost_value(criterion, data, experiment)
    m = results[criterion.metric]
    comp = m.comparison
    better = "higher" if m.definition.higher_is_better else "lower"
    if isinstance(criterion, ProbabilityToBeat):
        obs, bar = comp.probability_to_beat_control, criterion.probability_to_beat
        res = CriterionResult(criterion.kind, m.key, f"P(treatment {better}) ≥ {bar:g}",
                              obs, bar, obs >= bar, ">=")
    elif isinstance(criterion, NotWorse):
        obs, bar = 1.0 - comp.probability_to_beat_control, criterion.not_worse
        res = CriterionResult(criterion.kind, m.key, f"not worse: P(treatment worse) < {bar:g}",
                              obs, bar, obs < bar, "<")
    elif isinstance(criterion, RelativeLiftAtLeast):
        sign = 1.0 if m.definition.higher_is_better else -1.0
        obs, bar = sign * comp.relative_difference, criterion.relative_lift_at_least
        res = CriterionResult(criterion.kind, m.key, f"relative lift ({better}) ≥ {bar:+.0%}",
                              obs, bar, obs >= bar, ">=")
    elif isinstance(criterion, RelativeIncreaseAtMost):
        v, bar = criterion.relative_increase_at_most, criterion.probability
        obs = comp.probability_relative_at_most(v)
        res = CriterionResult(
            criterion.kind, m.key, f"P(relative increase ≤ {v:.0%}) ≥ {bar:g}", obs, bar,
            obs >= bar, ">=", f"relative difference {comp.relative_difference:+.1%}")
    elif isinstance(criterion, AbsoluteIncreaseAtMost):
        obs, bar = comp.absolute_difference, criterion.absolute_increase_at_most
        res = CriterionResult(criterion.kind, m.key,
                              f"increase ≤ {bar:g} {m.definition.unit}", obs, bar, obs <= bar,
                              "<=")
    else:  # pragma: no cover - the schema admits no other kind
        raise ValueError(f"unknown criterion {criterion!r}")
    if not math.isfinite(res.observed):
        res.passed = False
        res.detail = _nan_detail(comp)
    return res


def _evaluate_cost_value(
    criterion: CostValueRatioAtLeast, data: ArmData, experiment: Experiment
) -> CriterionResult:
    value_def = METRICS[criterion.value_metric]
    cost_def = METRICS[criterion.cost_metric]

    def arm(a: int) -> tuple[np.ndarray, np.ndarray]:
        mask = data.arm == a
        v, c = data.values[value_def.key][mask], data.values[cost_def.key][mask]
        keep = ~(np.isnan(v) | np.isnan(c))
        return v[keep], c[keep]

    (cv, cc), (tv, tc) = arm(0), arm(1)
    bar = criterion.cost_value_ratio_at_least
    r: CostValueRatio = cost_value_ratio(
        cv, cc, tv, tc, bar=bar, value_higher_is_better=value_def.higher_is_better,
        seed=experiment.seed)
    need = experiment.threshold
    passed = math.isfinite(r.probability_at_least) and r.probability_at_least >= need
    if math.isnan(r.ratio):
        detail = r.reason or "not enough data"
    elif r.cost_increase <= 0:
        detail = (f"cost fell {r.cost_increase:+.1%} with value {r.value_lift:+.1%}; "
                  f"P(ratio ≥ {bar:g}) = {r.probability_at_least:.3f} over {r.resamples} "
                  "joint draws")
    else:
        detail = (f"value {r.value_lift:+.1%} / cost {r.cost_increase:+.1%} (sample means); "
                  f"P(ratio ≥ {bar:g}) = {r.probability_at_least:.3f} (needs ≥ {need:g}) "
                  f"over {r.resamples} joint draws")
    return CriterionResult(
        criterion.kind, f"{value_def.key}/{cost_def.key}",
        f"cost-value ratio ≥ {bar:g}", r.ratio, bar, passed, ">=", detail)


# --- planning ------------------------------------------------------------------------------


def users_needed_per_arm(m: MetricResult, lift: float, data: ArmData) -> int | None:
    """Users per arm to detect `lift` on this metric (STATS §6); None when it cannot be told."""
    lift = abs(lift)
    if not lift > 0:
        return None
    c = data.arm_values(m.key, 0)
    if c.size < 2:
        return None
    try:
        if m.definition.statistic == "conversion":
            return sample_size_conversion(float(np.mean(c > 0)), lift,
                                          alpha=PLANNING_ALPHA, power=PLANNING_POWER)
        if m.definition.statistic == "mean":
            mean = float(c.mean())
            if mean == 0:
                return None
            return sample_size_mean(float(c.std(ddof=1)) / abs(mean), lift,
                                    alpha=PLANNING_ALPHA, power=PLANNING_POWER)
    except ValueError:
        return None
    # Percentiles: scale today's bootstrap spread (sd ∝ 1/√n) to the spread the lift needs.
    sd = m.comparison.relative_sd
    if not (math.isfinite(sd) and sd > 0):
        return None
    z = sps.norm.ppf(1 - PLANNING_ALPHA / 2) + sps.norm.ppf(PLANNING_POWER)
    return math.ceil(min(m.users) * (z * sd / lift) ** 2)


def _planning_lift(criterion: Any, m: MetricResult) -> float:
    if isinstance(criterion, RelativeLiftAtLeast):
        return criterion.relative_lift_at_least
    if isinstance(criterion, RelativeIncreaseAtMost):
        return criterion.relative_increase_at_most
    if isinstance(criterion, AbsoluteIncreaseAtMost):
        base = m.comparison.control_value
        if math.isfinite(base) and base > 0:
            return max(criterion.absolute_increase_at_most / base, MIN_PLANNING_LIFT)
    r = m.comparison.relative_difference
    return max(abs(r), MIN_PLANNING_LIFT) if math.isfinite(r) else 0.10


def estimate_users_needed(
    experiment: Experiment, results: dict[str, MetricResult], data: ArmData,
    users: dict[str, int],
) -> dict[str, Any]:
    """Per-arm users each criterion metric needs and how many more users that means in total."""
    by_metric: dict[str, int | None] = {}
    for criterion in experiment.decision.ship_if_all:
        if isinstance(criterion, CostValueRatioAtLeast):
            keys = [(criterion.value_metric, None), (criterion.cost_metric, None)]
        else:
            keys = [(criterion.metric, criterion)]
        for key, crit in keys:
            m = results[key]
            lift = _planning_lift(crit, m) if crit is not None else _planning_lift(None, m)
            need = users_needed_per_arm(m, lift, data)
            prev = by_metric.get(key)
            by_metric[key] = need if prev is None else max(prev, need or 0)
    known = [n for n in by_metric.values() if n is not None]
    per_arm = max([MIN_USERS_PER_ARM, *known])
    current = min(users.values()) if users else 0
    additional = max(0, per_arm - current) * len(experiment.split)
    slowest = max(by_metric, key=lambda k: by_metric[k] or 0) if known else None
    note = (f"{slowest} needs the most users ({by_metric[slowest]:,} per arm); high-variance "
            "metrics such as cost and feedback need far more than latency or tokens"
            if slowest else f"at least {MIN_USERS_PER_ARM} users per arm before any verdict")
    return {"per_arm": per_arm, "additional": additional, "by_metric": by_metric, "note": note}


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
    criteria: list[CriterionResult],
) -> Verdict:
    """The early-return ladder of STATS §4-§5: SRM, minimum sample, then the criteria."""
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
    if not failed:
        return Verdict("SHIP", experiment.treatment,
                       f"SHIP {experiment.treatment}: all {len(criteria)} criteria passed")
    names = ", ".join(f"{c.metric} ({c.description})" for c in failed)
    if experiment.decision.otherwise == "keep_control":
        return Verdict("KEEP", experiment.control,
                       f"KEEP {experiment.control}: {len(failed)} of {len(criteria)} criteria "
                       f"failed: {names}")
    return Verdict("NEED_MORE_DATA", None,
                   f"NEED MORE DATA: {len(failed)} of {len(criteria)} criteria not met yet: "
                   f"{names}")


def _split_text(experiment: Experiment) -> str:
    return "/".join(f"{experiment.split[v]:g}" for v in experiment.variations)


def analyze_experiment(experiment: Experiment, data: ArmData) -> ExperimentResult:
    """Comparisons, checks, criteria and the verdict for one experiment's user data."""
    users = {experiment.control: int(np.count_nonzero(data.arm == 0)),
             experiment.treatment: int(np.count_nonzero(data.arm == 1))}
    srm_p = srm_p_value([users[v] for v in experiment.variations],
                        [experiment.split[v] for v in experiment.variations])
    results = {k: compare_metric(data, METRICS[k], experiment) for k in experiment.metrics}
    criteria = [evaluate_criterion(c, results, data, experiment)
                for c in experiment.decision.ship_if_all]
    verdict = decide(experiment, users, srm_p, criteria)
    needed = (estimate_users_needed(experiment, results, data, users)
              if verdict.outcome == "NEED_MORE_DATA" else None)
    return ExperimentResult(experiment, users, data.excluded_users, srm_p,
                            list(results.values()), criteria, verdict, needed,
                            _timeline(data, experiment))


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
    db_path: Path | str,
    experiments: list[Experiment] | None = None,
    *,
    experiment_key: str | None = None,
) -> Report:
    """Analyse every experiment (or one) against the store at `db_path`."""
    db_path = Path(db_path)
    experiments = experiments if experiments is not None else load_experiments()
    if experiment_key is not None:
        chosen = [e for e in experiments if e.key == experiment_key]
        if not chosen:
            raise KeyError(f"unknown experiment {experiment_key!r}; known: "
                           f"{[e.key for e in experiments]}")
        experiments = chosen
    notes: list[str] = []
    simulated = False
    data: dict[str, ArmData] = {}
    sql_seconds = 0.0
    if not db_path.exists():
        notes.append(f"no event store at {db_path} yet: run some traffic first")
        data = {e.key: empty_arm_data(e) for e in experiments}
    else:
        conn = _connect(db_path)
        try:
            t0 = time.perf_counter()
            simulated = store_is_simulated(conn)
            sql_seconds += time.perf_counter() - t0
            data = load_all_arm_data(conn, experiments)
            sql_seconds += sum(d.sql_seconds for d in data.values())
        except sqlite3.Error as err:
            raise EventStoreError(f"{db_path}: cannot read the event store: {err}") from err
        finally:
            conn.close()
    t0 = time.perf_counter()
    results = [analyze_experiment(e, data[e.key]) for e in experiments]
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
            {"key": m.key, "statistic": m.definition.statistic,
             "higher_is_better": m.definition.higher_is_better, "unit": m.definition.unit,
             "users_with_values": {e.control: m.users[0], e.treatment: m.users[1]},
             **comparison_to_dict(m.comparison)}
            for m in r.metrics
        ],
        "criteria": [
            {"kind": c.kind, "metric": c.metric, "description": c.description,
             "observed": _num(c.observed), "threshold": c.threshold,
             "comparator": c.comparator, "passed": c.passed, "detail": c.detail}
            for c in r.criteria
        ],
        "verdict": {"outcome": r.verdict.outcome, "variation": r.verdict.variation,
                    "summary": r.verdict.summary},
        "users_needed": r.users_needed,
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
