"""The PostgreSQL phases of bench/bench_reliability.py (issue 23): two workers, one killed;
the database server restarted under traffic.

Phase 3 runs `uvicorn api.main:app --workers 2` on a fresh database, keeps `concurrency`
chats in flight and SIGKILLs one worker process (a child found by the pid /health names, not
the master) once K requests are acknowledged; the other worker keeps serving and uvicorn
starts a replacement. Phase 4 (a fresh database, the same two workers) stops the PostgreSQL
server with `pg_ctl stop -m fast` once K are acknowledged, keeps it down `outage_s`, starts
it again, and keeps the traffic going: meanwhile /chat must answer 503 with the reason (never
a 500) and /health `degraded`; after it the app must reconnect by itself (/health ok on every
worker, 200s again). Both then check that every acknowledged request has its `requests` row
and all its events, no duplicates.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.bench_chat import chat_bodies, server_env
from tools.api_process import ApiProcess, free_port, start_api
from tools.local_postgres import start, stop
from utils.telemetry.pg_store import PROBE_INTERVAL_S

# A kept-alive connection stays with one worker: each /health probe opens its own, so the
# kernel hands it to either.
_NEW_CONNECTION = {"Connection": "close"}
Checker = Callable[[str, list[dict[str, Any]]], list[str]]


@dataclass
class Tally:
    """What the traffic got back, by kind."""

    acknowledged: list[dict[str, Any]] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    unavailable: int = 0  # 503 with the store's reason
    unavailable_no_reason: int = 0
    other: Counter = field(default_factory=Counter)  # any other status, or a transport error

    def record(self, body: dict[str, Any], response: httpx.Response | None,
               error: str | None = None) -> None:
        if response is None:
            self.other[error or "transport error"] += 1
        elif response.status_code == 200:
            data = response.json()
            data["user_id"] = body["user_id"]
            self.acknowledged.append(data)
            self.ack_times.append(time.perf_counter())
        elif response.status_code == 503:
            detail = response.json().get("detail")
            reason = detail.get("error", "") if isinstance(detail, dict) else str(detail)
            if "event store" in reason:
                self.unavailable += 1
            else:
                self.unavailable_no_reason += 1
        else:
            self.other[f"HTTP {response.status_code}"] += 1


def _bodies(prefix: str) -> Iterator[dict[str, Any]]:
    round_ = 0
    while True:
        for body in chat_bodies(400):
            yield {**body, "user_id": f"{prefix}{round_}-{body['user_id']}"}
        round_ += 1


async def _traffic(client: httpx.AsyncClient, tally: Tally, concurrency: int,
                   done: Callable[[], bool], prefix: str) -> None:
    bodies = _bodies(prefix)

    async def worker() -> None:
        while not done():
            body = next(bodies)
            try:
                response = await client.post("/chat", json=body)
            except httpx.HTTPError as exc:
                tally.record(body, None, f"transport error ({type(exc).__name__})")
                continue
            tally.record(body, response)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _worker_pids(client: httpx.AsyncClient, want: int, timeout: float = 120) -> set[int]:
    """The pids /health names, once `want` distinct ones have answered."""
    pids: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(pids) < want:
        if time.monotonic() > deadline:
            raise SystemExit(f"only workers {sorted(pids)} answered /health within {timeout} s")
        try:
            pids.add((await client.get("/health", headers=_NEW_CONNECTION)).json()["pid"])
        except httpx.HTTPError:
            await asyncio.sleep(0.2)
    return pids


def _database(admin: str, name: str) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin.rsplit("/", 1)[0] + f"/{name}"


def _start(url: str, data_dir: Path) -> ApiProcess:
    """Two workers on `url`; their log (the pool's reconnection warnings) goes to a file."""
    log = data_dir / "server.log"
    print(f"  (server log: {log})")
    return start_api(env=server_env(data_dir, EVENTS_URL=url), workers=2, timeout=180, log=log)


async def _kill_worker(api: ApiProcess, kill_after: int, concurrency: int,
                       total: int) -> tuple[Tally, int, set[int], float]:
    tally = Tally()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=api.url, timeout=120, limits=limits) as client:
        pids = await _worker_pids(client, 2)
        victim = min(pids)
        killed_at: list[float] = []

        def done() -> bool:
            if len(tally.acknowledged) >= kill_after and not killed_at:
                os.kill(victim, signal.SIGKILL)
                killed_at.append(time.perf_counter())
            return (len(tally.acknowledged) + sum(tally.other.values()) + tally.unavailable
                    + tally.unavailable_no_reason) >= total

        await _traffic(client, tally, concurrency, done, "kill-")
        after = await _worker_pids(client, 2)  # uvicorn replaced the killed worker
    return tally, victim, after, killed_at[0] if killed_at else float("nan")


