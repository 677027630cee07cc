"""A throwaway local PostgreSQL server for the tests (Debian's binaries, a temporary cluster).

Under CI (`CI=true`) missing binaries fail the tests that need them; on a laptop without
PostgreSQL those tests skip and say why.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.local_postgres import MISSING, pg_bin_dir, start, stop


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


@dataclass
class LocalCluster:
    """A running throwaway cluster that a test may stop (`pg_ctl stop -m fast`) and restart."""

    root: Path
    port: int
    bin_dir: Path
    url: str

    def stop(self) -> None:
        stop(self.root, bin_dir=self.bin_dir, fast=False)  # -m fast: what an admin restart does

    def start(self) -> None:
        start(self.root, self.port, bin_dir=self.bin_dir, throwaway=True)


@contextmanager
def postgres_cluster(bin_dir: Path) -> Iterator[LocalCluster]:
    """Start a cluster in a temporary directory; yields it; stops and deletes it."""
    root = Path(tempfile.mkdtemp(prefix="pgtest-"))
    try:
        port = _free_port()
        url = start(root, port, bin_dir=bin_dir, throwaway=True)
        try:
            yield LocalCluster(root, port, bin_dir, url)
        finally:
            stop(root, bin_dir=bin_dir, fast=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def postgres_server(bin_dir: Path) -> Iterator[str]:
    """Start a cluster in a temporary directory; yields the admin URL; stops and deletes it."""
    with postgres_cluster(bin_dir) as cluster:
        yield cluster.url


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
