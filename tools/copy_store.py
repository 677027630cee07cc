"""Copy an event store into a new, empty one: SQLite to PostgreSQL, back, or like to like.

    python -m tools.copy_store --from data/events.db --to postgresql://USER@HOST:PORT/DB
    python -m tools.copy_store --from postgresql://USER@HOST/DB --to sqlite:///backup.db

Each side is `sqlite:///PATH`, a bare SQLite path, or `postgresql://…` (the forms EVENTS_URL
takes). The target is created or migrated to the current schema first, and must hold no rows
(the tool refuses otherwise: it never merges). Every table the schema defines
(utils/telemetry/store_schema.py) is copied in batches, with progress on stderr. The whole
copy is ONE transaction on the target: rows are checked per table (target count = source
count) before COMMIT, so a failure or a mismatch leaves the target empty (schema only) and
the tool exits non-zero. The source is read in one snapshot, so a live store can be copied.
A PostgreSQL target is then vacuumed and analyzed, as after any bulk load (a failure there is
a warning: the rows are committed).

A store from an older schema version copies too: a column it lacks becomes NULL (or the
column's default) and a table it lacks stays empty. Columns or tables the schema does not
define are named on stderr and not copied.

Exit status: 0 copied and verified, 1 the copy failed or counts differ, 2 bad arguments
(an unknown URL, a missing source, a non-empty target).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TextIO

import psycopg

from utils.telemetry.store_schema import connect, migrate_postgres, schema_tables
from utils.telemetry.store_url import (
    PgConnection,
    StoreLocation,
    column_names,
    dialect,
    parse_location,
    redact,
    table_names,
)

DEFAULT_BATCH = 20_000
PROGRESS_EVERY_S = 1.0


class CopyError(Exception):
    """The copy cannot start or did not complete; the message says why (exit `code`)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _location(value: str, flag: str) -> StoreLocation:
    try:
        return parse_location(value)
    except ValueError as exc:
        raise CopyError(f"{flag} {value!r}: {exc}", code=2) from exc


def _pg_connect(loc: StoreLocation, flag: str) -> Any:
    """A psycopg connection to `loc`; a failure names the flag it came from."""
    try:
        return psycopg.connect(loc.url, connect_timeout=10)
    except psycopg.Error as exc:
        raise CopyError(f"{flag} {loc}: cannot connect: {exc}", code=2) from exc


def _open_source(loc: StoreLocation) -> Any:
    """A read-only connection holding one snapshot (sqlite3 or `PgConnection`)."""
    if loc.is_postgres:
        raw = _pg_connect(loc, "--from")
        raw.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        raw.read_only = True
        return PgConnection(raw)
    assert loc.path is not None
    if not loc.path.is_file():
        raise CopyError(f"--from {loc}: no SQLite store at that path", code=2)
    conn = sqlite3.connect(f"file:{loc.path}?mode=ro", uri=True, isolation_level=None,
                           timeout=10.0)
    conn.execute("BEGIN")  # one read transaction: the snapshot of the first read
    return conn


def _open_target(loc: StoreLocation) -> Any:
    """A connection to the target, migrated to the current schema, in a transaction."""
    if loc.is_postgres:
        raw = _pg_connect(loc, "--to")
        migrate_postgres(raw)  # commits the schema on its own
        raw.execute("SET maintenance_work_mem = '256MB'")  # index builds after the load
        return PgConnection(raw)
    assert loc.path is not None
    try:
        conn = connect(loc.path)
    except sqlite3.Error as exc:
        raise CopyError(f"--to {loc}: cannot open as a SQLite store: {exc}", code=2) from exc
    conn.execute("BEGIN IMMEDIATE")
    return conn