def phase_kill_worker(admin: str, data_dir: Path, check: Checker, kill_after: int,
                      concurrency: int) -> bool:
    url = _database(admin, "reliability_kill")
    api = _start(url, data_dir)
    try:
        tally, victim, after, _ = asyncio.run(
            _kill_worker(api, kill_after, concurrency, kill_after * 3))
    finally:
        api.stop()
    problems = check(url, tally.acknowledged) if tally.acknowledged else ["nothing acknowledged"]
    stored = _stored_ids(url)
    missing = sum(r["request_id"] not in stored for r in tally.acknowledged)
    print(f"phase 3: PostgreSQL, 2 workers, SIGKILL of worker {victim} after {kill_after} "
          f"acknowledged, {concurrency} in flight: {len(tally.acknowledged)} acknowledged, "
          f"{sum(tally.other.values())} cut off {dict(tally.other)}, "
          f"{tally.unavailable} answered 503")
    print(f"  rows checked for {len(tally.acknowledged)} acknowledged requests: missing="
          f"{missing}, {len(stored) - len(tally.acknowledged)} unacknowledged in-flight "
          f"requests also committed; workers afterwards {sorted(after)} "
          f"({'replaced' if victim not in after else 'NOT replaced'})")
    ok = not problems and missing == 0 and victim not in after
    print("  check: " + ("every acknowledged request's rows and events are there, no "
                         "duplicates" if ok else "; ".join(problems) or "worker not replaced"))
    return ok


@dataclass
class Outage:
    stopped_at: float = 0.0
    started_at: float = 0.0
    health: Counter = field(default_factory=Counter)  # statuses /health gave while down
    reasons: set[str] = field(default_factory=set)
    last_ok_s: float = 0.0  # how long after the stop /health last said ok (its probe's cache)
    health_ok_at: float = 0.0  # every worker said ok again


async def _restart(api: ApiProcess, root: Path, port: int, bin_dir: Path, before: int,
                   outage_s: float, after: int, concurrency: int) -> tuple[Tally, Outage]:
    tally, outage = Tally(), Outage()
    limits = httpx.Limits(max_connections=concurrency + 2)
    stop_traffic = asyncio.Event()
    async with httpx.AsyncClient(base_url=api.url, timeout=120, limits=limits) as client:
        pids = await _worker_pids(client, 2)

        async def control() -> None:
            while len(tally.acknowledged) < before:
                await asyncio.sleep(0.05)
            outage.stopped_at = time.perf_counter()
            await asyncio.to_thread(stop, root, bin_dir=bin_dir)  # pg_ctl stop -m fast -w
            async with httpx.AsyncClient(base_url=api.url, timeout=30) as probe:
                while time.perf_counter() - outage.stopped_at < outage_s:
                    health = (await probe.get("/health", headers=_NEW_CONNECTION)).json()
                    outage.health[health["status"]] += 1
                    if health["status"] == "ok":
                        outage.last_ok_s = time.perf_counter() - outage.stopped_at
                    outage.reasons.update(r for r in health["reasons"] if "event store" in r)
                    await asyncio.sleep(0.25)
                await asyncio.to_thread(start, root, port, bin_dir=bin_dir)
                outage.started_at = time.perf_counter()
                ok_from: set[int] = set()
                while ok_from != pids:  # /health ok from each worker
                    health = (await probe.get("/health", headers=_NEW_CONNECTION)).json()
                    if health["status"] == "ok":
                        ok_from.add(health["pid"])
                    else:
                        ok_from.discard(health["pid"])
                    await asyncio.sleep(0.05)
                outage.health_ok_at = time.perf_counter()
            goal = len(tally.acknowledged) + after
            while len(tally.acknowledged) < goal:
                await asyncio.sleep(0.05)
            stop_traffic.set()

        await asyncio.gather(control(), _traffic(client, tally, concurrency,
                                                 stop_traffic.is_set, "restart-"))
    return tally, outage


