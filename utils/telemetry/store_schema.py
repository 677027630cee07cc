"""The event store's schema: its migrations, the rows a request writes, and `connect`.

The migrations are the one definition of the tables (docs/CONTRACTS.md describes them for
readers, and a test keeps the two equal). Each entry migrates schema version i to i + 1.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.telemetry.store_faults import DEFAULT_LOCK_TIMEOUT_S

SCHEMA_VERSION = 5

# Each entry migrates the schema from version i to i + 1.
_MIGRATIONS: list[str] = [
    """
    CREATE TABLE IF NOT EXISTS requests (
        request_id TEXT PRIMARY KEY, ts REAL NOT NULL, user_key TEXT NOT NULL,
        context_json TEXT NOT NULL, routed_to_security INTEGER NOT NULL, status TEXT NOT NULL,
        simulated INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE IF NOT EXISTS exposures (
        id INTEGER PRIMARY KEY, ts REAL NOT NULL, request_id TEXT NOT NULL,
        user_key TEXT NOT NULL, config_key TEXT NOT NULL, variation_key TEXT NOT NULL,
        in_experiment INTEGER NOT NULL, context_json TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY, ts REAL NOT NULL, request_id TEXT NOT NULL,
        user_key TEXT NOT NULL, event_key TEXT NOT NULL, value REAL,
        config_key TEXT, variation_key TEXT, agent TEXT, model TEXT, provider TEXT,
        simulated INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE IF NOT EXISTS feedback (
        request_id TEXT PRIMARY KEY, ts REAL NOT NULL, user_key TEXT NOT NULL,
        kind TEXT NOT NULL, source TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS exposures_by_config ON exposures (config_key, user_key, ts);
    CREATE INDEX IF NOT EXISTS exposures_by_request ON exposures (request_id);
    CREATE INDEX IF NOT EXISTS events_by_key ON events (event_key, user_key);
    CREATE INDEX IF NOT EXISTS events_by_request ON events (request_id);
    """,
    # 2: the OpenTelemetry trace of a request (NULL when tracing was off), so feedback, a
    # verdict's users or an offline run can be opened as traces. Readers tolerate its absence.
    """
    ALTER TABLE requests ADD COLUMN trace_id TEXT;
    ALTER TABLE requests ADD COLUMN span_id TEXT;
    """,
    # 3: requests run for an experiment outside production traffic (an offline experiment's
    # tasks, or an evaluation payload) are marked here; online verdicts leave them out.
    """
    CREATE TABLE IF NOT EXISTS marked_runs (
        request_id TEXT PRIMARY KEY, experiment TEXT NOT NULL, variant TEXT NOT NULL,
        task_id TEXT, repeat INTEGER, source TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS marked_runs_by_variant ON marked_runs (experiment, variant);
    """,
    # 4: the LaunchDarkly tracker of each served config (ldai resumption token), so feedback
    # joins its run; tracker_simulated marks a run that was simulated (LD_TRACK_SIMULATED).
    """
    ALTER TABLE exposures ADD COLUMN tracker_token TEXT;
    ALTER TABLE exposures ADD COLUMN tracker_simulated INTEGER NOT NULL DEFAULT 0;
    """,
    # 5: the data of an event beyond its columns, as JSON (NULL for most rows): a graph path
    # event's `{"path": [...]}`, a handoff's `{"sourceKey": ..., "targetKey": ...}`.
    """
    ALTER TABLE events ADD COLUMN data_json TEXT;
    """,
]
MARKED_RUNS_TABLE = "marked_runs"
# The columns a writer names for each event row (never relying on the table's column count).
EVENT_COLUMNS = ("ts, request_id, user_key, event_key, value, config_key, variation_key, agent, "
                 "model, provider, simulated")
# Since schema 5; stores assembled by other tools may lack it (no reader of metrics needs it).
EVENT_DATA_COLUMN = "data_json"
REQUEST_COLUMNS = ("request_id, ts, user_key, context_json, routed_to_security, status, "
                    "simulated, trace_id, span_id")


@dataclass(frozen=True)
class Exposure:
    config_key: str
    variation_key: str
    in_experiment: bool
    tracker_token: str | None = None  # LaunchDarkly mode: the run's ldai resumption token
    tracker_simulated: bool = False  # that run was simulated (tracked only when allowed)


@dataclass(frozen=True)
class EventRow:
    event_key: str
    value: float | None
    config_key: str | None
    variation_key: str | None
    agent: str | None
    model: str | None
    provider: str | None
    simulated: bool
    # What the event's LaunchDarkly data carries beyond these columns (graph path, handoff).
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunMark:
    """Marks a request as run for an experiment, not by a user: online verdicts exclude it."""

    experiment: str
    variant: str
    task_id: str | None = None
    repeat: int | None = None
    source: str = "offline"


@dataclass
class WriteBatch:
    """Everything one request (or one feedback) writes, committed atomically."""

    request_id: str
    user_key: str
    context: dict[str, Any] = field(default_factory=dict)  # targeting attributes, no text
    exposures: list[Exposure] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    request_status: str | None = None  # set → a `requests` row is written
    routed_to_security: bool = False
    simulated: bool = False
    feedback: tuple[str, str] | None = None  # (kind, source); events only if first feedback
    trace_id: str | None = None  # hex OpenTelemetry ids of the request's run (tracing on)
    span_id: str | None = None
    mark: RunMark | None = None  # set → a `marked_runs` row: not a user's request
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True)
class RequestRecord:
    request_id: str
    user_key: str
    context: dict[str, Any]
    status: str
    exposures: list[dict[str, Any]]
    trace_id: str | None = None
    span_id: str | None = None


@functools.cache
def schema_tables() -> dict[str, tuple[str, ...]]:
    """Every table the migrations create (not `schema_version`), its columns in order.

    Read from the migrations themselves, run on an in-memory database: tools that handle
    whole stores (tools/copy_store.py) follow the schema without a list of their own."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        _migrate(conn)
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")]
        return {t: tuple(r[1] for r in conn.execute(f"PRAGMA table_info({t})"))
                for t in names if t != "schema_version"}
    finally:
        conn.close()


def connect(path: Path, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> sqlite3.Connection:
    """A connection with the store's pragmas, schema created or migrated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=lock_timeout_s, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(lock_timeout_s * 1000)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: commits survive a crash
        _migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        version = row[0] if row else 0
        for step in range(version, SCHEMA_VERSION):
            for statement in _MIGRATIONS[step].split(";"):
                if statement.strip():
                    conn.execute(statement)
        if row is None:
            conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        elif version != SCHEMA_VERSION:
            conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


# PostgreSQL runs the same migrations, with its spelling of two types: a float8 timestamp
# (REAL is float4 there) and an identity key (SQLite's INTEGER PRIMARY KEY is its rowid).
_PG_TYPES = [("id INTEGER PRIMARY KEY", "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
             (" REAL", " DOUBLE PRECISION")]
_PG_MIGRATION_LOCK = 7_301_123  # advisory lock: workers starting together migrate one by one


def pg_migration(step: int) -> list[str]:
    """Migration `step` (version step → step + 1) as PostgreSQL statements."""
    sql = _MIGRATIONS[step]
    for sqlite_text, pg_text in _PG_TYPES:
        sql = sql.replace(sqlite_text, pg_text)
    return [s.strip() for s in sql.split(";") if s.strip()]


def migrate_postgres(conn: Any) -> None:
    """Create or migrate the schema on a psycopg connection (commits)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        version = row[0] if row else 0
        for step in range(version, SCHEMA_VERSION):
            for statement in pg_migration(step):
                conn.execute(statement)
        if row is None:
            conn.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))
        elif version != SCHEMA_VERSION:
            conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))
