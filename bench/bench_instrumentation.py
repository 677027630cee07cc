"""Instrumentation overhead per request and event-store write throughput (issue 5, Speed).

    .venv/bin/python bench/bench_instrumentation.py [--requests 5000] [--batches 5000]

1. Recorder overhead: what instrumentation adds to one request on the PII route (three agent
   runs): RunRecorder, three exposures, three `RunRecorder.finish_run` (usage from real AIMessages,
   cost lookup), three `track_run`, the `pii_exposed_entities` metric, and building the
   WriteBatch. p50 / p99 per request, in this process, no I/O. Target p50 ≤1 ms.
2. Store write path: `submit()` (what the request thread pays to hand off a batch) and the
   full acknowledged write (`write_sync`, submit → committed) one request at a time.
3. Store throughput: rows/s when many requests write at once (group commits), from one
   producer and from 50 concurrent asyncio tasks (how the server writes).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from langchain_core.messages import AIMessage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from utils.flags.client import AgentConfig  # noqa: E402
from utils.telemetry import metrics  # noqa: E402
from utils.telemetry.cost_calculator import get_pricing_table  # noqa: E402
from utils.telemetry.event_store import EventStore, WriteBatch  # noqa: E402
from utils.telemetry.instrumentation import ModelUsage, RunRecorder, RunTimer  # noqa: E402

PRICING = get_pricing_table()

CONFIGS = (
    ("supervisor", AgentConfig(config_key="supervisor-agent", variation_key="supervisor-basic",
                               enabled=True, model="gpt-4o-mini", provider="openai")),
    ("security", AgentConfig(config_key="security-agent", variation_key="strict-security",
                             enabled=True, model="mistral-small-latest", provider="mistral",
                             in_experiment=True)),
    ("support", AgentConfig(config_key="support-agent", variation_key="other-paid",
                            enabled=True, model="gpt-4o", provider="openai",
                            in_experiment=True)),
)


def _message(input_tokens: int, output_tokens: int) -> AIMessage:
    return AIMessage("answer", usage_metadata={
        "input_tokens": input_tokens, "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens},
        response_metadata={"simulated": True, "simulated_latency_ms": 420.0, "slept_ms": 0.0,
                           "time_to_first_token_ms": 310.0})


MESSAGES = {"supervisor": [_message(133, 13)], "security": [_message(23, 12)],
            "support": [_message(1800, 40), _message(1970, 390)]}


def record_one_request(i: int) -> WriteBatch:
    """Everything the instrumentation does for one PII-route request, up to the batch."""
    recorder = RunRecorder(f"req-{i}", f"user-{i % 500}", {"country": "DE", "plan": "paid"},
                           pricing=PRICING)
    for agent, config in CONFIGS:
        recorder.record_exposure(config)
        timer, usage = RunTimer(), ModelUsage()
        usage.extend(MESSAGES[agent])
        tools = ["search_v2", "reranking"] if agent == "support" else None
        run = recorder.finish_run(config, agent, timer, usage, tools_used=tools)
        if agent == "support":
            recorder.track_metric(metrics.PII_EXPOSED_ENTITIES, 0, run)
    return recorder.batch(status="ok", routed_to_security=True)


def _timed_us(fn: Callable[[int], object], n: int) -> list[float]:
    times = []
    for i in range(n):
        start = time.perf_counter_ns()
        fn(i)
        times.append((time.perf_counter_ns() - start) / 1000)
    return times


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _rows(batch: WriteBatch) -> int:
    return 1 + len(batch.exposures) + len(batch.events)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--batches", type=int, default=5000)
    args = parser.parse_args()

    _timed_us(record_one_request, 200)  # warm caches (pricing table, imports)
    recorder_us = _timed_us(record_one_request, args.requests)
    sample = record_one_request(0)

    with tempfile.TemporaryDirectory(prefix="bench-instr-") as tmp:
        store = EventStore(Path(tmp) / "events.db")
        batches = [record_one_request(i) for i in range(args.batches)]
        for batch in batches[:100]:
            store.write_sync(batch)

        # One request at a time: hand-off cost and the acknowledged (committed) write.
        sequential = batches[100:1100]
        submit_us, write_us = [], []
        for batch in sequential:
            start = time.perf_counter_ns()
            future = store.submit(batch)
            submit_us.append((time.perf_counter_ns() - start) / 1000)
            future.result(30)
            write_us.append((time.perf_counter_ns() - start) / 1000)

        # Throughput: everything submitted at once from one producer.
        bulk = [record_one_request(args.batches + i) for i in range(args.batches)]
        start = time.perf_counter()
        futures = [store.submit(b) for b in bulk]
        for future in futures:
            future.result(120)
        bulk_s = time.perf_counter() - start
        bulk_rows = sum(_rows(b) for b in bulk)

        # Throughput: 50 asyncio tasks awaiting `write` (the server's pattern).
        concurrent = [record_one_request(2 * args.batches + i) for i in range(args.batches)]

        async def writers() -> None:
            queue = iter(concurrent)

            async def worker() -> None:
                for batch in queue:
                    await store.write(batch)

            await asyncio.gather(*(worker() for _ in range(50)))

        start = time.perf_counter()
        asyncio.run(writers())
        async_s = time.perf_counter() - start
        async_rows = sum(_rows(b) for b in concurrent)
        store.close()

    print(f"instrumentation: {args.requests} PII-route requests (3 agent runs, "
          f"{len(sample.exposures)} exposures, {len(sample.events)} event rows each)")
    print(f"  recorder + finish_run + batch:  p50 {statistics.median(recorder_us):7.1f} µs, "
          f"p99 {_pct(recorder_us, 0.99):7.1f} µs  (target p50 ≤1000 µs: "
          f"{'OK' if statistics.median(recorder_us) <= 1000 else 'MISSED'})")
    print(f"  store submit (request's share): p50 {statistics.median(submit_us):7.1f} µs, "
          f"p99 {_pct(submit_us, 0.99):7.1f} µs")
    print(f"  on-request total (the above):   p50 "
          f"{statistics.median(recorder_us) + statistics.median(submit_us):7.1f} µs")
    print(f"  acknowledged write, one at a time (submit → commit, off the event loop): "
          f"p50 {statistics.median(write_us) / 1000:.2f} ms, p99 {_pct(write_us, 0.99) / 1000:.2f} ms")
    print(f"store throughput: one producer {bulk_rows / bulk_s:,.0f} rows/s "
          f"({len(bulk) / bulk_s:,.0f} requests/s); 50 async writers "
          f"{async_rows / async_s:,.0f} rows/s ({len(concurrent) / async_s:,.0f} requests/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
