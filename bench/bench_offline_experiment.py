"""Speed of an offline experiment's variant run (issue 20): 60 tasks × 3 repeats ≤ 15 s.

    .venv/bin/python bench/bench_offline_experiment.py [--tasks 60] [--repeats 3]

Over a fresh DATA_DIR with the bootstrap's flags and simulated providers (SIM_TIME_SCALE=0),
creates an experiment on the first N tasks of the default task set, runs its baseline (which
also warms the search indexes and the PII analyzer), then runs one variant (support-agent
max_tokens=300) twice: sequentially, to split the time between the graph (ChatService.run:
the three agents, their tools and the store commit) and everything outside it (grading,
PII counting of what support read, the offline judge, the runner), and at the runner's
default concurrency, the way `python -m tools.offline_experiment run` does it. Prints the
time per task run, the share outside the graph, and the wall time against the 15 s target.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_chat import prepare_data_dir, server_env  # noqa: E402

TARGET_S = 15.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-offline-") as folder:
        data_dir = Path(folder)
        flags = prepare_data_dir(data_dir)
        os.environ.update(server_env(data_dir))
        from api.composition import build_service
        from api.offline_runner import DEFAULT_CONCURRENCY, lock_baseline, run_variant
        from tools.traffic.judge import make_judge
        from utils.experiments.offline_state import (
            BASELINE,
            add_variant,
            begin_run,
            finish_run,
            new_state,
        )
        from utils.experiments.offline_tasks import DEFAULT_TASKS_PATH
        from utils.settings import get_settings

        get_settings.cache_clear()
        settings = get_settings()
        lines = DEFAULT_TASKS_PATH.read_text().splitlines()[: args.tasks]
        tasks = data_dir / "tasks.jsonl"
        tasks.write_text("\n".join(lines) + "\n")
        state = new_state("bench", steps=["support-agent"], tasks_path=str(tasks),
                          context={"key": "bench", "country": "US", "plan": "paid"},
                          repeats=args.repeats, description="", missing=[])
        service = build_service(settings)

        def judges(seed: int):
            return make_judge("simulated", seed=seed)

        def run(name: str, concurrency: int) -> tuple[dict, float, float]:
            begin_run(state, name, pid=os.getpid())
            wall, cpu = time.perf_counter(), _cpu()
            result = asyncio.run(run_variant(service, state, name, judges=judges,
                                             concurrency=concurrency))
            wall, cpu = time.perf_counter() - wall, _cpu() - cpu
            finish_run(state, name, result)
            return result, wall, cpu

        lock_baseline(state, settings)
        _, warm_wall, _ = run(BASELINE, DEFAULT_CONCURRENCY)
        add_variant(state, "v", step="support-agent", param="max_tokens", value=300)
        sequential, seq_wall, seq_cpu = run("v", 1)
        concurrent, con_wall, con_cpu = run("v", DEFAULT_CONCURRENCY)
        service.close()
    runs = len(sequential["runs"])
    outside = 1.0 - sequential["graph_s"] / sequential["elapsed_s"]
    print(f"flags: {flags}; {args.tasks} tasks × {args.repeats} repeats = {runs} task runs")
    print(f"baseline (cold: index and PII analyzer warm-up included): {warm_wall:.2f} s")
    print(f"variant, sequential: {seq_wall:.2f} s wall, {seq_cpu:.2f} s CPU, "
          f"{seq_wall / runs * 1000:.1f} ms per task run, {outside:.1%} of it outside the "
          "graph")
    print(f"variant, concurrency {DEFAULT_CONCURRENCY}: {con_wall:.2f} s wall, "
          f"{con_cpu:.2f} s CPU, {con_wall / runs * 1000:.1f} ms per task run "
          f"(target ≤ {TARGET_S:.0f} s: {'met' if con_wall <= TARGET_S else 'MISSED'})")
    return 0 if con_wall <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
