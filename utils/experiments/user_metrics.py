"""Per-user metric values of each experiment, aggregated in SQL from the event store.

Reads only the documented columns (docs/CONTRACTS.md) of `exposures` and `events`, so any store
with those tables works, SQLite or PostgreSQL: the SQL is the two databases' common dialect
(no bare columns). Per-user, per-agent values are aggregated in SQL in two passes shared by
every experiment (`load_all_arm_data`); the maths is in `utils.stats.bayesian` and the
verdicts in `utils.experiments.verdicts`.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from utils.experiments.definitions import Experiment
from utils.experiments.event_rows import (
    NO_AGENT,
    UNKNOWN,
    Coder,
    Column,
    aggregates,
    columns_of,
    fill,
)
from utils.telemetry.event_store import MARKED_RUNS_TABLE
from utils.telemetry.metrics import METRICS
from utils.telemetry.store_url import (
    PgConnection,
    StoreLocation,
    dialect,
    insert_rows,
    parse_location,
    table_names,
)

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
    # Users of a summed metric with an event whose value is NULL (an unpriced model's cost):
    # their total is unknown, never the sum of the rest. metric key -> bool per user.
    unknown: dict[str, np.ndarray] = field(default_factory=dict)
    # (arm, model) -> runs with a NULL value, per metric key with unknown users.
    unknown_models: dict[str, dict[tuple[int, str], int]] = field(default_factory=dict)
    failed_runs: np.ndarray | None = None  # agent runs that ended in an error, per user
    # Summed metrics, per agent: metric key -> agent -> per-user sum of the agent's valued
    # events (NaN = no event of the agent), and the agent's valueless runs per user.
    agent_sums: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    agent_unknown: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    reread_users: int = 0  # users with events from before their first exposure (read again)

    def take(self, keep: np.ndarray) -> ArmData:
        """The users at positions `keep` (sorted), with all their values."""
        def sub(d: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
            return {k: {a: v[keep] for a, v in by.items()} for k, by in d.items()}

        return replace(
            self, users=[self.users[i] for i in keep], arm=self.arm[keep],
            first_ts=self.first_ts[keep], values={k: v[keep] for k, v in self.values.items()},
            unknown={k: v[keep] for k, v in self.unknown.items()},
            failed_runs=None if self.failed_runs is None else self.failed_runs[keep],
            agent_sums=sub(self.agent_sums), agent_unknown=sub(self.agent_unknown))

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
            conn = PgConnection(psycopg.connect(loc.url, autocommit=True, connect_timeout=10),
                                binary=True)
            # The report's sorts and hash aggregates over every user, in memory (the server's
            # default of 4 MB spills them to disk); this session only.
            conn.execute(f"SET work_mem = '{READER_WORK_MEM}'")
            # No parallel workers: the report already runs its two passes at once, on two
            # connections, and a worker's partial GROUP BY holds nearly every (user, agent)
            # group (a user's events are spread over the whole table), so the final merge
            # redoes most of it: in parallel the events pass takes about twice the CPU for a
            # tenth less time alone, and the whole report is slower (bench/bench_report.py).
            conn.execute("SET max_parallel_workers_per_gather = 0")
        except psycopg.Error as exc:
            raise EventStoreError(f"{loc}: cannot connect to the event store: {exc}") from exc
    else:
        # check_same_thread=False: the report hands a connection to its events-pass thread
        # (one thread uses it at a time).
        conn = sqlite3.connect(f"file:{loc.path}?mode=ro", uri=True, timeout=10.0,
                               check_same_thread=False)
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


@dataclass
class _Assignment:
    """Users exposed to one config in an experiment (in code-point order), with their first
    in-experiment exposure's ts and the lowest and highest variation they saw."""

    users: np.ndarray  # object array of user keys
    first_ts: np.ndarray
    low: np.ndarray
    high: np.ndarray
    first_any: np.ndarray  # the user's first in-experiment exposure to any of the configs