def _plan(src: Any, source: StoreLocation, warn: Callable[[str], None]) -> dict[str, list[str]]:
    """Per schema table, the columns the source has (a table it lacks: no entry)."""
    present = table_names(src)
    schema = schema_tables()
    if not present & set(schema):
        raise CopyError(f"--from {source}: not an event store (none of the tables "
                        f"{', '.join(schema)})", code=2)
    for extra in sorted(present - set(schema) - {"schema_version"}):
        warn(f"table {extra} is not in the schema: not copied")
    plan: dict[str, list[str]] = {}
    for table, columns in schema.items():
        if table not in present:
            warn(f"{table}: absent from the source (an older schema): left empty")
            continue
        have = column_names(src, table)
        for extra in sorted(have - set(columns)):
            warn(f"{table}.{extra} is not in the schema: not copied")
        missing = [c for c in columns if c not in have]
        if missing:
            warn(f"{table}: the source lacks {', '.join(missing)} (an older schema): "
                 "NULL or the column's default")
        plan[table] = [c for c in columns if c in have]
    return plan


def _count(conn: Any, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _batches(src: Any, table: str, columns: list[str], size: int) -> Iterator[list[Any]]:
    sql = f"SELECT {', '.join(columns)} FROM {table}"
    if dialect(src) == "postgresql":
        cur = src.raw.cursor(name=f"copy_{table}")  # server-side: rows arrive in batches
        cur.itersize = size
        cur.execute(sql)
    else:
        cur = src.execute(sql)
    try:
        while rows := cur.fetchmany(size):
            yield rows
    finally:
        cur.close()


@contextmanager
def _writer(dst: Any, table: str, columns: list[str]) -> Iterator[Callable[[list[Any]], None]]:
    """A function writing a batch of rows into `table`: COPY on PostgreSQL, else INSERTs."""
    names = ", ".join(columns)
    if dialect(dst) == "postgresql":
        with dst.raw.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            def write(rows: list[Any]) -> None:
                for row in rows:
                    copy.write_row(row)
            yield write
        return
    sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
    yield lambda rows: dst.executemany(sql, rows) and None


def _drop_secondary_indexes(dst: Any, table: str) -> list[str]:
    """PostgreSQL: drop `table`'s secondary indexes for the load (one index build after it is
    faster than an insert per row); their own CREATE statements, to run after. Inside the
    copy's transaction, so a failure rolls the drop back too."""
    if dialect(dst) != "postgresql":
        return []
    rows = dst.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = ? AND indexname NOT IN (SELECT conname FROM pg_constraint)",
        (table,)).fetchall()
    for name, _ in rows:
        dst.execute(f"DROP INDEX {name}")
    return [definition for _, definition in rows]


def _advance_identities(dst: Any) -> None:
    """PostgreSQL: identity columns were given explicit values; their next value follows."""
    if dialect(dst) != "postgresql":
        return  # SQLite's INTEGER PRIMARY KEY continues after its largest rowid by itself
    rows = dst.execute("SELECT table_name, column_name FROM information_schema.columns "
                       "WHERE table_schema = current_schema() AND is_identity = 'YES'")
    for table, column in rows.fetchall():
        if table in schema_tables():
            dst.execute(f"SELECT setval(pg_get_serial_sequence(?, ?), "
                        f"COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)",
                        (table, column))


def copy_store(source: str, target: str, *, batch_size: int = DEFAULT_BATCH,
               out: TextIO | None = None) -> dict[str, int]:
    """Copy the store at `source` into the empty store at `target`; rows copied per table.

    Progress goes to `out` (default stderr). Raises `CopyError` (nothing committed to the
    target) when it cannot copy or the counts differ."""
    src_loc, dst_loc = _location(source, "--from"), _location(target, "--to")
    if src_loc == dst_loc:
        raise CopyError(f"--from and --to are the same store ({src_loc})", code=2)

    def say(message: str) -> None:
        print(f"copy_store: {message}", file=out or sys.stderr, flush=True)

    src = _open_source(src_loc)
    try:
        plan = _plan(src, src_loc, say)
        dst = _open_target(dst_loc)
        try:
            return _copy(src, dst, plan, dst_loc, batch_size, say)
        except BaseException:
            with suppress(sqlite3.Error, psycopg.Error):
                dst.execute("ROLLBACK") if dialect(dst) == "sqlite" else dst.raw.rollback()
            raise
        finally:
            dst.close()
    finally:
        src.close()


