"""A full experiment report over 1,000,000 events and 50,000 users in <= 3 s.

    python bench/bench_report.py [--users 50000] [--events 1000000] [--runs 3] [--no-index]

Builds a synthetic event store (not timed), then times `build_report` and prints the
median and worst run with the split between SQL aggregation and statistics.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.experiments.verdicts import build_report  # noqa: E402
from utils.telemetry import metrics as mk  # noqa: E402
from utils.telemetry.store_schema import EVENT_COLUMNS  # noqa: E402

SCHEMA = """
CREATE TABLE exposures(id INTEGER PRIMARY KEY, ts REAL, request_id TEXT, user_key TEXT,
    config_key TEXT, variation_key TEXT, in_experiment INTEGER, context_json TEXT);
CREATE TABLE events(id INTEGER PRIMARY KEY, ts REAL, request_id TEXT, user_key TEXT,
    event_key TEXT, value REAL, config_key TEXT, variation_key TEXT, agent TEXT, model TEXT,
    provider TEXT, simulated INTEGER);
"""
# The same indexes utils/telemetry/event_store.py creates.
INDEXES = """
CREATE INDEX exposures_by_config ON exposures (config_key, user_key, ts);
CREATE INDEX events_by_key ON events (event_key, user_key);
"""
# Per request: (event key, agent, config) rows; 10 rows, so events = 10 x requests.
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


def build_store(path: Path, users: int, events: int, *, index: bool, seed: int = 0) -> None:
    """A store where every user is in both experiments, arms drawn independently."""
    rng = np.random.default_rng(seed)
    requests = events // len(REQUEST_EVENTS)
    user_of = np.sort(rng.integers(0, users, requests))
    user_of[:users] = np.arange(users)  # every user has at least one request
    user_of.sort()
    sec_arm = rng.integers(0, 2, users)
    sup_arm = rng.integers(0, 2, users)
    ts = 1.7e9 + np.arange(requests) * 0.5
    sec_var = np.array(["basic-security", "strict-security"])
    sup_var = np.array(["other-paid", "claude-opus-treatment"])
    ukeys = np.array([f"user-{u:06d}" for u in range(users)])
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    ex = []
    for r in range(requests):
        u = user_of[r]
        rid = f"r{r}"
        ex.append((ts[r], rid, ukeys[u], "security-agent", sec_var[sec_arm[u]], 1, "{}"))
        ex.append((ts[r], rid, ukeys[u], "support-agent", sup_var[sup_arm[u]], 1, "{}"))
    conn.executemany("INSERT INTO exposures(ts, request_id, user_key, config_key, variation_key,"
                     " in_experiment, context_json) VALUES (?,?,?,?,?,?,?)", ex)
    values = rng.gamma(2.0, 1.0, (requests, len(REQUEST_EVENTS)))
    rows = []
    for r in range(requests):
        u = user_of[r]
        for j, (key, agent, cfg) in enumerate(REQUEST_EVENTS):
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
    if index:
        conn.executescript(INDEXES)
    conn.commit()
    conn.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=50_000)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--no-index", action="store_true", help="store without secondary indexes")
    p.add_argument("--db", type=Path, help="reuse (or create) the synthetic store at this path")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "bench.db"
        t0 = time.perf_counter()
        if not path.exists():
            build_store(path, args.users, args.events, index=not args.no_index)
        conn = sqlite3.connect(path)
        n_events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        n_users = conn.execute("SELECT COUNT(DISTINCT user_key) FROM exposures").fetchone()[0]
        conn.close()
        print(f"store: {n_events:,} events, {n_users:,} users, "
              f"indexes={'no' if args.no_index else 'yes'} (built in "
              f"{time.perf_counter() - t0:.1f} s)")
        totals, cpus, sqls, stats = [], [], [], []
        for _ in range(args.runs):
            t, c = time.perf_counter(), time.process_time()
            report = build_report(path)
            totals.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
            sqls.append(report.timings["sql_seconds"])
            stats.append(report.timings["stats_seconds"])
        for r in report.experiments:
            print(f"  {r.experiment.key}: users {r.users}, verdict {r.verdict.outcome}")
        med = statistics.median(totals)
        print(f"report: median {med:.2f} s wall, worst {max(totals):.2f} s over {args.runs} runs "
              f"(target <= 3 s)")
        # On a shared machine wall time includes waiting for a core; CPU time does not.
        print(f"  CPU time median {statistics.median(cpus):.2f} s (one thread)")
        print(f"  SQL   median {statistics.median(sqls):.2f} s "
              f"({statistics.median(sqls) / med:.0%})")
        print(f"  stats median {statistics.median(stats):.2f} s "
              f"({statistics.median(stats) / med:.0%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
