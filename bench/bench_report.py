"""A full experiment report over 1,000,000 events and 50,000 users in <= 3 s, per store.

    python bench/bench_report.py [--stores sqlite postgresql] [--users 50000]
        [--events 1000000] [--runs 3] [--no-index] [--db PATH] [--pg-url URL]

Builds a synthetic SQLite event store with the app's own schema (store_schema's migrations;
not timed), then times `build_report` on it and prints the median and worst run with the
split between SQL aggregation and statistics. For PostgreSQL the same store is copied with
tools/copy_store.py (COPY; its rows/s printed) into a fresh database on a throwaway local
cluster (tools/local_postgres.py; or `--pg-url`, an empty database), and `build_report`
reads it through the same reader as EVENTS_URL=postgresql://... does.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.copy_store import copy_store  # noqa: E402
from tools.local_postgres import MISSING, fresh_database, pg_bin_dir, throwaway_server  # noqa: E402
from utils.experiments.user_metrics import connect_event_store, load_all_arm_data  # noqa: E402
from utils.experiments.verdicts import build_report  # noqa: E402
from utils.telemetry import metrics as mk  # noqa: E402
from utils.telemetry.store_schema import EVENT_COLUMNS, connect  # noqa: E402

STORES = ("sqlite", "postgresql")
ROUTED = 0.73  # share of requests the security agent runs on (the demo's traffic: 1,462/2,000)
# Per request: (event key, agent, config) rows; the security rows only on routed requests.
REQUEST_EVENTS = [
    (mk.DURATION_TOTAL, "supervisor", "supervisor-agent"),
    (mk.DURATION_TOTAL, "security", "security-agent"),
    (mk.DURATION_TOTAL, "support", "support-agent"),
    (mk.TOKENS_TOTAL, "security", "security-agent"),
    (mk.TOKENS_TOTAL, "support", "support-agent"),
    (mk.COST_PER_REQUEST, "security", "security-agent"),
    (mk.COST_PER_REQUEST, "support", "support-agent"),
    (mk.PII_EXPOSED_ENTITIES, "support", "support-agent"),
    (mk.GENERATION_SUCCESS, "support", "support-agent"),
    (mk.TOKENS_INPUT, "support", "support-agent"),
]
SECURITY_ROWS = sum(cfg == "security-agent" for _, _, cfg in REQUEST_EVENTS)


def build_store(path: Path, users: int, events: int, *, index: bool, seed: int = 0) -> None:
    """A store where every user is in all three experiments, arms drawn independently.

    Users' requests are spread over time, and like the demo's traffic only ROUTED of the
    requests reach the security agent: a user whose first request did not is exposed to
    Security Level later than to the others, and the report reads that user's events again
    (the events before that exposure do not count for it)."""
    rng = np.random.default_rng(seed)
    rows_per_request = len(REQUEST_EVENTS) - (1 - ROUTED) * SECURITY_ROWS
    requests = int(events / rows_per_request)
    user_of = rng.integers(0, users, requests)
    user_of[:users] = np.arange(users)  # every user has at least one request
    rng.shuffle(user_of)
    routed = rng.random(requests) < ROUTED
    sec_arm = rng.integers(0, 2, users)
    sup_arm = rng.integers(0, 2, users)
    ts = 1.7e9 + np.arange(requests) * 0.5
    sec_var = np.array(["basic-security", "strict-security"])
    sup_var = np.array(["other-paid", "claude-opus-treatment"])
    graph_arm = np.random.default_rng([seed, 3]).integers(0, 2, users)
    graph_var = np.array(["detector-routed", "always-security"])
    ukeys = np.array([f"user-{u:06d}" for u in range(users)])
    conn = connect(path)  # the app's schema, migrated: tables and indexes as the app has them
    conn.execute("BEGIN")
    ex = []
    for r in range(requests):
        u = user_of[r]
        rid = f"r{r}"
        if routed[r]:
            ex.append((ts[r], rid, ukeys[u], "security-agent", sec_var[sec_arm[u]], 1, "{}"))
        ex.append((ts[r], rid, ukeys[u], "support-agent", sup_var[sup_arm[u]], 1, "{}"))
        ex.append((ts[r], rid, ukeys[u], "support-assistant-graph", graph_var[graph_arm[u]], 1,
                   "{}"))
    conn.executemany("INSERT INTO exposures(ts, request_id, user_key, config_key, variation_key,"
                     " in_experiment, context_json) VALUES (?,?,?,?,?,?,?)", ex)
    values = rng.gamma(2.0, 1.0, (requests, len(REQUEST_EVENTS)))
    rows = []
    for r in range(requests):
        u = user_of[r]
        for j, (key, agent, cfg) in enumerate(REQUEST_EVENTS):
            if cfg == "security-agent" and not routed[r]:
                continue
            var = sec_var[sec_arm[u]] if cfg == "security-agent" else sup_var[sup_arm[u]]
            rows.append((ts[r] + 0.1, f"r{r}", ukeys[u], key, float(values[r, j]), cfg, var,
                         agent, "m", "p", 1))
    # Feedback: a thumbs-up from ~30% of users (kept within the event budget).
    fb_users = np.flatnonzero(rng.random(users) < 0.3)
    rows = rows[: events - len(fb_users)]
    for u in fb_users:
        rows.append((2e9, "fb", ukeys[u], mk.FEEDBACK_POSITIVE, 1.0, "support-agent",
                     sup_var[sup_arm[u]], "feedback", None, None, 0))
    conn.executemany(f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                     rows)
    conn.execute("COMMIT")
    if not index:
        drop_indexes(conn)
    conn.close()


def drop_indexes(conn: Any) -> None:
    """Drop the schema's secondary indexes (--no-index), on either database."""
    if hasattr(conn, "raw"):
        names = [r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
            "AND indexname NOT LIKE '%pkey'").fetchall()]
    else:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")]
    for name in names:
        conn.execute(f"DROP INDEX {name}")


