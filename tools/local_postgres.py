"""A local PostgreSQL cluster for the event store (Debian's server binaries, no system service).

    python -m tools.local_postgres start [--dir data/postgres] [--port 5433]   # prints the URL
    python -m tools.local_postgres stop  [--dir data/postgres]
    python -m tools.local_postgres url   [--port 5433]

`make pg-start` / `make serve-pg` wrap these. As root the server runs as the `postgres` user
(initdb refuses root). The tests' throwaway cluster (tests/fakes/postgres.py) uses the same
functions with a temporary directory.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tools.api_process import free_port

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


def _as_server_user(root: Path) -> list[str]:
    if os.geteuid() != 0:
        return []
    shutil.chown(root, "postgres")
    return ["runuser", "-u", "postgres", "--"]


def url_for(port: int, database: str = "postgres") -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def start(root: Path, port: int, *, bin_dir: Path, throwaway: bool = False) -> str:
    """initdb (first time) and start a server in `root` on 127.0.0.1:`port`; its admin URL.

    `throwaway` turns fsync off: a test cluster is deleted afterwards, and tests should not
    wait for the disk (durability is the database's, not the tests', to prove)."""
    root.mkdir(parents=True, exist_ok=True)
    as_user = _as_server_user(root)
    data = root / "data"
    if not (data / "PG_VERSION").exists():
        made = subprocess.run(as_user + [str(bin_dir / "initdb"), "-D", str(data), "-A",
                                         "trust", "-U", "postgres", "-E", "UTF8"]
                              + (["--no-sync"] if throwaway else []),
                              capture_output=True, text=True)
        if made.returncode != 0:  # e.g. the `postgres` user cannot enter a parent folder
            raise RuntimeError(f"initdb in {data} failed: {made.stderr.strip()}")
    status = subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data), "status"],
                            capture_output=True, text=True)
    if status.returncode == 0:  # already running (make pg-start twice)
        return url_for(port)
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
    if throwaway:
        opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    result = subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", opts,
                                       "-l", str(root / "server.log"), "-w", "-t", "30",
                                       "start"], capture_output=True, text=True)
    if result.returncode != 0:
        log = (root / "server.log").read_text(errors="replace")[-2000:] \
            if (root / "server.log").exists() else ""
        raise RuntimeError(f"PostgreSQL in {root} did not start on port {port}: "
                           f"{result.stderr.strip() or result.stdout.strip()}\n{log}")
    return url_for(port)


def stop(root: Path, *, bin_dir: Path, fast: bool = False) -> None:
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m",
                              "immediate" if fast else "fast", "-w", "stop"],
                   capture_output=True)


@dataclass
class ThrowawayCluster:
    """A running throwaway cluster that a test or bench may stop and start again."""

    root: Path
    port: int
    bin_dir: Path
    url: str

    def stop(self) -> None:
        """`pg_ctl stop -m fast`: what an administrator's restart does."""
        stop(self.root, bin_dir=self.bin_dir, fast=False)

    def start(self) -> None:
        start(self.root, self.port, bin_dir=self.bin_dir, throwaway=True)


@contextmanager
def throwaway_cluster(bin_dir: Path) -> Iterator[ThrowawayCluster]:
    """A cluster in a temporary directory on a free port (tests, bench/); stopped and deleted
    afterwards."""
    root = Path(tempfile.mkdtemp(prefix="pgtest-"))
    try:
        port = free_port()
        url = start(root, port, bin_dir=bin_dir, throwaway=True)
        try:
            yield ThrowawayCluster(root, port, bin_dir, url)
        finally:
            stop(root, bin_dir=bin_dir, fast=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def throwaway_server(bin_dir: Path) -> Iterator[str]:
    """A throwaway cluster; yields its admin URL."""
    with throwaway_cluster(bin_dir) as cluster:
        yield cluster.url


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new empty database on the server at `admin_url`; yields its URL; drops it after."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.local_postgres", description=__doc__)
    p.add_argument("command", choices=["start", "stop", "url"])
    p.add_argument("--dir", type=Path, default=Path("data/postgres"))
    p.add_argument("--port", type=int, default=5433)
    args = p.parse_args(argv)
    if args.command == "url":
        print(url_for(args.port))
        return 0
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        print(f"error: {MISSING}", file=sys.stderr)
        return 2
    if args.command == "stop":
        stop(args.dir.resolve(), bin_dir=bin_dir)
        return 0
    try:
        print(start(args.dir.resolve(), args.port, bin_dir=bin_dir))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
