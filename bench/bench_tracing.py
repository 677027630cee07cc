"""CPU per /chat request with tracing off and on (issue: off within noise of before, on ≤ 1 ms more).

1. In one process, the same in-process chat service answers the same requests in interleaved
   blocks with tracing off and on. On is the production set-up: the SDK's batch processor and
   OTLP/HTTP exporter, sending to a local receiver in another process (so decoding is not
   counted); each on-block ends with a flush, so its export CPU is inside the block.
   CPU is `time.process_time()`: every thread of the process (graph, store writer, exporter).
2. With `--baseline PATH` (a checkout without tracing, e.g. the commit before it), the same
   requests with tracing off in fresh processes alternating between PATH and this tree.

    .venv/bin/python bench/bench_tracing.py [--requests 400] [--rounds 5] [--baseline ../old]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_chat import chat_bodies, prepare_data_dir, server_env  # noqa: E402

# Run in a fresh process with cwd=<checkout>: CPU ms per request with tracing off.
_CHILD = """
import asyncio, os, sys, time
sys.path.insert(0, os.getcwd())
from bench.bench_chat import chat_bodies, in_process_service
from api.schemas import ChatRequest
from pathlib import Path
service = in_process_service(Path(sys.argv[1]))
bodies = [ChatRequest(**b) for b in chat_bodies(int(sys.argv[2]))]
async def run(batch):
    for body in batch:
        await service.chat(body)
asyncio.run(run(bodies[:40]))
start = time.process_time()
asyncio.run(run(bodies))
print((time.process_time() - start) * 1000 / len(bodies))
service.close()
"""


def start_receiver() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.otlp_receiver", "--seconds",
                             "900"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        raise SystemExit(f"the OTLP receiver did not start (said {url!r})")
    return proc, url


def interleaved(data_dir: Path, requests: int, rounds: int, url: str) -> dict[str, list[float]]:
    """CPU ms per request, per block, for tracing off and on in this process."""
    os.environ.update(server_env(data_dir, OTEL_EXPORTER_OTLP_ENDPOINT=url,
                                 EVENTS_DB=str(data_dir / "interleaved.db")))
    from bench.bench_chat import in_process_service
    from utils.settings import get_settings
    from utils.telemetry import tracing

    service = in_process_service(data_dir)
    from api.schemas import ChatRequest

    bodies = [ChatRequest(**b) for b in chat_bodies(requests)]
    provider = tracing.setup_tracing(get_settings())
    assert provider is not None, "tracing did not turn on"

    async def run(batch: list[ChatRequest]) -> None:
        for body in batch:
            await service.chat(body)

    for mode in ("on", "off"):  # warm both paths
        tracing.use_provider(provider, get_settings()) if mode == "on" else tracing.stop_using()
        asyncio.run(run(bodies[:40]))
    provider.force_flush()
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    for round_ in range(rounds):
        for mode in (("off", "on") if round_ % 2 == 0 else ("on", "off")):
            if mode == "on":
                tracing.use_provider(provider, get_settings())
            else:
                tracing.stop_using()
            start = time.process_time()
            asyncio.run(run(bodies))
            if mode == "on":
                provider.force_flush()  # the export of this block's spans counts here
            cpu[mode].append((time.process_time() - start) * 1000 / len(bodies))
    tracing.stop_using()
    provider.shutdown()
    service.close()
    return cpu


def baseline(data_dir: Path, requests: int, rounds: int, other: Path) -> dict[str, list[float]]:
    """CPU ms per request with tracing off, fresh processes alternating two checkouts."""
    cpu: dict[str, list[float]] = {"baseline": [], "this tree": []}
    for round_ in range(rounds):
        order = [("baseline", other), ("this tree", ROOT)]
        for label, root in (order if round_ % 2 == 0 else order[::-1]):
            env = server_env(data_dir, EVENTS_DB=str(data_dir / f"{label[0]}{round_}.db"))
            env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
            out = subprocess.run([sys.executable, "-c", _CHILD, str(data_dir), str(requests)],
                                 cwd=root, env=env, capture_output=True, text=True, check=True)
            cpu[label].append(float(out.stdout.strip().splitlines()[-1]))
    return cpu


def _summary(values: list[float]) -> str:
    return (f"median {statistics.median(values):6.3f} ms  (blocks: "
            + ", ".join(f"{v:.2f}" for v in values) + ")")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per block")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="a checkout without tracing")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        flags = prepare_data_dir(data_dir)
        receiver, url = start_receiver()
        try:
            cpu = interleaved(data_dir, args.requests, args.rounds, url)
        finally:
            receiver.terminate()
            received = receiver.communicate(timeout=10)[0].strip()
        base = baseline(data_dir, args.requests, args.rounds, args.baseline) \
            if args.baseline else {}
    delta = [on - off for on, off in zip(cpu["on"], cpu["off"], strict=True)]
    result = {"requests_per_block": args.requests, "rounds": args.rounds, "flags": flags,
              "cpu_ms_per_request": {**cpu, **base},
              "on_minus_off_ms": statistics.median(delta), "receiver": received}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"CPU per /chat request, in-process, {args.requests} requests x {args.rounds} "
          f"interleaved blocks ({flags})")
    print(f"  tracing off  {_summary(cpu['off'])}")
    print(f"  tracing on   {_summary(cpu['on'])}")
    print(f"  on - off     median {statistics.median(delta):6.3f} ms per request "
          f"(target <= 1 ms); receiver: {received}")
    for label, values in base.items():
        print(f"  {label:<11}  {_summary(values)}  (tracing off, fresh processes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
