"""Where the event store lives: `EVENTS_URL` (`sqlite:///PATH` or `postgresql://…`) or a path.

Also the little SQL dialect layer both databases share: the store's SQL is written once with
`?` placeholders; on PostgreSQL `PgConnection` turns them into psycopg's `%s`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class StoreLocation:
    """A SQLite file (`path`) or a PostgreSQL database (`url`)."""

    kind: str  # "sqlite" or "postgresql"
    path: Path | None = None
    url: str | None = None

    @property
    def is_postgres(self) -> bool:
        return self.kind == "postgresql"

    def __str__(self) -> str:  # for messages and /health: never the password
        return redact(self.url) if self.url else str(self.path)


def parse_location(value: str | Path) -> StoreLocation:
    """`sqlite:///PATH`, `postgresql://…` or a bare SQLite path; ValueError names the bad one."""
    if isinstance(value, Path):
        return StoreLocation("sqlite", path=value)
    text = value.strip()
    scheme = text.split(":", 1)[0].lower() if "://" in text else ""
    if not scheme:
        if not text:
            raise ValueError("event store location is empty: set EVENTS_URL or EVENTS_DB")
        return StoreLocation("sqlite", path=Path(text))
    if scheme == "sqlite":
        path = text.split("://", 1)[1]
        # sqlite:///relative/x.db is relative; sqlite:////abs/x.db is absolute (SQLAlchemy's
        # spelling, so URLs people already have keep working).
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise ValueError(f"EVENTS_URL {value!r} names no file: use sqlite:///PATH")
        return StoreLocation("sqlite", path=Path(path))
    if scheme in POSTGRES_SCHEMES or scheme.startswith("postgresql+"):
        parts = urlsplit(text)
        url = urlunsplit(("postgresql",) + tuple(parts)[1:])
        return StoreLocation("postgresql", url=url)
    raise ValueError(f"EVENTS_URL {redact(text)!r} has an unknown scheme {scheme!r}: use "
                     "sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE")


def resolve_location(url: str | None, db: Path | str | None) -> StoreLocation:
    """The rule everywhere (settings, the report's --url/--db): a URL wins over a path."""
    if url:
        return parse_location(url)
    if db is None:
        raise ValueError("no event store: set EVENTS_URL or EVENTS_DB")
    return parse_location(Path(db))


def redact(url: str) -> str:
    """`url` without its password."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def pg_sql(sql: str) -> str:
    """SQLite-style `?` placeholders as psycopg's `%s` (a literal % doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgRow(tuple):
    """A row readable by index, by column name and as `dict(row)`, like `sqlite3.Row`."""

    _names: tuple[str, ...] = ()

    def keys(self) -> tuple[str, ...]:
        return self._names

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names.index(key))
        return tuple.__getitem__(self, key)


def pg_row_factory(cursor: Any) -> Any:
    """psycopg row factory making `PgRow`s."""
    names = tuple(c.name for c in cursor.description or ())
    row_type = type("Row", (PgRow,), {"_names": names})
    return lambda values: row_type(values)


class PgConnection:
    """A psycopg connection with sqlite3's `execute(sql, params)` (placeholders `?`)."""

    dialect = "postgresql"

    def __init__(self, conn: Any, *, binary: bool = False) -> None:
        self.raw = conn
        self.binary = binary  # results in binary format: no text parsing of numbers

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.raw.execute(pg_sql(sql), tuple(params), binary=self.binary)

    def executemany(self, sql: str, rows: Any) -> None:
        with self.raw.cursor() as cursor:
            cursor.executemany(pg_sql(sql), [tuple(row) for row in rows])

    def close(self) -> None:
        self.raw.close()


def insert_rows(conn: Any, table: str, columns: tuple[str, ...], rows: Any) -> None:
    """Insert many rows: COPY on PostgreSQL (one round trip, not one per row), else INSERTs."""
    names = ", ".join(columns)
    if dialect(conn) == "postgresql":
        with conn.raw.cursor() as cursor, cursor.copy(
                f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    conn.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})",
                     rows)


def dialect(conn: Any) -> str:
    """"postgresql" for a `PgConnection`, else "sqlite"."""
    return getattr(conn, "dialect", "sqlite")


def table_names(conn: Any) -> set[str]:
    """Tables of the store's own schema (PostgreSQL: the connection's search path)."""
    if dialect(conn) == "postgresql":
        rows = conn.execute("SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = current_schema()").fetchall()
    else:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows}


def column_names(conn: Any, table: str) -> set[str]:
    if dialect(conn) == "postgresql":
        rows = conn.execute("SELECT column_name FROM information_schema.columns "
                            "WHERE table_schema = current_schema() AND table_name = ?",
                            (table,)).fetchall()
        return {r[0] for r in rows}
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})").fetchall()}