def _copy(src: Any, dst: Any, plan: dict[str, list[str]], dst_loc: StoreLocation,
          batch_size: int, say: Callable[[str], None]) -> dict[str, int]:
    busy = {t: n for t in schema_tables() if (n := _count(dst, t))}
    if busy:
        rows = ", ".join(f"{t} {n:,}" for t, n in busy.items())
        raise CopyError(f"--to {dst_loc} is not empty (rows: {rows}): copy into a new, empty "
                        "store (a new database or file); nothing was written", code=2)
    expected = {t: _count(src, t) for t in plan}
    copied: dict[str, int] = {}
    started = time.perf_counter()
    for table, columns in plan.items():
        t0 = last = time.perf_counter()
        done = 0
        rebuild = _drop_secondary_indexes(dst, table)
        with _writer(dst, table, columns) as write:
            for rows in _batches(src, table, columns, batch_size):
                write(rows)
                done += len(rows)
                if time.perf_counter() - last >= PROGRESS_EVERY_S and done < expected[table]:
                    last = time.perf_counter()
                    say(f"{table}: {done:,}/{expected[table]:,} rows, "
                        f"{done / (last - t0):,.0f} rows/s")
        for create in rebuild:
            dst.execute(create)
        elapsed = time.perf_counter() - t0
        say(f"{table}: {done:,} rows in {elapsed:.1f} s ({done / max(elapsed, 1e-9):,.0f} "
            "rows/s)")
        copied[table] = done
    _advance_identities(dst)
    found = {t: _count(dst, t) for t in plan}
    wrong = {t: (expected[t], found[t]) for t in plan if expected[t] != found[t]}
    if wrong:
        detail = "; ".join(f"{t}: source {e:,}, target {f:,}" for t, (e, f) in wrong.items())
        raise CopyError(f"row counts differ ({detail}): rolled back, {dst_loc} left empty")
    if dialect(dst) == "sqlite":
        dst.execute("COMMIT")
    else:
        dst.raw.commit()
        # As after any bulk load: the planner's statistics, and the visibility map and hint
        # bits set once now (else the first queries set them, and autovacuum's pass over the
        # new rows competes with them). VACUUM runs outside a transaction.
        dst.raw.autocommit = True
        t0 = time.perf_counter()
        try:
            for table in plan:
                dst.execute(f"VACUUM (ANALYZE) {table}")
            say(f"VACUUM (ANALYZE) of {len(plan)} tables in {time.perf_counter() - t0:.1f} s")
        except psycopg.Error as exc:  # the rows are committed: a warning, not a failure
            say(f"warning: VACUUM (ANALYZE) {table} failed ({exc}); the copy is committed, "
                "run VACUUM ANALYZE on the target yourself")
    total = sum(copied.values())
    elapsed = time.perf_counter() - started
    say(f"done: {total:,} rows in {len(copied)} tables in {elapsed:.1f} s "
        f"({total / max(elapsed, 1e-9):,.0f} rows/s); counts verified, committed to {dst_loc}")
    return copied


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.copy_store", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="source", required=True, metavar="URL_OR_PATH",
                   help="the store to read: sqlite:///PATH, a SQLite path or postgresql://…")
    p.add_argument("--to", dest="target", required=True, metavar="URL_OR_PATH",
                   help="the new, empty store to write (created or migrated first)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                   help=f"rows read and written at a time (default {DEFAULT_BATCH:,})")
    args = p.parse_args(argv)
    if args.batch_size < 1:
        p.error(f"--batch-size must be at least 1, not {args.batch_size}")
    try:
        copy_store(args.source, args.target, batch_size=args.batch_size)
    except CopyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except (sqlite3.Error, psycopg.Error) as exc:
        print(f"error: the copy failed, nothing was committed to "
              f"{redact(args.target)}: {exc}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