def server_cpu_probe(url: str) -> Any:
    """A function giving the CPU seconds of the PostgreSQL server's finished backends, when the
    server runs on this machine (the postmaster's reaped children), else None."""
    conn = connect_event_store(url)
    try:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    finally:
        conn.close()
    try:
        postmaster = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None  # not this machine's server
    tick = os.sysconf("SC_CLK_TCK")

    def children_cpu() -> float:
        fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[13]) + int(fields[14])) / tick  # cutime + cstime

    return children_cpu


def time_reports(location: str, runs: int, server_cpu: Any = None) -> dict[str, list[float]]:
    """Wall, CPU, SQL and statistics seconds of `runs` reports (the last report's lines)."""
    got: dict[str, list[float]] = {"wall": [], "cpu": [], "server": [], "sql": [], "stats": []}
    for _ in range(runs):
        s0 = server_cpu() if server_cpu else 0.0
        t, c = time.perf_counter(), time.process_time()
        report = build_report(location)
        got["wall"].append(time.perf_counter() - t)
        got["cpu"].append(time.process_time() - c)
        if server_cpu:
            time.sleep(0.3)  # the report's backend has exited; let the postmaster reap it
            got["server"].append(server_cpu() - s0)
        got["sql"].append(report.timings["sql_seconds"])
        got["stats"].append(report.timings["stats_seconds"])
    for r in report.experiments:
        print(f"  {r.experiment.key}: users {r.users}, verdict {r.verdict.outcome}")
    conn = connect_event_store(location)
    try:
        data = load_all_arm_data(conn, [r.experiment for r in report.experiments])
    finally:
        conn.close()
    print("  users read again (events from before their first exposure): " + ", ".join(
        f"{key} {d.reread_users:,} of {len(d.users):,}" for key, d in data.items()))
    return got


def print_times(store: str, got: dict[str, list[float]]) -> None:
    med = statistics.median(got["wall"])
    print(f"{store} report: median {med:.2f} s wall, worst {max(got['wall']):.2f} s over "
          f"{len(got['wall'])} runs (target <= 3 s: {'met' if med <= 3 else 'MISSED'})")
    # On a shared machine wall time includes waiting for a core; CPU time does not (and on
    # PostgreSQL the SQL's CPU is the server's, not this process's).
    print(f"  CPU time of this process, median {statistics.median(got['cpu']):.2f} s"
          + (f"; of the database server's backend, median {statistics.median(got['server']):.2f}"
             " s" if got["server"] else ""))
    for part in ("sql", "stats"):
        value = statistics.median(got[part])
        print(f"  {part:<5} median {value:.2f} s ({value / med:.0%})")


def store_counts(location: str) -> tuple[int, int]:
    conn = connect_event_store(location)
    try:
        n_events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        n_users = conn.execute("SELECT COUNT(DISTINCT user_key) FROM exposures").fetchone()[0]
    finally:
        conn.close()
    return n_events, n_users


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES),
                   help="the databases to time the report on (default: both)")
    p.add_argument("--users", type=int, default=50_000)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--no-index", action="store_true", help="store without secondary indexes")
    p.add_argument("--db", type=Path, help="reuse (or create) the synthetic store at this path")
    p.add_argument("--pg-url", help="an empty PostgreSQL database to copy into (default: a "
                                    "throwaway local cluster)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        path = args.db or Path(tmp) / "bench.db"
        t0 = time.perf_counter()
        if not path.exists():
            build_store(path, args.users, args.events, index=not args.no_index)
        n_events, n_users = store_counts(str(path))
        print(f"store: {n_events:,} events, {n_users:,} users, "
              f"indexes={'no' if args.no_index else 'yes'} (built in "
              f"{time.perf_counter() - t0:.1f} s)")
        if "sqlite" in args.stores:
            got = time_reports(str(path), args.runs)
            print_times("SQLite", got)
        if "postgresql" in args.stores:
            url = args.pg_url
            if url is None:
                bin_dir = pg_bin_dir()
                if bin_dir is None:
                    print(f"PostgreSQL skipped: {MISSING} (or pass --pg-url)")
                    return 0
                url = stack.enter_context(fresh_database(
                    stack.enter_context(throwaway_server(bin_dir))))
            progress = io.StringIO()
            t0 = time.perf_counter()
            copied = copy_store(str(path), url, out=progress)
            took = time.perf_counter() - t0
            rows = sum(copied.values())
            print(f"copied into PostgreSQL with tools/copy_store.py: {rows:,} rows in "
                  f"{took:.1f} s ({rows / took:,.0f} rows/s, incl. migrate, verify, VACUUM ANALYZE)")
            for line in progress.getvalue().splitlines():
                if ": " in line and ("rows in" in line or "VACUUM" in line):
                    print(f"  {line.removeprefix('copy_store: ')}")
            if args.no_index:
                conn = connect_event_store(url)
                drop_indexes(conn)
                conn.close()
            got = time_reports(url, args.runs, server_cpu_probe(url))
            print_times("PostgreSQL", got)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
