"""Per-user metric values of each experiment, aggregated in SQL from the event store.

Reads only the documented columns (docs/CONTRACTS.md) of `exposures` and `events`, so any store
with those tables works, SQLite or PostgreSQL: the SQL is the two databases' common dialect
(no bare columns), with SQLite's planner hints only on SQLite. Per-user values are aggregated in SQL (one pass per experiment); the maths is
in `utils.stats.bayesian` and the verdicts in `utils.experiments.verdicts`.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from utils.experiments.definitions import Experiment
from utils.telemetry.event_store import MARKED_RUNS_TABLE
from utils.telemetry.metrics import GENERATION_ERROR, METRICS, MetricDefinition
from utils.telemetry.store_url import (
    PgConnection,
    StoreLocation,
    dialect,
    parse_location,
    table_names,
)

# Added to a user's sum for each event without a value: no real sum comes near it, and
# float addition keeps it (or reaches inf) whatever else is summed.
UNKNOWN = 1e300


READER_WORK_MEM = "64MB"


class EventStoreError(RuntimeError):
    """The event store exists but cannot be read as an event store (docs/CONTRACTS.md)."""


# What a failed read raises, on either database.
STORE_READ_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, psycopg.Error)


@dataclass
class ArmData:
    """Per-user values of one experiment: arrays aligned on users."""

    users: list[str]
    arm: np.ndarray  # 0 = control, 1 = treatment
    first_ts: np.ndarray
    values: dict[str, np.ndarray]  # metric key -> per-user value (NaN = left out)
    excluded_users: int = 0  # seen in both arms, or in a variation that is not an arm
    sql_seconds: float = 0.0
    # Users of a summed metric with an event whose value is NULL (an unpriced model's cost):
    # their total is unknown, never the sum of the rest. metric key -> bool per user.
    unknown: dict[str, np.ndarray] = field(default_factory=dict)
    # (arm, model) -> runs with a NULL value, per metric key with unknown users.
    unknown_models: dict[str, dict[tuple[int, str], int]] = field(default_factory=dict)
    failed_runs: np.ndarray | None = None  # agent runs that ended in an error, per user

    def arm_values(self, metric: str, arm: int) -> np.ndarray:
        v = self.values[metric][self.arm == arm]
        return v[~np.isnan(v)]

    def unknown_users(self, metric: str, arm: int) -> int:
        """Users of `arm` whose value of `metric` is unknown (an event without a value)."""
        flags = self.unknown.get(metric)
        return int(np.count_nonzero(flags[self.arm == arm])) if flags is not None else 0

    def failed_runs_of(self, arm: int) -> int:
        if self.failed_runs is None:
            return 0
        return int(self.failed_runs[self.arm == arm].sum())


def store_exists(location: StoreLocation | str | Path) -> bool:
    """A SQLite file that is there, or any PostgreSQL URL (connecting tells the rest)."""
    loc = location if isinstance(location, StoreLocation) else parse_location(location)
    return loc.is_postgres or (loc.path is not None and loc.path.exists())


def connect_event_store(location: StoreLocation | str | Path) -> Any:
    """Read-only connection to an event store; `EventStoreError` when a table is missing.

    A SQLite path (or `sqlite:///`) gives a `sqlite3.Connection`, a `postgresql://` URL a
    `PgConnection`; both answer `execute(sql, params)` with `?` placeholders."""
    loc = location if isinstance(location, StoreLocation) else parse_location(location)
    conn: Any
    if loc.is_postgres:
        try:
            conn = PgConnection(psycopg.connect(loc.url, autocommit=True, connect_timeout=10))
            # The report's sorts and hash aggregates over every user, in memory (the server's
            # default of 4 MB spills them to disk); this session only.
            conn.execute(f"SET work_mem = '{READER_WORK_MEM}'")
        except psycopg.Error as exc:
            raise EventStoreError(f"{loc}: cannot connect to the event store: {exc}") from exc
    else:
        conn = sqlite3.connect(f"file:{loc.path}?mode=ro", uri=True, timeout=10.0)
        # Reads through mmap and an in-memory sorter: the one-pass GROUP BY is the hot spot.
        conn.execute("PRAGMA mmap_size = 1073741824")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -65536")
    missing = {"exposures", "events"} - table_names(conn)
    if missing:
        conn.close()
        raise EventStoreError(
            f"{loc}: no table {', '.join(sorted(missing))}; expected an event store with the "
            "documented tables (exposures, events). Point --url / --db (EVENTS_URL / "
            "EVENTS_DB) at the right store."
        )
    return conn


def unmarked(conn: Any, column: str) -> str:
    """SQL that keeps only rows whose request `column` is not a marked (experiment) run; empty
    for stores from before marking, or without marked runs (the filter would keep every row,
    and on SQLite it costs a probe per event)."""
    if MARKED_RUNS_TABLE not in table_names(conn) or conn.execute(
            f"SELECT 1 FROM {MARKED_RUNS_TABLE} LIMIT 1").fetchone() is None:
        return ""
    return f" AND {column} NOT IN (SELECT request_id FROM {MARKED_RUNS_TABLE})"


def store_is_simulated(conn: Any) -> bool:
    """True when any event row of user traffic came from a simulated provider."""
    sql = "SELECT 1 FROM events WHERE simulated = 1" + unmarked(conn, "request_id") + " LIMIT 1"
    return conn.execute(sql).fetchone() is not None


def _assign_users(conn: Any, table: str, experiment: Experiment) -> None:
    """Temp table of users with their first in-experiment exposure for this config.

    The user's first in-experiment exposure (the earliest `ts`) decides its arm. Rows tied on
    that `ts` are resolved by MIN, so the result is the same on both databases (request ids
    compared bytewise); n_arms is the number of variations the user was exposed to."""
    pg = dialect(conn) == "postgresql"
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(
        f"CREATE TEMP TABLE {table} (user_key TEXT PRIMARY KEY, arm TEXT, first_ts "
        f"{'DOUBLE PRECISION' if pg else 'REAL'}, first_request TEXT, n_arms INTEGER)"
        + ("" if pg else " WITHOUT ROWID")
    )
    byte_order = ' COLLATE "C"' if pg else ""  # SQLite compares text bytewise already
    # Aggregate, then join back on the first ts (faster on SQLite than a window function).
    # With n_arms = 1 every exposure has the same variation, so MIN(variation) is it.
    conn.execute(
        f"INSERT INTO {table} SELECT g.user_key, MIN(x.variation_key), g.first_ts, "
        f"MIN(x.request_id{byte_order}), g.n_arms FROM (SELECT user_key, MIN(ts) AS first_ts, "
        "COUNT(DISTINCT variation_key) AS n_arms FROM exposures "
        "WHERE config_key = ? AND in_experiment = 1" + unmarked(conn, "request_id")
        + " GROUP BY user_key) g JOIN exposures x ON x.config_key = ? AND x.in_experiment = 1"
        " AND x.user_key = g.user_key AND x.ts = g.first_ts" + unmarked(conn, "x.request_id")
        + " GROUP BY g.user_key, g.first_ts, g.n_arms",
        (experiment.config, experiment.config),
    )
    if pg:
        conn.execute(f"ANALYZE {table}")  # temp tables get no statistics by themselves


def _combine_assignments(conn: Any, experiments: list[int]) -> None:
    """Temp table `assigned_all`: per user, the first exposure and arm count of each listed
    experiment (NULL where not assigned), so the main pass joins one table, not one each."""
    pg = dialect(conn) == "postgresql"
    real = "DOUBLE PRECISION" if pg else "REAL"
    conn.execute("DROP TABLE IF EXISTS assigned_all")
    conn.execute("CREATE TEMP TABLE assigned_all (user_key TEXT PRIMARY KEY, " + ", ".join(
        f"t{i} {real}, r{i} TEXT, n{i} INTEGER" for i in experiments) + ")"
        + ("" if pg else " WITHOUT ROWID"))
    users = " UNION ".join(f"SELECT user_key FROM assigned_{i}" for i in experiments)
    conn.execute("INSERT INTO assigned_all SELECT u.user_key, " + ", ".join(
        f"a{i}.first_ts, a{i}.first_request, a{i}.n_arms" for i in experiments)
        + f" FROM ({users}) u " + " ".join(
            f"LEFT JOIN assigned_{i} a{i} ON a{i}.user_key = u.user_key" for i in experiments))
    if pg:
        conn.execute("ANALYZE assigned_all")


def load_all_arm_data(
    conn: Any, experiments: list[Experiment]
) -> dict[str, ArmData]:
    """Assign users to arms and aggregate every experiment's metrics in one SQL pass.

    One scan of `events`, joined by user to every experiment's assignment (`assigned_all`);
    each metric of each experiment is a conditional aggregate over that user's events after
    (or in the request of) its first exposure. Grouping is by user, so Python only sees one
    row per user. The assignment tables stay for the connection's life: the agent splits
    (`agent_split.load_all_agent_splits`) read `assigned_all` instead of assigning again.
    """
    start = time.perf_counter()
    out: dict[str, ArmData] = {}
    select: list[str] = []
    params: list[Any] = []
    columns: list[tuple[str, MetricDefinition]] = []
    joined: list[int] = []  # experiments with users: their assignments join the main pass
    for i, e in enumerate(experiments):
        table = f"assigned_{i}"
        _assign_users(conn, table, e)
        arms = {e.control: 0, e.treatment: 1}
        users, arm, first_ts, excluded = [], [], [], 0
        # Users in code-point order (Python's sort: the same on both databases' collations).
        for user_key, variation, ts, n_arms in sorted(conn.execute(
                f"SELECT user_key, arm, first_ts, n_arms FROM {table}").fetchall()):
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
        if not users:
            continue  # nobody to aggregate for: no columns (and no join) in the main pass
        joined.append(i)
        for d in definitions:
            # A valueless event (an unpriced run's cost) adds UNKNOWN, so the user's sum shows
            # it without another column; `_resolve_unknown` then finds who and which model.
            select.append(f"MAX(CASE WHEN k = ? AND in{i} THEN 1 END)" if d.aggregate == "any"
                          else f"SUM(CASE WHEN k = ? AND in{i} THEN COALESCE(v, {UNKNOWN!r}) END)")
            params.append(d.event_key)
            columns.append((e.key, d))
    unknown: set[str] = set()  # experiments with users whose sum is unknown
    if select:
        _combine_assignments(conn, joined)
        event_keys = sorted({d.event_key for _, d in columns})
        pg = dialect(conn) == "postgresql"
        # Each event row once: joined to its user's assignments, with one flag per experiment
        # for "after (or in the request of) the first exposure". The subquery is kept whole
        # (OFFSET 0), so each flag is computed once per row, not once per metric column.
        sql = (
            "SELECT u, " + ", ".join(select) + " FROM (SELECT e.user_key AS u, "
            "e.event_key AS k, e.value AS v, "
            + ", ".join(f"(e.ts >= a.t{i} OR e.request_id = a.r{i}) AS in{i}" for i in joined)
            + " FROM events e" + ("" if pg else " NOT INDEXED")
            + " JOIN assigned_all a ON a.user_key = e.user_key"
            + f" WHERE e.event_key IN ({', '.join('?' * len(event_keys))})"
            + f" AND ({' OR '.join(f'a.n{i} = 1' for i in joined)})"
            + unmarked(conn, "e.request_id")
            + (" OFFSET 0" if pg else " LIMIT -1 OFFSET 0") + ") x GROUP BY u"
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
                    if definition.aggregate == "sum" and np.any(col[ok] >= UNKNOWN / 2):
                        unknown.add(key)
                    d.values[definition.key][pos[hit][ok]] = col[ok]
    for i, e in enumerate(experiments):
        if out[e.key].users:
            out[e.key].failed_runs = _failed_runs(conn, f"assigned_{i}", out[e.key])
        if e.key in unknown:
            _resolve_unknown(conn, f"assigned_{i}", e, out[e.key])
    elapsed = time.perf_counter() - start
    for d in out.values():
        d.sql_seconds = elapsed / max(len(out), 1)
    return out


def _failed_runs(conn: Any, table: str, data: ArmData) -> np.ndarray:
    """Agent runs that ended in an error, per user, after the first exposure.

    Error rows are rare, so this reads them through the event-key index instead of adding a
    column to the main pass (a store without the index costs one more plain scan).
    """
    counts = np.zeros(len(data.users))
    where = {u: j for j, u in enumerate(data.users)}
    for user, n in conn.execute(
            f"SELECT e.user_key, COUNT(*) FROM events e JOIN {table} a "
            "ON a.user_key = e.user_key WHERE e.event_key = ? AND a.n_arms = 1 "
            "AND (e.ts >= a.first_ts OR e.request_id = a.first_request) GROUP BY e.user_key",
            (GENERATION_ERROR,)):
        if user in where:
            counts[where[user]] = n
    return counts


def _resolve_unknown(conn: Any, table: str, experiment: Experiment,
                     data: ArmData) -> None:
    """Which users' sums are unknown, per metric, and which models left them so (rare path).

    Their value becomes NaN: an unpriced run makes a user's cost unknown, never the sum of
    the priced rest.
    """
    arms = {experiment.control: 0, experiment.treatment: 1}
    where = {u: j for j, u in enumerate(data.users)}
    for key in experiment.metrics:
        d = METRICS[key]
        if d.aggregate != "sum":
            continue
        rows = conn.execute(
            f"SELECT e.user_key, a.arm, COALESCE(e.model, '(no model recorded)'), COUNT(*) "
            f"FROM events e JOIN {table} a ON a.user_key = e.user_key "
            "WHERE e.event_key = ? AND e.value IS NULL AND a.n_arms = 1 "
            "AND (e.ts >= a.first_ts OR e.request_id = a.first_request) "
            "GROUP BY e.user_key, a.arm, e.model", (d.event_key,)).fetchall()
        hits = [(where[u], arms[arm], model, n) for u, arm, model, n in rows
                if u in where and arm in arms]
        if not hits:
            continue
        flags = np.zeros(len(data.users), dtype=bool)
        flags[[j for j, *_ in hits]] = True
        data.unknown[key] = flags
        data.values[key][flags] = np.nan
        models: dict[tuple[int, str], int] = {}
        for _, arm, model, n in hits:
            models[(arm, model)] = models.get((arm, model), 0) + n
        data.unknown_models[key] = models


def empty_arm_data(experiment: Experiment) -> ArmData:
    """No users at all (no store yet)."""
    return ArmData([], np.zeros(0, np.int8), np.zeros(0), {k: np.zeros(0) for k in
                                                           experiment.metrics})