def phase_restart(admin: str, root: Path, port: int, bin_dir: Path, data_dir: Path,
                  check: Checker, before: int, outage_s: float, concurrency: int) -> bool:
    url = _database(admin, "reliability_restart")
    api = _start(url, data_dir)
    try:
        tally, outage = asyncio.run(_restart(api, root, port, bin_dir, before, outage_s,
                                             before, concurrency))
    finally:
        api.stop()
    problems = check(url, tally.acknowledged)
    stored = _stored_ids(url)
    missing = sum(r["request_id"] not in stored for r in tally.acknowledged)
    first_ok = min((t for t in tally.ack_times if t > outage.started_at), default=float("nan"))
    during = sum(outage.stopped_at < t < outage.started_at for t in tally.ack_times)
    print(f"phase 4: PostgreSQL restart (pg_ctl stop -m fast, {outage_s:g} s down) under "
          f"{concurrency} in flight, 2 workers: {len(tally.acknowledged)} acknowledged "
          f"({during} after `pg_ctl stop` was called: committed before it returned), {tally.unavailable} answered 503 with the reason, "
          f"{tally.unavailable_no_reason} 503 without, other errors {dict(tally.other) or 0}")
    print(f"  /health while down: {dict(outage.health)} (last ok {outage.last_ok_s:.2f} s "
          f"after the stop: the probe is cached {PROBE_INTERVAL_S:g} s); reasons: "
          f"{'; '.join(sorted(outage.reasons))[:300] or 'none'}")
    print(f"  recovered without a restart: first 200 {first_ok - outage.started_at:.2f} s "
          f"after the server was back, /health ok on both workers after "
          f"{outage.health_ok_at - outage.started_at:.2f} s")
    print(f"  rows checked for {len(tally.acknowledged)} acknowledged requests: missing="
          f"{missing}, {len(stored) - len(tally.acknowledged)} unacknowledged also committed")
    ok = (not problems and missing == 0 and tally.unavailable > 0 and not tally.other
          and not tally.unavailable_no_reason and outage.health["degraded"] > 0
          and outage.last_ok_s <= PROBE_INTERVAL_S + 0.5 and first_ok == first_ok)
    print("  check: " + ("503 with the reason and /health degraded while down, reconnected "
                         "by itself, every acknowledged request's rows are there" if ok else
                         "; ".join(problems) or "unexpected answers (see the counts above)"))
    return ok


def _stored_ids(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT request_id FROM requests")}


def run_postgres_phases(tmp: Path, data_dir: Path, bin_dir: Path, check: Checker, *,
                        kill_after: int, concurrency: int, outage_s: float) -> bool:
    """Start a local PostgreSQL (fsync on) in `tmp`, run phases 3 and 4, stop it."""
    root, port = tmp / "pg", free_port()
    os.chmod(tmp, 0o755)  # the server user must reach its folder
    admin = start(root, port, bin_dir=bin_dir)
    try:
        ok_3 = phase_kill_worker(admin, data_dir, check, kill_after, concurrency)
        ok_4 = phase_restart(admin, root, port, bin_dir, data_dir, check, kill_after,
                             outage_s, concurrency)
    finally:
        stop(root, bin_dir=bin_dir, fast=True)
    return ok_3 and ok_4