def _assignments(conn: Any, experiments: list[Experiment]) -> dict[str, _Assignment]:
    """Per config of `experiments`, from one pass over `exposures`. A user with one variation
    has lowest == highest; the first exposure's ts decides whether later events count."""
    configs = sorted({e.config for e in experiments})
    cols, params = [], []
    for c in configs:
        cols += [f"MIN(CASE WHEN config_key = ? THEN {x} END)" for x in ("ts", "variation_key")]
        cols.append("MAX(CASE WHEN config_key = ? THEN variation_key END)")
        params += [c, c, c]
    rows = conn.execute(
        "SELECT user_key, " + ", ".join(cols) + " FROM exposures WHERE in_experiment = 1 "
        f"AND config_key IN ({', '.join('?' * len(configs))})" + unmarked(conn, "request_id")
        + " GROUP BY user_key", params + configs).fetchall()
    # Users in code-point order (Python's sort: the same on both databases' collations).
    table = np.array(sorted(rows), dtype=object).reshape(len(rows), 1 + 3 * len(configs))
    first = table[:, 1::3].astype(float)  # users x configs; NaN = not exposed to it
    first_any = np.nanmin(first, axis=1) if len(rows) else np.zeros(0)
    out = {}
    for j, c in enumerate(configs):
        mine = ~np.isnan(first[:, j])
        out[c] = _Assignment(table[mine, 0], first[mine, j], table[mine, 2 + 3 * j],
                             table[mine, 3 + 3 * j], first_any[mine])
    return out


def _keys_in(column: str, keys: list[str]) -> str:
    """`column IN (?, ...)` with one placeholder per key."""
    return f"{column} IN ({', '.join('?' * len(keys))})"


def _flagged_rows(conn: Any, pairs: list[tuple[int, str, str, float]], select: str,
                  params: list[Any], event_keys: list[str], group_by: str) -> list[tuple]:
    """`select` (with its `params`) over the events with one of `event_keys` of each
    (experiment index, user, config, first ts) in `pairs` that count for it: after (or in the
    request of) the user's first exposure.

    The pairs go into a temporary table with each first exposure's request (the lowest id
    among those at the first ts, compared bytewise: the same on both databases); rows start
    with the experiment index `d.j`."""
    pg = dialect(conn) == "postgresql"
    real = "DOUBLE PRECISION" if pg else "REAL"
    conn.execute("DROP TABLE IF EXISTS report_users")
    conn.execute(f"CREATE TEMP TABLE report_users (j INTEGER, user_key TEXT, c TEXT, t {real}, "
                 "r TEXT, PRIMARY KEY (user_key, j))" + ("" if pg else " WITHOUT ROWID"))
    try:
        insert_rows(conn, "report_users", ("j", "user_key", "c", "t"), pairs)
        byte_order = ' COLLATE "C"' if pg else ""
        conn.execute(
            f"UPDATE report_users SET r = (SELECT MIN(x.request_id{byte_order}) FROM exposures x "
            "WHERE x.config_key = report_users.c AND x.in_experiment = 1 AND x.user_key = "
            "report_users.user_key AND x.ts = report_users.t" + unmarked(conn, "x.request_id")
            + ")")
        if pg:
            conn.execute("ANALYZE report_users")
        return conn.execute(
            f"SELECT d.j, {select} FROM report_users d JOIN events e ON e.user_key = d.user_key "
            f"WHERE {_keys_in('e.event_key', event_keys)} AND (e.ts >= d.t OR e.request_id = d.r)"
            + unmarked(conn, "e.request_id") + f" GROUP BY d.j, {group_by}",
            params + event_keys).fetchall()
    finally:
        conn.execute("DROP TABLE IF EXISTS report_users")


