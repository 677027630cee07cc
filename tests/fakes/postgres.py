"""A throwaway local PostgreSQL server for the tests (Debian's binaries, a temporary cluster).

Under CI (`CI=true`) missing binaries fail the tests that need them; on a laptop without
PostgreSQL those tests skip and say why.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

MISSING = ("PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's "
           "`postgresql` package or set PG_BIN to their directory")


def pg_bin_dir() -> Path | None:
    """PG_BIN, else the newest /usr/lib/postgresql/*/bin, else initdb on PATH."""
    candidates = [os.environ.get("PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda p: int(Path(p).parent.name), reverse=True)
    found = shutil.which("initdb")
    candidates.append(str(Path(found).parent) if found else "")
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    return None


def require_postgres() -> Path:
    """The binaries' directory; fails under CI, skips elsewhere, when they are missing."""
    found = pg_bin_dir()
    if found is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(MISSING + " (CI=true: these tests must run)", pytrace=False)
        pytest.skip(MISSING)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server(bin_dir: Path) -> Iterator[str]:
    """Start a cluster in a temporary directory; yields the admin URL; stops and deletes it."""
    root = Path(tempfile.mkdtemp(prefix="pgtest-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as `postgres`
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    try:
        subprocess.run(as_user + [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust",
                                  "-U", "postgres", "--no-sync", "-E", "UTF8"],
                       check=True, capture_output=True)
        # fsync off: a test cluster is thrown away (durability is tested against SQLite's
        # file and by the bench, not by making every test wait for the disk).
        opts = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", opts,
                                  "-l", str(root / "log"), "-w", "-t", "30", "start"],
                       check=True, capture_output=True)
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                      "-w", "stop"], capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new empty database on the server; yields its URL; drops it afterwards."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def copy_sqlite_to_postgres(path: Path, url: str) -> dict[str, int]:
    """Copy every row of the SQLite store at `path` into the (migrated) store at `url`."""
    import sqlite3

    import psycopg

    copied: dict[str, int] = {}
    src = sqlite3.connect(path)
    try:
        with psycopg.connect(url) as dst:
            pg_tables = {r[0] for r in dst.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()")}
            for (table,) in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
                if table == "schema_version" or table not in pg_tables:
                    continue
                cur = src.execute(f"SELECT * FROM {table}")
                names = [d[0] for d in cur.description]
                rows = cur.fetchall()
                with dst.cursor() as out, out.copy(
                        f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                copied[table] = len(rows)
    finally:
        src.close()
    return copied
