"""The event store: SQLite in WAL mode, written by one background thread in group commits.

Handlers hand a request's rows to `write()` and await it; the writer thread drains the queue,
commits everything waiting in one transaction, and only then resolves the futures. So the
event loop never blocks on disk, a response is only sent once its rows are committed (an
acknowledged request survives `kill -9`), and several server processes can share one file
(`BEGIN IMMEDIATE` + busy timeout serialise their writers).

Faults end in `StoreUnavailable` naming the reason (locked, read-only, full, I/O error, file
deleted) within `lock_timeout_s`; the API answers 503 and /health reads `problems()`. The file's
identity is checked before and after each commit, so a write into a store file deleted while
serving is never acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from pathlib import Path
from typing import Any

from utils.telemetry.store_faults import DEFAULT_LOCK_TIMEOUT_S, StoreUnavailable, store_fault
from utils.telemetry.store_reads import StoreReads
from utils.telemetry.store_schema import (  # noqa: F401 - the store's row types, re-exported
    EVENT_COLUMNS,
    EVENT_DATA_COLUMN,
    MARKED_RUNS_TABLE,
    REQUEST_COLUMNS,
    SCHEMA_VERSION,
    EventRow,
    Exposure,
    RequestRecord,
    RunMark,
    WriteBatch,
    connect,
)

log = logging.getLogger(__name__)

_MAX_BATCHES_PER_COMMIT = 256
_WAIT_BACKSTOP_S = 0.5  # a writer's own lock timeout answers first, with the better reason
_LATE_MARGIN_S = 0.25  # a batch this close to its caller's deadline is not started


class EventStore(StoreReads):
    """Durable, concurrent-safe recording of requests, exposures, events and feedback."""

    def __init__(self, path: Path | None, *,
                 lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is not None:  # (PgEventStore sets its own, without the password)
            self.location = str(self.path)  # what messages and /health name
        self.lock_timeout_s = lock_timeout_s
        self._queue: queue.Queue[tuple[WriteBatch, Future] | None] = queue.Queue()
        self._local = threading.local()
        self._writer_conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file we write
        self._problem: str | None = None  # why the last write failed; None once one succeeds
        self._gone: str | None = None  # the file was deleted or replaced: permanent
        self._closed = False
        try:
            self._start()
        except StoreUnavailable as exc:
            # A locked or read-only store still lets the server start: writes answer 503 with
            # the reason, /health says degraded, and each new write tries to open it again.
            log.error("%s", exc)
            self._problem = str(exc)
        self._thread = threading.Thread(target=self._run, name="event-store-writer", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        self._open()

    def problems(self) -> list[str]:
        """What keeps the store from taking writes right now ([] when healthy); never blocks."""
        self._check_identity(raise_error=False)
        return [p for p in (self._gone or self._problem,) if p]

    def _check_identity(self, raise_error: bool = True) -> None:
        if self._identity is not None and not self._gone:
            try:
                stat = os.stat(self.path)
                same = (stat.st_dev, stat.st_ino) == self._identity
            except FileNotFoundError:
                same = False
            if not same:
                self._gone = (f"event store file {self.path} was deleted or replaced while "
                              "the server was running; nothing more is written to it: "
                              "restore the file or restart the server")
                log.error("%s", self._gone)
        if self._gone and raise_error:
            raise StoreUnavailable(self._gone)

    def _open(self) -> sqlite3.Connection:
        assert self.path is not None
        if self._writer_conn is None:
            try:
                conn = connect(self.path, self.lock_timeout_s)
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(store_fault(self.path, exc, self.lock_timeout_s)
                                       or f"event store {self.path} cannot be opened: {exc}"
                                       ) from exc
            stat = os.stat(self.path)
            self._writer_conn, self._identity = conn, (stat.st_dev, stat.st_ino)
        return self._writer_conn

    # -- writing --------------------------------------------------------------------------

    def submit(self, batch: WriteBatch, deadline: float | None = None) -> Future:
        """Queue a batch; the future resolves to "recorded" or "duplicate" once committed.

        A batch still uncommitted near `deadline` (time.monotonic()), when its caller stops
        waiting and answers 503, is not written: a 503 never leaves its rows behind."""
        future: Future = Future()
        future.deadline = deadline  # type: ignore[attr-defined]
        if self._closed:
            future.set_exception(RuntimeError(f"event store {self.location} is closed"))
            return future
        self._queue.put((batch, future))
        return future

    async def write(self, batch: WriteBatch) -> str:
        """Commit a batch without blocking the event loop, or raise StoreUnavailable.

        SQLite gives up on a lock after `lock_timeout_s`; this wait ends just after it, and a
        batch whose wait ran out before its commit started is dropped."""
        bound = self.lock_timeout_s + _WAIT_BACKSTOP_S
        future = self.submit(batch, deadline=time.monotonic() + bound)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), bound)
        except TimeoutError as exc:
            self._problem = (f"event store {self.location} did not commit within {bound:g} s"
                             " (busy or unreachable)")
            raise StoreUnavailable(self._problem) from exc

    def write_sync(self, batch: WriteBatch, timeout: float = 30.0) -> str:
        return self.submit(batch).result(timeout=timeout)  # tests and tools (no event loop)

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
        # A batch whose caller gave up waiting (and cancelled) is not written at all.
        pending = [(b, f) for b, f in pending if f.set_running_or_notify_cancel()]
        if pending:
            self._commit_group(pending)

    def _commit_group(self, pending: list[tuple[WriteBatch, Future]]) -> None:
        started = time.monotonic()
        try:
            conn = self._begin()
        except Exception as exc:
            self._fail(pending, exc, time.monotonic() - started)
            return
        # The wait for the lock (or a connection) may have outlasted some callers' patience.
        cutoff = time.monotonic() + _LATE_MARGIN_S
        late = [(b, f) for b, f in pending if (getattr(f, "deadline", None) or cutoff) < cutoff]
        if late:
            self._fail(late, StoreUnavailable(
                f"event store {self.location} did not commit within "
                f"{self.lock_timeout_s + _WAIT_BACKSTOP_S:g} s (busy or unreachable)"), None)
            gave_up = {id(f) for _, f in late}
            pending = [(b, f) for b, f in pending if id(f) not in gave_up]
            if not pending:
                self._rollback_tx(conn)
                self._release(conn)
                return
        try:
            outcomes = [self._apply(conn, batch) for batch, _ in pending]
            self._commit_tx(conn)
        except BaseException as exc:
            self._rollback_tx(conn)
            self._release(conn)
            if self._fault(exc) is None and len(pending) > 1:
                for one in pending:  # isolate the bad batch; the others still commit
                    self._commit_group([one])
                return
            if self._fault(exc) is None:
                log.exception("event store write failed for request %s",
                              pending[0][0].request_id)
                _resolve(pending[0][1], exc=exc)
            else:
                self._fail(pending, exc, time.monotonic() - started)
            return
        self._release(conn)
        try:
            self._after_commit()
        except StoreUnavailable as exc:
            self._fail(pending, exc, None)
            return
        self._problem = None
        for (_, future), outcome in zip(pending, outcomes, strict=True):
            _resolve(future, outcome)

    def _fail(self, pending: list[tuple[WriteBatch, Future]], exc: BaseException,
              waited_s: float | None) -> None:
        reason = self._fault(exc, None if waited_s is None else round(waited_s, 1))
        reason = reason or f"event store {self.location} failed: {type(exc).__name__}: {exc}"
        if reason != self._problem:
            log.error("%s (%d batch(es) not written)", reason, len(pending))
        self._problem = reason
        error = StoreUnavailable(reason)
        error.__cause__ = exc
        for _, future in pending:
            _resolve(future, exc=error)

    # -- what differs between databases (PgEventStore overrides these) -------------------

    def _begin(self) -> Any:
        """The writer's connection, in a transaction that holds the write lock."""
        self._check_identity()
        conn = self._open()
        conn.execute("BEGIN IMMEDIATE")
        return conn

    def _commit_tx(self, conn: Any) -> None:
        conn.execute("COMMIT")

    def _rollback_tx(self, conn: Any) -> None:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")

    def _release(self, conn: Any) -> None:
        """The writer keeps its one SQLite connection."""

    def _after_commit(self) -> None:
        self._check_identity()  # a commit into a deleted file is not an acknowledgement

    def _fault(self, exc: BaseException, waited_s: float | None = None) -> str | None:
        return store_fault(self.path or Path(self.location), exc, waited_s)

    def _sql(self, sql: str) -> str:
        return sql

    def _apply(self, conn: Any, batch: WriteBatch) -> str:
        # Upserts in the syntax SQLite (3.24+) and PostgreSQL share; the feedback table's
        # primary key is what counts a feedback once, whoever races to write it.
        q, cur = self._sql, conn.cursor()
        context_json = json.dumps(batch.context, sort_keys=True)
        if batch.feedback is not None:
            kind, source = batch.feedback
            cur.execute(q("INSERT INTO feedback (request_id, ts, user_key, kind, source)"
                          " VALUES (?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING"),
                        (batch.request_id, batch.ts, batch.user_key, kind, source))
            if cur.rowcount == 0:
                return "duplicate"
        if batch.request_status is not None:
            cur.execute(q(_upsert("requests", REQUEST_COLUMNS)),
                        (batch.request_id, batch.ts, batch.user_key, context_json,
                         int(batch.routed_to_security), batch.request_status,
                         int(batch.simulated), batch.trace_id, batch.span_id))
        if batch.mark is not None:
            m = batch.mark
            cur.execute(q(_upsert(MARKED_RUNS_TABLE, _MARK_COLUMNS)),
                        (batch.request_id, m.experiment, m.variant, m.task_id, m.repeat,
                         m.source))
        if batch.exposures:
            cur.executemany(q(
                "INSERT INTO exposures (ts, request_id, user_key, config_key, variation_key,"
                " in_experiment, context_json, tracker_token, tracker_simulated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                [(batch.ts, batch.request_id, batch.user_key, e.config_key, e.variation_key,
                  int(e.in_experiment), context_json, e.tracker_token,
                  int(e.tracker_simulated)) for e in batch.exposures])
        if batch.events:
            cur.executemany(q(
                f"INSERT INTO events ({EVENT_COLUMNS}, {EVENT_DATA_COLUMN})"
                f" VALUES ({', '.join('?' * (len(EVENT_COLUMNS.split(',')) + 1))})"),
                [(batch.ts, batch.request_id, batch.user_key, e.event_key, e.value,
                  e.config_key, e.variation_key, e.agent, e.model, e.provider,
                  int(e.simulated), None if e.data is None else json.dumps(e.data))
                 for e in batch.events])
        return "recorded"

    # -- reading --------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # mode=rw: a reader never creates an empty store where the file was deleted.
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=rw", uri=True,
                                   timeout=self.lock_timeout_s, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    def _columns(self, table: str) -> set[str]:
        """The columns `table` has (a file another version wrote may lack later ones)."""
        return {row[1] for row in self._read(f"PRAGMA table_info({table})")}

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return list(self._reader().execute(sql, params))
        except sqlite3.Error as exc:
            reason = store_fault(self.path, exc, self.lock_timeout_s)
            if reason is None:
                raise
            raise StoreUnavailable(reason) from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._read(sql, params)

    def close(self, timeout: float = 10.0) -> None:
        """Commit everything queued, then stop the writer."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)
        if self._writer_conn is not None:
            self._writer_conn.close()


_MARK_COLUMNS = "request_id, experiment, variant, task_id, repeat, source"


def _upsert(table: str, columns: str) -> str:
    """INSERT that replaces the row with the same request_id (SQLite's INSERT OR REPLACE)."""
    names = [c.strip() for c in columns.split(",")]
    updates = ", ".join(f"{c} = excluded.{c}" for c in names if c != "request_id")
    return (f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(names))})"
            f" ON CONFLICT (request_id) DO UPDATE SET {updates}")


def _resolve(future: Future, outcome: str | None = None, *,
             exc: BaseException | None = None) -> None:
    with contextlib.suppress(InvalidStateError):  # the caller may have stopped waiting
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(outcome)