def load_all_arm_data(
    conn: Any, experiments: list[Experiment], events_conn: Any = None
) -> dict[str, ArmData]:
    """Assign users to arms and aggregate every experiment's metrics per user and agent.

    Two passes over the store, shared by every experiment: one over `exposures` (each user's
    first in-experiment exposure and variations per config), one over `events` grouped by user
    and agent with no join.

    A user's events count for an experiment from its first exposure on, so the totals are
    exact for every user whose earliest event is not before it; the others (a user who used
    the app before entering the experiment) are read again, their events filtered by that
    exposure (`_flagged_rows`). Sums with a valueless event (an unpriced run's cost) are
    resolved the same way (`_resolve_unknown`).

    Given `events_conn`, a second connection to the same store, the events pass runs on it
    while `conn` runs the exposures pass and then reads again, ahead of time, the users the
    exposures alone point to (exposed to another config first: their earliest event is
    probably before), while the pool thread turns the events pass's rows into arrays; the
    users the events pass finds and the guess missed are read after. Both databases work
    while a query runs without holding Python's lock, so the reads overlap on two cores; the
    values are the same either way.
    """
    columns = columns_of(experiments)
    with ThreadPoolExecutor(1) as pool:
        # On one connection the events pass waits for the exposures pass (and is skipped when
        # no experiment has users); on two it starts now.
        early = None if events_conn is None else pool.submit(_events_pass, events_conn, columns)
        assigned = _assignments(conn, experiments)
        out: dict[str, ArmData] = {}
        guessed: dict[int, np.ndarray] = {}  # experiment -> positions of users read ahead
        for i, e in enumerate(experiments):
            a = assigned[e.config]
            # One variation, and one of the arms; the others were seen in both arms (or in a
            # variation that is not an arm) and are left out.
            ok = (a.low == a.high) & ((a.low == e.control) | (a.low == e.treatment))
            users = a.users[ok].tolist()
            definitions = [METRICS[k] for k in e.metrics]
            values = {d.key: np.full(len(users), np.nan if d.statistic == "percentile" else 0.0)
                      for d in definitions}
            out[e.key] = ArmData(users, (a.low[ok] == e.treatment).astype(np.int8),
                                 a.first_ts[ok], values, int(np.count_nonzero(~ok)),
                                 failed_runs=np.zeros(len(users)))
            if early is not None:
                guessed[i] = np.flatnonzero(a.first_any[ok] < a.first_ts[ok])
        active = [(i, e) for i, e in enumerate(experiments) if out[e.key].users]
        if not active:
            return out
        # Users of any experiment, in one index space; other users' rows are dropped.
        coder = Coder(sorted(set().union(*(out[e.key].users for _, e in active))))
        if early is not None:  # tabulated in the pool thread, while the read-ahead runs
            tabled = pool.submit(lambda: coder.table(early.result(), columns))
        ahead = _reread(conn, experiments, out, guessed, columns)
        table = tabled.result() if early else coder.table(_events_pass(conn, columns), columns)
    earliest = np.full(len(coder.users), np.inf)  # each user's earliest counted event
    np.minimum.at(earliest, table.uid, table.first_ts)
    uids = {i: coder.uids(out[e.key].users) for i, e in active}
    dirty: dict[int, np.ndarray] = {}  # experiment -> positions of its users to read again
    for i, e in active:
        late = np.flatnonzero(earliest[uids[i]] < out[e.key].first_ts)
        if late.size:
            dirty[i] = late
            out[e.key].reread_users = int(late.size)
    missed = {i: np.setdiff1d(late, guessed.get(i, []), assume_unique=True)
              for i, late in dirty.items()}
    exact = coder.table(ahead + _reread(conn, experiments, out, missed, columns), columns,
                        experiment_column=True)
    unknown: list[int] = []
    for i, e in active:
        rows_i = table
        if i in dirty:
            again = np.zeros(len(coder.users), dtype=bool)
            again[uids[i][dirty[i]]] = True
            # Read-ahead rows of users who turned out exact are the same totals: left out.
            rows_i = table.take(~again[table.uid]).plus(
                exact.take((exact.experiment == i) & again[exact.uid]))
        if fill(out[e.key], e, rows_i, columns, coder, uids[i]):
            unknown.append(i)
    for i in unknown:
        _resolve_unknown(conn, i, experiments[i], out[experiments[i].key])
    return out


