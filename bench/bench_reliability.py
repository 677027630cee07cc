"""Event-store reliability (issue 5): exact rows under concurrency, nothing lost on kill -9.

    .venv/bin/python bench/bench_reliability.py [--requests 2000] [--concurrency 50]
        [--kill-after 300] [--stores sqlite postgresql] [--outage-s 5]

Phase 1 starts `uvicorn api.main:app` (fresh DATA_DIR, local flags, LLM_MODE=simulated,
SIM_TIME_SCALE=0), sends N /chat requests at the given concurrency (httpx async), then
feedback on every second request (plus a repeat of some of them, which must come back
"duplicate"), and checks every table holds exactly the rows the responses imply: one
`requests` row per request, one exposure per agent run plus the graph's, per run its
duration/tokens/success/cost (+ttft, +one per tool call, +pii_exposed_entities for support)
events, the graph's path/handoff/duration/tokens/success events, one `feedback` row and one
feedback event per served config per first feedback, no duplicates.

Phase 2 starts the server on a second store, keeps 50 requests in flight, sends SIGKILL
once K requests have been acknowledged (200 received), restarts, and checks every
acknowledged request has its `requests` row and all its events.

Phases 1 and 2 are SQLite's. With `postgresql` in `--stores`, a local PostgreSQL (fsync on,
tools/local_postgres) runs phase 3 (two workers, one SIGKILLed) and phase 4 (the database
server restarted mid-traffic: 503 with the reason, /health degraded, reconnection by itself);
see bench/reliability_pg.py.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_chat import chat_bodies, prepare_data_dir, start_server  # noqa: E402
from tools.local_postgres import MISSING, pg_bin_dir  # noqa: E402
from utils.telemetry import metrics  # noqa: E402

RUN_EVENT_KEYS = 6  # duration, tokens total/input/output, success|error, cost


def expected_events(response: dict[str, Any]) -> Counter:
    """The event rows per key that one /chat response implies."""
    expected: Counter = Counter()
    for run in response["agents"]:
        for key in (metrics.DURATION_TOTAL, metrics.TOKENS_TOTAL, metrics.TOKENS_INPUT,
                    metrics.TOKENS_OUTPUT, metrics.COST_PER_REQUEST):
            expected[key] += 1
        expected[metrics.GENERATION_SUCCESS if run["success"] else
                 metrics.GENERATION_ERROR] += 1
        if run.get("time_to_first_token_ms") is not None:
            expected[metrics.TIME_TO_FIRST_TOKEN] += 1
        expected[metrics.TOOL_CALL] += len(run["tools_used"])
        if run["agent"] == "support":
            expected[metrics.PII_EXPOSED_ENTITIES] += 1
    # The graph's events, in the same batch: path, each handoff, duration, tokens, success.
    for key in (metrics.GRAPH_PATH, metrics.GRAPH_DURATION_TOTAL,
                metrics.GRAPH_INVOCATION_SUCCESS):
        expected[key] += 1
    expected[metrics.GRAPH_HANDOFF_SUCCESS] += len(response["graph"]["handoffs"])
    if response["totals"]["total_tokens"] > 0:  # the SDK skips a zero total
        expected[metrics.GRAPH_TOKENS_TOTAL] += 1
    return expected


def exposures_of(response: dict[str, Any]) -> int:
    """One exposure per agent run, and one for the agent graph's variation (feedback gives an
    event per exposure)."""
    return len(response["agents"]) + (response.get("graph") is not None)


async def send_chats(url: str, bodies: list[dict[str, Any]], concurrency: int,
                     on_ack=None) -> tuple[list[dict[str, Any]], int]:
    """POST every body with at most `concurrency` in flight; (acknowledged responses, errors)."""
    acknowledged: list[dict[str, Any]] = []
    errors = 0
    queue = iter(bodies)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            for body in queue:
                try:
                    response = await client.post("/chat", json=body)
                except httpx.HTTPError:
                    errors += 1
                    continue
                if response.status_code != 200:
                    errors += 1
                    continue
                data = response.json()
                data["user_id"] = body["user_id"]
                acknowledged.append(data)
                if on_ack is not None:
                    on_ack(len(acknowledged))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return acknowledged, errors


async def send_feedback(url: str, items: list[tuple[dict[str, Any], str]],
                        concurrency: int) -> Counter:
    """POST feedback for each (response, kind); a Counter of the answered statuses."""
    statuses: Counter = Counter()
    queue = iter(items)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def worker() -> None:
            for response, kind in queue:
                answer = await client.post("/feedback", json={
                    "request_id": response["request_id"], "user_id": response["user_id"],
                    "kind": kind, "source": "simulated"})
                statuses[answer.json().get("status", answer.status_code)
                         if answer.status_code == 200 else answer.status_code] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def _rows(db: Path | str, sql: str, *params: Any) -> list[tuple]:
    """Rows of a SQLite file (a Path) or a PostgreSQL database (a URL)."""
    if isinstance(db, str):
        import psycopg

        with psycopg.connect(db) as conn:
            return conn.execute(sql.replace("?", "%s"), params).fetchall()
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def check_store(db: Path | str, responses: list[dict[str, Any]],
                feedback: dict[str, tuple[str, int]], *, allow_extra: bool = False) -> list[str]:
    """Compare the store with what the responses imply; a list of problems (empty = exact).

    With `allow_extra`, rows of requests that were never acknowledged (in flight at a kill)
    are tolerated; every acknowledged request must still be complete and exact.
    """
    problems = []
    ids = {r["request_id"] for r in responses}
    stored = Counter(r[0] for r in _rows(db, "SELECT request_id FROM requests"))
    missing, extra = ids - set(stored), set(stored) - ids
    if missing or (extra and not allow_extra) or max(stored.values(), default=1) != 1:
        problems.append(f"requests: {len(stored)} rows for {len(ids)} requests "
                        f"({len(missing)} missing, {len(extra)} extra)")
    exposures = Counter(r[0] for r in _rows(db, "SELECT request_id FROM exposures"))
    events: dict[str, Counter] = {}
    for request_id, key in _rows(db, "SELECT request_id, event_key FROM events"):
        events.setdefault(request_id, Counter())[key] += 1
    fb_rows = Counter(r[0] for r in _rows(db, "SELECT request_id FROM feedback"))
    bad_exposures = bad_events = 0
    for response in responses:
        rid = response["request_id"]
        if exposures[rid] != exposures_of(response):
            bad_exposures += 1
        expected = expected_events(response)
        if rid in feedback:
            kind, served = feedback[rid]
            expected[metrics.FEEDBACK_EVENT_KEYS[kind]] += served
        if events.get(rid, Counter()) != expected:
            bad_events += 1
    if bad_exposures:
        problems.append(f"exposures: {bad_exposures} requests with the wrong number of rows")
    if bad_events:
        problems.append(f"events: {bad_events} requests whose rows differ from their response")
    if set(fb_rows) != set(feedback) or max(fb_rows.values(), default=1) != 1:
        problems.append(f"feedback: {len(fb_rows)} rows for {len(feedback)} feedbacks")
    strays = set(events) - set(stored)
    if strays:
        problems.append(f"events: {len(strays)} request ids with events but no requests row")
    return problems


def phase_concurrency(data_dir: Path, requests: int, concurrency: int) -> bool:
    server = start_server("api.main:app", data_dir)
    try:
        bodies = chat_bodies(requests)
        start = time.perf_counter()
        responses, errors = asyncio.run(send_chats(server.url, bodies, concurrency))
        chat_s = time.perf_counter() - start
        half = responses[::2]
        kinds = itertools.cycle(("positive", "negative"))
        first = [(r, next(kinds)) for r in half]
        start = time.perf_counter()
        statuses = asyncio.run(send_feedback(server.url, first, concurrency))
        repeats = asyncio.run(send_feedback(server.url, first[: len(first) // 5], concurrency))
        feedback_s = time.perf_counter() - start
    finally:
        server.stop()
    feedback = {r["request_id"]: (kind, exposures_of(r)) for r, kind in first}
    problems = check_store(data_dir / "events.db", responses, feedback)
    totals = {t: _rows(data_dir / "events.db", f"SELECT COUNT(*) FROM {t}")[0][0]
              for t in ("requests", "exposures", "events", "feedback")}
    routed = sum(r["route"] == "security" for r in responses)
    print(f"phase 1: {requests} /chat at concurrency {concurrency}: {len(responses)} ok, "
          f"{errors} failed, {chat_s:.1f} s ({len(responses) / chat_s:.0f} req/s), "
          f"{routed} through security")
    print(f"  feedback: {len(first)} sent {dict(statuses)}, {len(first) // 5} repeats "
          f"{dict(repeats)}, {feedback_s:.1f} s")
    print(f"  store rows: {totals}")
    ok = not problems and errors == 0 and statuses == Counter(recorded=len(first)) \
        and repeats == Counter(duplicate=len(first) // 5)
    print("  check: " + ("exact, every table matches the responses, no duplicates" if ok
                         else "; ".join(problems) or "unexpected statuses or errors"))
    return ok


def phase_kill(data_dir: Path, kill_after: int, concurrency: int) -> bool:
    db = data_dir / "kill-events.db"  # its own store, so every row is this phase's
    server = start_server("api.main:app", data_dir, EVENTS_DB=str(db))
    killed_at: list[float] = []

    def on_ack(count: int) -> None:
        if count >= kill_after and not killed_at:
            server.process.send_signal(signal.SIGKILL)
            killed_at.append(time.perf_counter())

    bodies = [{**b, "user_id": f"kill-{b['user_id']}"} for b in chat_bodies(kill_after * 3)]
    acknowledged, errors = asyncio.run(send_chats(server.url, bodies, concurrency, on_ack))
    server.process.wait()
    restarted = start_server("api.main:app", data_dir, EVENTS_DB=str(db))
    try:
        health = httpx.get(f"{restarted.url}/health", timeout=10).json()
    finally:
        restarted.stop()
    problems = (check_store(db, acknowledged, {}, allow_extra=True) if acknowledged
                else ["nothing was acknowledged"])
    stored = {r[0] for r in _rows(db, "SELECT request_id FROM requests")}
    missing = [r["request_id"] for r in acknowledged if r["request_id"] not in stored]
    after = len(stored)
    integrity = _rows(db, "PRAGMA integrity_check")[0][0]
    print(f"phase 2: SIGKILL after {kill_after} acknowledged, {concurrency} in flight: "
          f"{len(acknowledged)} acknowledged before the kill, {errors} cut off")
    print(f"  after restart: {len(missing)} acknowledged requests missing, "
          f"{after - len(acknowledged)} unacknowledged in-flight requests also "
          f"committed, integrity_check={integrity}, restarted health={health.get('status')}")
    ok = not missing and not problems and integrity == "ok"
    print("  check: " + ("every acknowledged request's rows survived kill -9" if ok
                         else "; ".join(problems) or f"{len(missing)} missing"))
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--kill-after", type=int, default=300,
                        help="acknowledged requests before the kill (and before the restart)")
    parser.add_argument("--stores", nargs="+", choices=["sqlite", "postgresql"],
                        default=["sqlite", "postgresql"])
    parser.add_argument("--outage-s", type=float, default=5.0,
                        help="how long the PostgreSQL server stays down in phase 4")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-reliability-") as tmp:
        data_dir = Path(tmp) / "data"
        print(f"flags from {prepare_data_dir(data_dir)}; store {data_dir / 'events.db'}")
        if "sqlite" in args.stores:
            results.append(phase_concurrency(data_dir, args.requests, args.concurrency))
            results.append(phase_kill(data_dir, args.kill_after, args.concurrency))
        if "postgresql" in args.stores:
            bin_dir = pg_bin_dir()
            if bin_dir is None:
                print(f"postgresql: skipped ({MISSING})")
            else:
                from bench.reliability_pg import run_postgres_phases

                def check(url: str, acknowledged: list[dict[str, Any]]) -> list[str]:
                    return check_store(url, acknowledged, {}, allow_extra=True)

                results.append(run_postgres_phases(
                    Path(tmp), data_dir, bin_dir, check, kill_after=args.kill_after,
                    concurrency=args.concurrency, outage_s=args.outage_s))
    print(f"reliability: {'PASS' if results and all(results) else 'FAIL'}")
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
