"""Traffic generator throughput: 2,000 queries at concurrency 20 against a local server.

    .venv/bin/python bench/bench_traffic.py [--queries 2000] [--concurrency 20] [--fake]

Starts `uvicorn api.main:app` (or, with --fake or when the app does not import, a minimal
fake API defined below) as a subprocess with SIM_TIME_SCALE=0 over a fresh DATA_DIR,
bootstraps the local flags, runs the concurrent generator in this process with the
simulated judge, and prints queries/s, latency percentiles, and the CPU seconds of the
generator and of the server (from /proc), so the generator's own share is visible.
Target (issue 7): ≤60 s for 2,000 queries on this machine.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from fastapi import FastAPI
from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.api_process import ApiProcess, ApiStartError, free_port, start_api  # noqa: E402

fake_app = FastAPI()


@fake_app.get("/health")
async def _health() -> dict:
    return {"status": "ok"}


@fake_app.post("/chat")
async def _chat(body: dict) -> dict:
    return {"request_id": str(uuid.uuid4()), "simulated": True, "agents": [], "totals": {},
            "response": f"{body['message']} Thompson sampling samples each arm's posterior."}


@fake_app.post("/feedback")
async def _feedback(body: dict) -> dict:
    return {"status": "recorded"}


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its waited-for children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


def _start_server(fake: bool, data_dir: Path, port: int) -> tuple[ApiProcess, str]:
    env = {**os.environ, "DATA_DIR": str(data_dir), "SIM_TIME_SCALE": "0",
           "LLM_MODE": "simulated", "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
           "LOG_LEVEL": "WARNING"}
    target = "api.main:app"
    if not fake:
        check = subprocess.run([sys.executable, "-c", "import api.main"], cwd=ROOT, env=env,
                               capture_output=True, text=True)
        if check.returncode != 0:
            print("api.main does not import; benchmarking against the fake API instead:\n  "
                  + check.stderr.strip().splitlines()[-1])
            fake = True
        else:
            subprocess.run([sys.executable, "-m", "bootstrap.create_configs"], cwd=ROOT,
                           env=env, check=True, capture_output=True)
    if fake:
        target = "bench.bench_traffic:fake_app"
    try:
        server = start_api(target, env=env, port=port, timeout=120)
    except ApiStartError as exc:
        raise SystemExit(str(exc)) from None
    return server, "fake API" if fake else "api.main:app"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--pii-percentage", type=float, default=15.0)
    parser.add_argument("--fake", action="store_true", help="use the fake API, not api.main")
    parser.add_argument("--api-url", default=None,
                        help="benchmark a server that is already running (its CPU is not "
                             "measured unless --server-pid is given)")
    parser.add_argument("--server-pid", type=int, default=None)
    args = parser.parse_args()

    from tools.traffic.run import TrafficOptions, run_traffic
    from utils.settings import get_settings

    with tempfile.TemporaryDirectory(prefix="bench-traffic-") as tmp:
        data_dir = Path(tmp) / "data"
        os.environ["DATA_DIR"] = str(data_dir)  # the generator's topic cache goes here too
        get_settings.cache_clear()
        if args.api_url:
            url, server, label = args.api_url, None, f"running server at {args.api_url}"
        else:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            server, label = _start_server(args.fake, data_dir, port)
        server_pid = server.pid if server else args.server_pid
        try:
            options = TrafficOptions(queries=args.queries, concurrency=args.concurrency,
                                     pii_percentage=args.pii_percentage, seed=1,
                                     segment="mix", judge="simulated", show_progress=False,
                                     api_url=url,
                                     log_dir=Path(tmp) / "logs")
            server_cpu0 = _cpu_seconds(server_pid) if server_pid else 0.0
            cpu0, wall0 = time.process_time(), time.perf_counter()
            # Query lines are rendered by rich as in a real run, into a buffer to keep this
            # output short.
            summary = run_traffic(options, console=Console(file=io.StringIO(), width=120))
            wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0
            server_cpu = _cpu_seconds(server_pid) - server_cpu0 if server_pid else None
        finally:
            if server is not None:
                server.stop()

    stats = summary.latency_stats() or {"mean": 0, "median": 0, "p95": 0}
    lat = sorted(summary.latencies)
    p99 = lat[min(len(lat) - 1, round(0.99 * len(lat)) - 1)] if lat else 0.0
    print(f"server:                {label}, SIM_TIME_SCALE=0, {os.cpu_count()} cores")
    print(f"queries:               {summary.sent} sent, {summary.successes} ok, "
          f"failures {summary.failures or 'none'}")
    print(f"wall time:             {wall:.1f} s (target ≤60 s)  "
          f"{'OK' if wall <= 60 else 'OVER TARGET'}")
    print(f"throughput:            {summary.sent / wall:.1f} queries/s")
    print(f"latency per query:     median {stats['median'] * 1000:.0f} ms, "
          f"p95 {stats['p95'] * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    print(f"feedback:              verdicts {summary.verdicts}, posted "
          f"{summary.feedback_posted}")
    print(f"generator CPU:         {cpu:.1f} s = {cpu / wall:.0%} of one core, "
          f"{cpu / summary.sent * 1000:.2f} ms per query")
    if server_cpu is not None:
        print(f"server CPU:            {server_cpu:.1f} s")
        print(f"generator share:       {cpu / (cpu + server_cpu):.0%} of the CPU both used")
    return 0


if __name__ == "__main__":
    sys.exit(main())
