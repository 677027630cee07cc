"""The event store on PostgreSQL (psycopg 3, a connection pool), for more than one host.

Same schema, migrations and writer as `EventStore`: one writer thread per process commits
group transactions and resolves each request's future only after COMMIT returns; readers share
the pool. A lost database answers `StoreUnavailable` (503, /health degraded) with the reason;
the pool drops broken connections and opens new ones, so the store recovers by itself.
`problems()` (/health) probes the database at most once a second, so /health turns degraded
while the database is down even if nothing is written, and ok again once it is back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool

from utils.telemetry.event_store import EventStore
from utils.telemetry.store_faults import DEFAULT_LOCK_TIMEOUT_S, StoreUnavailable
from utils.telemetry.store_schema import migrate_postgres
from utils.telemetry.store_url import StoreLocation, parse_location, pg_row_factory, pg_sql

log = logging.getLogger(__name__)

DEFAULT_POOL_SIZE = 5  # EVENTS_POOL_SIZE's default (utils/settings.py) for tools and tests
PROBE_INTERVAL_S = 1.0  # /health asks the database itself at most this often per process


def pg_fault(location: str, exc: BaseException) -> str | None:
    """Why the database cannot take writes if `exc` says so, else None (one bad batch)."""
    if isinstance(exc, StoreUnavailable):
        return str(exc)
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return f"event store {location} is unreachable (no connection within the timeout): {exc}"
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return f"event store {location} is read-only: {exc}"
    # OperationalError: connection lost or refused, shutdown, disk full, statement timeout.
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"event store {location} is unavailable: {first}"
    return None


class PgEventStore(EventStore):
    """`EventStore` on a PostgreSQL database."""

    def __init__(self, url: str, *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
                 pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.url = url
        self._migrated = False
        ms = int(lock_timeout_s * 1000)
        # A statement (or a lock wait) past the timeout is cancelled: the writer answers 503
        # within about `lock_timeout_s`, as on SQLite.
        self._pool = psycopg_pool.ConnectionPool(
            url, min_size=1, max_size=pool_size, open=False, name="event-store",
            timeout=lock_timeout_s, reconnect_timeout=0,
            kwargs={"connect_timeout": max(2, int(lock_timeout_s)),
                    "options": f"-c statement_timeout={ms} -c lock_timeout={ms}"},
            check=psycopg_pool.ConnectionPool.check_connection)
        self._pool.open(wait=False)
        self.location = str(StoreLocation("postgresql", url=url))
        self._probe_lock = threading.Lock()
        self._probed_at = float("-inf")
        super().__init__(None, lock_timeout_s=lock_timeout_s)

    def _start(self) -> None:
        self._release(self._begin())  # connect and migrate now, so a bad URL shows at start-up

    def _check_identity(self, raise_error: bool = True) -> None:
        """No file to be deleted under us."""

    def problems(self) -> list[str]:
        """The last write's fault, or what a probe of the database finds (cached for
        `PROBE_INTERVAL_S`); blocks up to the connect timeout while it is unreachable, so
        callers on an event loop run it in a thread."""
        with self._probe_lock:
            if time.monotonic() - self._probed_at >= PROBE_INTERVAL_S:
                self._problem = self._probe()
                self._probed_at = time.monotonic()
            return [self._problem] if self._problem else []

    def _probe(self) -> str | None:
        """Why the database cannot take writes right now, or None when it can."""
        if self._problem:  # known down: a direct attempt answers at once (the pool would wait)
            reason = self._unreachable(None)
            if reason:
                return reason
        try:
            with self._pool.connection(timeout=min(self.lock_timeout_s, 2.0)) as conn:
                row = conn.execute("SELECT current_setting('transaction_read_only')").fetchone()
        except psycopg_pool.PoolTimeout as exc:
            return self._unreachable(exc)
        except psycopg.Error as exc:
            return pg_fault(self.location, exc) or f"event store {self.location}: {exc}"
        if row and row[0] == "on":
            return f"event store {self.location} is read-only (a standby, or read-only mode)"
        return None

    def _unreachable(self, exc: psycopg_pool.PoolTimeout | None) -> str | None:
        """The pool only says it timed out: one direct connection attempt says why (None:
        it connects, and there is no `exc` either)."""
        try:
            psycopg.connect(self.url, connect_timeout=max(1, int(min(self.lock_timeout_s, 2))),
                            autocommit=True).close()
        except psycopg.Error as direct:
            return pg_fault(self.location, direct) or f"event store {self.location}: {direct}"
        return None if exc is None else pg_fault(self.location, exc) or str(exc)

    def _begin(self) -> Any:
        try:
            conn = self._pool.getconn(timeout=self.lock_timeout_s)
        except psycopg_pool.PoolTimeout as exc:
            raise StoreUnavailable(self._unreachable(exc) or str(exc)) from exc
        if not self._migrated:
            try:
                migrate_postgres(conn)
            except BaseException:
                self._pool.putconn(conn)
                raise
            self._migrated = True
        return conn

    def _commit_tx(self, conn: Any) -> None:
        conn.commit()

    def _rollback_tx(self, conn: Any) -> None:
        with contextlib.suppress(psycopg.Error):
            conn.rollback()

    def _release(self, conn: Any) -> None:
        self._pool.putconn(conn)  # a broken connection is discarded and replaced

    def _after_commit(self) -> None:
        """COMMIT returned: the rows are durable."""

    def _fault(self, exc: BaseException, waited_s: float | None = None) -> str | None:
        return pg_fault(self.location, exc)

    def _sql(self, sql: str) -> str:
        return pg_sql(sql)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            with self._pool.connection(timeout=self.lock_timeout_s) as conn:
                cur = conn.cursor(row_factory=pg_row_factory)
                return cur.execute(pg_sql(sql), tuple(params)).fetchall()
        except psycopg_pool.PoolTimeout as exc:
            raise StoreUnavailable(self._unreachable(exc) or str(exc)) from exc
        except psycopg.Error as exc:
            reason = pg_fault(self.location, exc)
            if reason is None:
                raise
            raise StoreUnavailable(reason) from exc

    def _columns(self, table: str) -> set[str]:
        rows = self._read("SELECT column_name FROM information_schema.columns WHERE "
                          "table_schema = current_schema() AND table_name = ?", (table,))
        return {r[0] for r in rows}

    def close(self, timeout: float = 10.0) -> None:
        if self._closed:
            return
        super().close(timeout)
        self._pool.close()


def open_event_store(location: StoreLocation | str | Path, *,
                     lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
                     pool_size: int = DEFAULT_POOL_SIZE) -> EventStore:
    """The store at `location` (a `StoreLocation`, URL or SQLite path)."""
    if not isinstance(location, StoreLocation):
        location = parse_location(location)
    if location.is_postgres:
        assert location.url is not None
        return PgEventStore(location.url, lock_timeout_s=lock_timeout_s, pool_size=pool_size)
    assert location.path is not None
    return EventStore(location.path, lock_timeout_s=lock_timeout_s)
