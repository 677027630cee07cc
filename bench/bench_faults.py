"""Faults end cleanly (issue 17), measured against a running server.

    python -m bench.bench_faults [--trials 20]

1. Flags: `--trials` bad writes of the flag file (alternating `{}`, truncated, no
   security-agent); for each, the time until /health is degraded, and whether an EU user
   still got strict-security. Then the good file back and the time until /health is ok.
2. Store: another connection holds the write lock; `--trials` /chat requests, each must be
   a 503 naming the lock; their latency against STORE_LOCK_TIMEOUT_S (default 4 s, so a
   503 arrives within 5 s in all).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.fakes.flagfile import standard_flags, write_flags
from tools.api_process import ROOT, start_api

CHAT = {"user_id": "bench-eu", "message": "I am Maria from Acme GmbH in Munich, mail "
        "maria@acme.de: what is Q-learning?", "user_context": {"country": "DE", "plan": "paid"}}


def _bad_writes(path: Path, trial: int) -> None:
    if trial % 3 == 0:
        write_flags(path, {})
    elif trial % 3 == 1:
        text = json.dumps(standard_flags())
        path.write_text(text[: len(text) // 2])
    else:
        data = standard_flags()
        del data["flags"]["security-agent"]
        write_flags(path, data)


def _until(url: str, status: str, limit: float = 10.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if httpx.get(f"{url}/health", timeout=10).json()["status"] == status:
            return time.monotonic() - started
        time.sleep(0.02)
    return float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    flags, db = state / "flags.json", state / "events.db"
    write_flags(flags, standard_flags())
    env = {**os.environ, "DATA_DIR": str(ROOT / "data"), "LOCAL_FLAGS_PATH": str(flags),
           "EVENTS_DB": str(db), "LLM_MODE": "simulated", "SIM_TIME_SCALE": "0"}
    api = start_api(env=env)
    try:
        degraded, recovered, strict = [], [], 0
        for trial in range(args.trials):
            _bad_writes(flags, trial)
            degraded.append(_until(api.url, "degraded"))
            time.sleep(0.6)  # past both polls: a bad version would be in service by now
            runs = httpx.post(f"{api.url}/chat", json=CHAT, timeout=60).json()["agents"]
            strict += any(r["variation_key"] == "strict-security" for r in runs)
            write_flags(flags, standard_flags())
            recovered.append(_until(api.url, "ok"))
        print(f"flags: {args.trials} bad writes; /health degraded after median "
              f"{statistics.median(degraded) * 1000:.0f} ms, max {max(degraded) * 1000:.0f} ms; "
              f"EU user kept strict-security {strict}/{args.trials}; ok again after max "
              f"{max(recovered) * 1000:.0f} ms")

        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        latencies, clean = [], 0
        try:
            for _ in range(args.trials):
                started = time.monotonic()
                response = httpx.post(f"{api.url}/chat", json=CHAT, timeout=120)
                latencies.append(time.monotonic() - started)
                clean += response.status_code == 503 and "locked" in response.text
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        print(f"store locked: {clean}/{args.trials} answered 503 naming the lock; latency "
              f"median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s "
              "(STORE_LOCK_TIMEOUT_S=4, the default)")
    finally:
        api.stop()


if __name__ == "__main__":
    main()