def _reread(conn: Any, experiments: list[Experiment], out: dict[str, ArmData],
            positions: dict[int, np.ndarray], columns: list[Column]) -> list[tuple]:
    """The events pass's rows again for the users at `positions` of each experiment, counting
    only the events from their first exposure on; rows start with the experiment index."""
    pairs = [(i, out[experiments[i].key].users[j], experiments[i].config,
              float(out[experiments[i].key].first_ts[j]))
             for i, at in positions.items() for j in at.tolist()]
    if not pairs:
        return []
    select, params = aggregates(columns, "e.")
    return _flagged_rows(conn, pairs, f"e.user_key, e.agent, MIN(e.ts), {select}", params,
                         sorted({key for key, _ in columns}), "e.user_key, e.agent")


def _events_pass(conn: Any, columns: list[Column]) -> list[tuple]:
    """Per (user, agent): the earliest event and one aggregate per column (`aggregates`)."""
    event_keys = sorted({key for key, _ in columns})
    select, params = aggregates(columns)
    return conn.execute(
        f"SELECT user_key, agent, MIN(ts), {select} FROM events "
        f"WHERE {_keys_in('event_key', event_keys)}" + unmarked(conn, "request_id")
        + " GROUP BY user_key, agent",
        params + event_keys).fetchall()


def _resolve_unknown(conn: Any, i: int, experiment: Experiment, data: ArmData) -> None:
    """Which users' sums are unknown, per metric, and which models and agents left them so
    (rare path): their value becomes NaN, since an unpriced run makes a user's cost unknown,
    never the sum of the priced rest; each agent's share keeps the priced part and counts the
    valueless runs."""
    keys = [METRICS[k] for k in experiment.metrics if METRICS[k].aggregate == "sum"]
    suspects = set()
    for d in keys:
        for sums in data.agent_sums.get(d.key, {}).values():
            suspects.update(np.flatnonzero(sums >= UNKNOWN / 2).tolist())
    if not suspects:
        return
    pairs = [(i, data.users[j], experiment.config, float(data.first_ts[j]))
             for j in sorted(suspects)]
    rows = _flagged_rows(
        conn, pairs, "e.user_key, e.event_key, e.agent, COALESCE(e.model, '(no model "
        "recorded)'), COUNT(*) - COUNT(e.value), SUM(e.value)", [],
        sorted({d.event_key for d in keys}), "e.user_key, e.event_key, e.agent, e.model")
    where = {u: j for j, u in enumerate(data.users)}
    for d in keys:
        shares = data.agent_sums.get(d.key, {})
        flags = np.zeros(len(data.users), dtype=bool)
        models: dict[tuple[int, str], int] = {}
        valued: dict[tuple[str, int], float] = {}
        for _, user, event_key, agent, model, nulls, total in rows:
            if event_key != d.event_key:
                continue
            j = where[user]
            cell = (agent or NO_AGENT, j)
            valued[cell] = valued.get(cell, 0.0) + float(total or 0.0)
            if nulls:
                flags[j] = True
                arm = int(data.arm[j])
                models[(arm, model)] = models.get((arm, model), 0) + int(nulls)
                data.agent_unknown.setdefault(d.key, {}).setdefault(
                    agent or NO_AGENT, np.zeros(len(data.users)))[j] += nulls
        for (agent, j), total in valued.items():
            if agent in shares and shares[agent][j] >= UNKNOWN / 2:
                shares[agent][j] = total
        if flags.any():
            data.unknown[d.key] = flags
            data.values[d.key][flags] = np.nan
            data.unknown_models[d.key] = models


def empty_arm_data(experiment: Experiment) -> ArmData:
    """No users at all (no store yet)."""
    return ArmData([], np.zeros(0, np.int8), np.zeros(0), {k: np.zeros(0) for k in
                                                           experiment.metrics})
