"""Several API workers on SQLite and on PostgreSQL (issue 23): throughput, latency, CPU, rows.

    .venv/bin/python bench/bench_workers.py [--chats 2000] [--concurrency 50] [--workers 1 2]
        [--stores sqlite postgresql]

For each store (a fresh SQLite file; a fresh database on a throwaway local PostgreSQL started
with tools/local_postgres, fsync on) and each worker count: `uvicorn api.main:app --workers N`
with LLM_MODE=simulated and SIM_TIME_SCALE=0, `--chats` POST /chat at `--concurrency`, then
one feedback per chat. Prints chats/s, p50/p99 latency, server CPU ms per chat (utime+stime of
the uvicorn processes from /proc), the stored rows against the acknowledged ones ("exact";
"ok" when a write the client never saw acknowledged committed too; "LOST" when an acknowledged
one is missing) and every failed request by endpoint and status or error. The machine is
shared: compare figures from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.flagfile import standard_flags, write_flags  # noqa: E402
from tools.api_process import free_port, start_api  # noqa: E402
from tools.local_postgres import pg_bin_dir, start, stop  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")
WARM_UP = 20  # chats before the timed run (their rows are in the store too)


def _cpu_seconds(pid: int) -> float:
    """utime+stime of `pid` and its live children (the uvicorn workers)."""
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


async def _drive(url: str, chats: int, concurrency: int) -> Driven:
    got = Driven()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(chats):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def post(path: str, body: dict) -> httpx.Response | None:
            try:
                r = await client.post(path, json=body)
            except httpx.TransportError as exc:
                # A dropped connection is counted, not hidden: its rows may or may not be
                # there (an unacknowledged write), so the row check says which.
                got.failures[f"{path} {type(exc).__name__}"] += 1
                return None
            if r.status_code != 200:
                got.failures[f"{path} {r.status_code} {r.text[:120]}"] += 1
                return None
            return r

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                user = f"bench-{i % 400}"
                t0 = time.perf_counter()
                r = await post("/chat", {"user_id": user,
                                         "message": f"How do I reset my password? {i}",
                                         "user_context": {"country": "US", "plan": "paid"}})
                got.latencies.append(time.perf_counter() - t0)
                if r is None:
                    continue
                got.chats.append(r.json()["request_id"])
                if await post("/feedback", {"request_id": got.chats[-1], "user_id": user,
                                            "kind": "positive"}) is not None:
                    got.feedback += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return got


@dataclass
class Driven:
    """What the clients saw: latencies, acknowledged chats and feedback, failures by kind."""

    latencies: list[float] = field(default_factory=list)
    chats: list[str] = field(default_factory=list)  # request ids answered 200
    feedback: int = 0  # feedback answered 200
    failures: Counter[str] = field(default_factory=Counter)


def _rows(events_url: str) -> tuple[int, int]:
    sql = ("SELECT (SELECT COUNT(*) FROM requests), (SELECT COUNT(*) FROM feedback)")
    if events_url.startswith("sqlite:///"):
        with sqlite3.connect(events_url.removeprefix("sqlite:///")) as conn:
            return tuple(conn.execute(sql).fetchone())  # type: ignore[return-value]
    with psycopg.connect(events_url) as conn:
        return tuple(conn.execute(sql).fetchone())  # type: ignore[return-value]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--chats", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--stores", nargs="+", choices=["sqlite", "postgresql"],
                   default=["sqlite", "postgresql"])
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    os.chmod(tmp, 0o755)  # the PostgreSQL server user must reach its folder
    bin_dir = pg_bin_dir()
    pg_root = tmp / "pg"
    admin = start(pg_root, free_port(), bin_dir=bin_dir) if bin_dir else None
    flags = tmp / "flags.json"
    write_flags(flags, standard_flags())
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LD_", "OPENAI", "ANTHROPIC", "MISTRAL", "EVENTS_"))}
    env.update(DATA_DIR=str(tmp / "data"), LOCAL_FLAGS_PATH=str(flags), LLM_MODE="simulated",
               SIM_TIME_SCALE="0", KB_DIR=str(ROOT / "kb"), TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS="")
    print(f"{'store':<11} {'workers':>7} {'chats/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'CPU ms/chat':>11}  rows")
    try:
        for kind in args.stores:
            if kind == "postgresql" and admin is None:
                print("postgresql: skipped (no server binaries)")
                continue
            for n in args.workers:
                if kind == "sqlite":
                    url = f"sqlite:///{tmp / f'events-{n}.db'}"
                else:
                    name = f"bench_{n}"
                    with psycopg.connect(admin, autocommit=True) as conn:
                        conn.execute(f"CREATE DATABASE {name}")
                    url = admin.rsplit("/", 1)[0] + f"/{name}"
                api = start_api(env={**env, "EVENTS_URL": url}, workers=n)
                try:
                    warm = asyncio.run(_drive(api.url, WARM_UP, 5))  # every worker a little
                    cpu0, t0 = _cpu_seconds(api.pid), time.perf_counter()
                    got = asyncio.run(_drive(api.url, args.chats, args.concurrency))
                    wall, cpu = time.perf_counter() - t0, _cpu_seconds(api.pid) - cpu0
                finally:
                    api.stop()
                # Every acknowledged write is stored; an unacknowledged one may or may not be.
                requests, feedback = _rows(url)
                acked = (len(warm.chats) + len(got.chats), warm.feedback + got.feedback)
                tried = (WARM_UP + args.chats, acked[0])
                ok = acked[0] <= requests <= tried[0] and acked[1] <= feedback <= tried[1]
                rows = (f"{'exact' if (requests, feedback) == acked else 'ok' if ok else 'LOST'}"
                        f" (requests {requests:,}, feedback {feedback:,}; acknowledged "
                        f"{acked[0]:,} and {acked[1]:,})")
                q = statistics.quantiles(got.latencies, n=100)
                print(f"{kind:<11} {n:>7} {len(got.chats) / wall:>8.1f} {q[49] * 1000:>7.1f} "
                      f"{q[98] * 1000:>7.1f} {cpu / max(len(got.chats), 1) * 1000:>11.1f}  "
                      f"{rows}")
                for what, count in (warm.failures + got.failures).most_common():
                    print(f"    failed {count}x: {what}")
    finally:
        if admin and bin_dir:
            stop(pg_root, bin_dir=bin_dir, fast=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
