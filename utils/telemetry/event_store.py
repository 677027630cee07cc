"""The event store: SQLite in WAL mode, written by one background thread in group commits.

Handlers hand a request's rows to `write()` and await it; the writer thread drains the queue,
commits everything waiting in one transaction, and only then resolves the futures. So the
event loop never blocks on disk, a response is only sent once its rows are committed (an
acknowledged request survives `kill -9`), and several server processes can share one file
(`BEGIN IMMEDIATE` + busy timeout serialise their writers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
_BUSY_TIMEOUT_MS = 30_000
_MAX_BATCHES_PER_COMMIT = 256

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
]
_REQUEST_COLUMNS = ("request_id, ts, user_key, context_json, routed_to_security, status, "
                    "simulated, trace_id, span_id")


@dataclass(frozen=True)
class Exposure:
    config_key: str
    variation_key: str
    in_experiment: bool


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


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the store's pragmas, schema created or migrated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: commits survive a process crash
    conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    _migrate(conn)
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


class EventStore:
    """Durable, concurrent-safe recording of requests, exposures, events and feedback."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._queue: queue.Queue[tuple[WriteBatch, Future] | None] = queue.Queue()
        self._local = threading.local()
        self._writer_conn = connect(self.path)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="event-store-writer", daemon=True)
        self._thread.start()

    # -- writing --------------------------------------------------------------------------

    def submit(self, batch: WriteBatch) -> Future:
        """Queue a batch; the future resolves to "recorded" or "duplicate" once committed."""
        future: Future = Future()
        if self._closed:
            future.set_exception(RuntimeError(f"event store {self.path} is closed"))
            return future
        self._queue.put((batch, future))
        return future

    async def write(self, batch: WriteBatch) -> str:
        """Commit a batch without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(batch))

    def write_sync(self, batch: WriteBatch, timeout: float = 30.0) -> str:
        return self.submit(batch).result(timeout=timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            pending = [item]
            while len(pending) < _MAX_BATCHES_PER_COMMIT:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._commit(pending)
                    return
                pending.append(more)
            self._commit(pending)

    def _commit(self, pending: list[tuple[WriteBatch, Future]]) -> None:
        conn = self._writer_conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            outcomes = [self._apply(conn, batch) for batch, _ in pending]
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if len(pending) > 1:  # isolate the bad batch; the others still commit
                for one in pending:
                    self._commit([one])
                return
            log.exception("event store write failed for request %s", pending[0][0].request_id)
            pending[0][1].set_exception(exc)
            return
        for (_, future), outcome in zip(pending, outcomes, strict=True):
            future.set_result(outcome)

    @staticmethod
    def _apply(conn: sqlite3.Connection, batch: WriteBatch) -> str:
        context_json = json.dumps(batch.context, sort_keys=True)
        if batch.feedback is not None:
            kind, source = batch.feedback
            cursor = conn.execute(
                "INSERT OR IGNORE INTO feedback VALUES (?, ?, ?, ?, ?)",
                (batch.request_id, batch.ts, batch.user_key, kind, source),
            )
            if cursor.rowcount == 0:
                return "duplicate"
        if batch.request_status is not None:
            conn.execute(
                f"INSERT OR REPLACE INTO requests ({_REQUEST_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (batch.request_id, batch.ts, batch.user_key, context_json,
                 int(batch.routed_to_security), batch.request_status, int(batch.simulated),
                 batch.trace_id, batch.span_id),
            )
        conn.executemany(
            "INSERT INTO exposures (ts, request_id, user_key, config_key, variation_key,"
            " in_experiment, context_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(batch.ts, batch.request_id, batch.user_key, e.config_key, e.variation_key,
              int(e.in_experiment), context_json) for e in batch.exposures],
        )
        conn.executemany(
            "INSERT INTO events (ts, request_id, user_key, event_key, value, config_key,"
            " variation_key, agent, model, provider, simulated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(batch.ts, batch.request_id, batch.user_key, e.event_key, e.value, e.config_key,
              e.variation_key, e.agent, e.model, e.provider, int(e.simulated))
             for e in batch.events],
        )
        return "recorded"

    # -- reading --------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    def _has_trace_columns(self, conn: sqlite3.Connection) -> bool:
        """Whether `requests` has the trace columns (a file another version wrote may not)."""
        columns = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
        return {"trace_id", "span_id"} <= columns

    def get_request(self, request_id: str) -> RequestRecord | None:
        conn = self._reader()
        trace = "trace_id, span_id" if self._has_trace_columns(conn) else \
            "NULL AS trace_id, NULL AS span_id"
        row = conn.execute(
            f"SELECT request_id, user_key, context_json, status, {trace} FROM requests"
            " WHERE request_id = ?", (request_id,),
        ).fetchone()
        if row is None:
            return None
        exposures = [dict(r) for r in conn.execute(
            "SELECT config_key, variation_key, in_experiment FROM exposures"
            " WHERE request_id = ? ORDER BY id", (request_id,),
        )]
        return RequestRecord(row["request_id"], row["user_key"],
                             json.loads(row["context_json"]), row["status"], exposures,
                             row["trace_id"], row["span_id"])

    def trace_ids(self, request_ids: Sequence[str]) -> dict[str, str]:
        """The trace id of each of `request_ids` that was traced (absent: not traced)."""
        conn = self._reader()
        if not request_ids or not self._has_trace_columns(conn):
            return {}
        found: dict[str, str] = {}
        ids = list(dict.fromkeys(request_ids))
        for start in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
            chunk = ids[start:start + 500]
            found.update((r[0], r[1]) for r in conn.execute(
                "SELECT request_id, trace_id FROM requests WHERE trace_id IS NOT NULL AND"
                f" request_id IN ({', '.join('?' * len(chunk))})", chunk))
        return found

    def summary(self) -> dict[str, Any]:
        """Row counts per table and per event key."""
        conn = self._reader()
        tables = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("requests", "exposures", "events", "feedback")}
        by_key = {r[0]: r[1] for r in conn.execute(
            "SELECT event_key, COUNT(*) FROM events GROUP BY event_key ORDER BY event_key")}
        simulated = conn.execute("SELECT COUNT(*) FROM events WHERE simulated = 1").fetchone()[0]
        return {"path": str(self.path), "schema_version": SCHEMA_VERSION, "tables": tables,
                "events_by_key": by_key, "simulated_events": simulated}

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return list(self._reader().execute(sql, params))

    def close(self, timeout: float = 10.0) -> None:
        """Commit everything queued, then stop the writer."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)
        self._writer_conn.close()
