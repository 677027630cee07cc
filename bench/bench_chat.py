"""Speed of the full /chat path (issue 2), beside a floor app measured in the same run.

    .venv/bin/python bench/bench_chat.py [--requests 1000] [--wrk-seconds 10] [--profile 300]

Starts `uvicorn api.main:app` and `uvicorn bench.floor_app:app` as subprocesses over one fresh
DATA_DIR (flags from `python -m bootstrap.create_configs`), with LLM_MODE=simulated and
SIM_TIME_SCALE=0, then measures:

- latency: median and p99 of N sequential /chat requests (one keep-alive client), the
  three endpoints interleaved in blocks so that load from other tenants hits them alike;
- server CPU ms per request, from the server process's own utime+stime in /proc (a busy
  load generator cannot distort it), for /chat, the floor (/floor: three AI-config
  evaluations in a compiled 3-node LangGraph and one SQLite commit) and a bare /echo;
- throughput at concurrency 50 with `wrk` (apt-get install wrk) for all three endpoints;
- server RSS (VmRSS) after the N requests and after the wrk run.

Targets: median ≤10 ms, CPU ≤4× the floor's, RSS ≤400 MB. `--profile N` also runs N
requests in-process under cProfile and prints the top functions. The machine is shared, so
figures are noisy: compare ratios from one run rather than absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.api_process import ApiProcess, ApiStartError, start_api  # noqa: E402

SEGMENTS = ({"country": "US", "plan": "paid"}, {"country": "US", "plan": "free"},
            {"country": "DE", "plan": "paid"}, {"country": "FR", "plan": "free"})
QUESTIONS = (
    "What is Q-learning?", "How does SARSA differ from Q-learning?",
    "Explain the exploration-exploitation trade-off.", "What is a Markov decision process?",
    "How does temporal-difference learning work?", "What is a policy gradient?",
    "When should I use Monte Carlo methods instead of TD(0)?",
    "What does the discount factor gamma do?",
)
PII_QUESTIONS = (
    "My email is jane.doe@example.com, can you explain Q-learning?",
    "Call me on +1 415 555 0134 about the value iteration assignment.",
)
TARGET_MEDIAN_MS, TARGET_CPU_RATIO, TARGET_RSS_MB = 10.0, 4.0, 400.0


OPENERS = ("", "Quick question: ", "Hello! ", "Hi team, ", "Please help: ",
           "I am studying RL. ", "From the course: ", "New to this. ", "Follow-up: ",
           "One more thing: ", "Sorry to bother you. ", "For my exam: ")
CLOSERS = ("", " Thanks!", " Thank you.", " Cheers.", " Short answer please.",
           " With an example?", " In plain words?", " Much appreciated.", " Any pointers?",
           " Please be brief.", " What would you recommend?", " Is that right?")


def chat_bodies(count: int, pii_every: int = 8, *, distinct: bool = False
                ) -> list[dict[str, Any]]:
    """Deterministic /chat bodies: four segments, 200 users, one message in `pii_every` with PII.

    By default the messages repeat (10 texts), so per-text memos (PII scans, token counts)
    are warm, as for a FAQ-heavy workload; `distinct=True` words every message differently
    (up to 1,440 distinct texts), so they are cold, as for free-form traffic.
    """
    bodies = []
    for i in range(count):
        if pii_every and i % pii_every == pii_every - 1:
            message = PII_QUESTIONS[i // pii_every % len(PII_QUESTIONS)]
        else:
            message = QUESTIONS[i % len(QUESTIONS)]
        if distinct:
            opener = OPENERS[i // len(QUESTIONS) % len(OPENERS)]
            closer = CLOSERS[i // (len(QUESTIONS) * len(OPENERS)) % len(CLOSERS)]
            message = f"{opener}{message}{closer}"
        bodies.append({"user_id": f"bench-user-{i % 200}", "message": message,
                       "user_context": SEGMENTS[i % len(SEGMENTS)]})
    return bodies


# -- server processes ---------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of an offline, simulated, quiet server over `data_dir`."""
    env = dict(os.environ)
    for key in ("LD_SDK_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MISTRAL_API_KEY",
                "LOCAL_FLAGS_PATH", "EVENTS_DB"):
        env.pop(key, None)
    return {**env, "DATA_DIR": str(data_dir), "SIM_TIME_SCALE": "0", "LLM_MODE": "simulated",
            "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "", "LOG_LEVEL": "WARNING", **extra}


def prepare_data_dir(data_dir: Path) -> str:
    """Write the flag file with the bootstrap script (or the test flags if it fails)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, "-m", "bootstrap.create_configs"], cwd=ROOT,
                            env=server_env(data_dir), capture_output=True, text=True)
    if result.returncode == 0 and (data_dir / "flags.json").exists():
        return "bootstrap.create_configs"
    from tests.fakes.flagfile import standard_flags, write_flags

    write_flags(data_dir / "flags.json", standard_flags())
    return "tests/fakes/flagfile.py (bootstrap failed: " + (result.stderr.strip()[-200:] or "?") + ")"


def start_server(target: str, data_dir: Path, *, port: int | None = None,
                 timeout: float = 180.0, **extra_env: str) -> ApiProcess:
    """`uvicorn <target>` in a subprocess, returned once /health answers."""
    try:
        return start_api(target, env=server_env(data_dir, **extra_env), port=port,
                         timeout=timeout)
    except ApiStartError as exc:
        raise SystemExit(str(exc)) from None


# -- measurements -------------------------------------------------------------------------


@dataclass
class SequentialResult:
    latencies_ms: list[float]
    cpu_ms_per_request: float
    failures: int

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def run_interleaved(endpoints: dict[str, tuple[ApiProcess, str]],
                    bodies: list[dict[str, Any]], *, blocks: int = 5,
                    warmup: int = 30) -> dict[str, SequentialResult]:
    """POST every body to every endpoint, one keep-alive client each, in interleaved blocks.

    The bodies are cut into `blocks` blocks; each block goes to each endpoint in turn (the
    order rotating from block to block), so a noisy neighbour on this shared machine slows
    all endpoints alike and the CPU ratios stay comparable. Server CPU is the delta of the
    server's utime+stime over its own blocks (the floor app serves /floor and /echo, one at
    a time).
    """
    names = list(endpoints)
    clients = {name: httpx.Client(base_url=server.url, timeout=60)
               for name, (server, _) in endpoints.items()}
    latencies: dict[str, list[float]] = {name: [] for name in names}
    cpu = dict.fromkeys(names, 0.0)
    failures = dict.fromkeys(names, 0)
    try:
        for name, (_, path) in endpoints.items():
            for body in bodies[:warmup]:
                clients[name].post(path, json=body)
        size = -(-len(bodies) // blocks)
        for number, start in enumerate(range(0, len(bodies), size)):
            shift = number % len(names)
            for name in names[shift:] + names[:shift]:
                server, path = endpoints[name]
                cpu0 = cpu_seconds(server.pid)
                for body in bodies[start:start + size]:
                    began = time.perf_counter()
                    response = clients[name].post(path, json=body)
                    latencies[name].append((time.perf_counter() - began) * 1000)
                    failures[name] += response.status_code != 200
                cpu[name] += cpu_seconds(server.pid) - cpu0
    finally:
        for client in clients.values():
            client.close()
    return {name: SequentialResult(latencies[name], cpu[name] * 1000 / len(bodies),
                                   failures[name]) for name in names}


@dataclass
class WrkResult:
    requests_per_s: float
    requests: int
    non_2xx: int
    errors: int
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float


_WRK_SCRIPT = """
local bodies = {%s}
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[i])
end
"""


def _wrk_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\b", text, re.M)
    if not match:
        return float("nan")
    value, unit = float(match[1]), match[2]
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run_wrk(server: ApiProcess, path: str, bodies: list[dict[str, Any]], seconds: int,
            script_dir: Path, connections: int = 50) -> WrkResult | None:
    """`wrk` at `connections` concurrent connections, POSTing the bodies in rotation."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = script_dir / f"post{path.replace('/', '_')}.lua"
    script.write_text(_WRK_SCRIPT % ",\n".join(f"[==[{json.dumps(b)}]==]" for b in bodies))
    cpu0 = cpu_seconds(server.pid)
    result = subprocess.run(
        [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency",
         "-s", str(script), server.url + path], capture_output=True, text=True, check=True)
    cpu = cpu_seconds(server.pid) - cpu0
    out = result.stdout
    total = int(re.search(r"(\d+) requests in", out)[1])
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)
    return WrkResult(
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]), requests=total,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        errors=sum(int(g) for g in errors.groups()) if errors else 0,
        p50_ms=_wrk_ms(out, "50"), p99_ms=_wrk_ms(out, "99"),
        cpu_ms_per_request=cpu * 1000 / max(total, 1))


# -- in-process profile -------------------------------------------------------------------


def in_process_service(data_dir: Path) -> Any:
    """The app's ChatService built in this process over `data_dir` (set up and warmed up as the
    server's start-up does), with the simulated, offline environment of `server_env`."""
    os.environ.update(server_env(data_dir))
    from api.composition import build_service, warm_up
    from utils.settings import get_settings

    get_settings.cache_clear()
    service = build_service(get_settings())
    warm_up(service)
    return service


def profile_in_process(requests: int, data_dir: Path, top: int = 25) -> None:
    """Run the chat service in this process under cProfile and print the hotspots."""
    import asyncio
    import cProfile
    import io
    import pstats

    from api.schemas import ChatRequest

    service = in_process_service(data_dir)
    bodies = [ChatRequest(**b) for b in chat_bodies(requests)]

    async def run(batch: list[ChatRequest]) -> None:
        for body in batch:
            await service.chat(body)

    asyncio.run(run(bodies[:30]))
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    asyncio.run(run(bodies))
    profiler.disable()
    elapsed = time.perf_counter() - start
    service.store.close()
    print(f"\nin-process profile: {requests} requests, {elapsed / requests * 1000:.2f} ms each "
          "under cProfile (its overhead included; event-loop thread only)")
    stats = pstats.Stats(profiler)
    by_area: dict[str, float] = {}
    for (filename, _, name), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        area = _area(f"{filename}:{name}")
        by_area[area] = by_area.get(area, 0.0) + tottime
    total = sum(by_area.values())
    print("own time by area: " + ", ".join(
        f"{area} {t / total:.0%}" for area, t in sorted(by_area.items(), key=lambda x: -x[1])
        if t / total >= 0.01))
    buffer = io.StringIO()
    pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(top)
    lines = buffer.getvalue().splitlines()
    start_at = next(i for i, line in enumerate(lines) if "ncalls" in line)
    print(f"top {top} functions by own time:")
    print("\n".join(line[:150] for line in lines[start_at:start_at + top + 1]))


_AREAS = (("select.epoll", "idle (waiting for the store commit)"),
          ("tiktoken", "tokenizer (tiktoken)"), ("CoreBPE", "tokenizer (tiktoken)"), ("presidio", "PII (presidio)"),
          ("/utils/pii", "PII (utils.privacy.detector)"), ("langgraph", "langgraph"),
          ("langchain", "langchain"), ("pydantic", "pydantic"), ("ldclient", "LD SDK"),
          ("ldai", "LD SDK"), ("/agents/", "agents/"), ("/utils/", "utils/"),
          ("/api/", "api/"), ("asyncio", "asyncio"), ("selectors", "asyncio"))


def _area(where: str) -> str:
    for marker, area in _AREAS:
        if marker in where:
            return area
    return "other (stdlib, builtins)"


# -- report -------------------------------------------------------------------------------


def _status(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--distinct", type=int, default=500, metavar="N",
                        help="also run N requests whose messages are all worded differently "
                             "(cold per-text memos); 0 to skip")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also profile N requests in-process with cProfile")
    args = parser.parse_args()

    bodies = chat_bodies(args.requests)
    with tempfile.TemporaryDirectory(prefix="bench-chat-") as tmp:
        data_dir = Path(tmp) / "data"
        flags_source = prepare_data_dir(data_dir)
        app = start_server("api.main:app", data_dir)
        floor = start_server("bench.floor_app:app", data_dir)
        try:
            sequential = run_interleaved({"chat": (app, "/chat"), "floor": (floor, "/floor"),
                                          "echo": (floor, "/echo")}, bodies)
            chat, floor_seq, echo_seq = (sequential[k] for k in ("chat", "floor", "echo"))
            rss_after = rss_mb(app.pid)
            distinct = (run_interleaved({"chat": (app, "/chat"), "floor": (floor, "/floor")},
                                        chat_bodies(args.distinct, distinct=True), warmup=0)
                        if args.distinct else None)
            wrk = {name: run_wrk(server, path, bodies[:64], args.wrk_seconds, Path(tmp))
                   for name, server, path in (("chat", app, "/chat"),
                                              ("floor", floor, "/floor"),
                                              ("echo", floor, "/echo"))}
            rss_after_wrk = rss_mb(app.pid)
        finally:
            app.stop()
            floor.stop()

    cpu_ratio = chat.cpu_ms_per_request / floor_seq.cpu_ms_per_request
    pii_share = sum(b["message"] in PII_QUESTIONS for b in bodies) / len(bodies)
    print(f"\n/chat speed: {args.requests} sequential requests per endpoint (interleaved in "
          f"blocks), SIM_TIME_SCALE=0, "
          f"LLM_MODE=simulated, {os.cpu_count()} cores (shared), flags from {flags_source}, "
          f"{pii_share:.0%} of messages carry PII (security route)")
    print(f"{'endpoint':<10}{'median ms':>11}{'p99 ms':>9}{'CPU ms/req':>12}{'× floor':>9}"
          f"{'× echo':>8}{'wrk req/s':>11}{'wrk p50':>9}{'wrk p99':>9}{'failed':>8}")
    for name, seq in (("/chat", chat), ("/floor", floor_seq), ("/echo", echo_seq)):
        w = wrk[name.strip("/")]
        wrk_cols = (f"{w.requests_per_s:>11.1f}{w.p50_ms:>9.1f}{w.p99_ms:>9.1f}"
                    if w else f"{'n/a':>11}{'':>9}{'':>9}")
        failed = seq.failures + (w.non_2xx + w.errors if w else 0)
        print(f"{name:<10}{seq.median_ms:>11.2f}{seq.p99_ms:>9.2f}{seq.cpu_ms_per_request:>12.2f}"
              f"{seq.cpu_ms_per_request / floor_seq.cpu_ms_per_request:>9.2f}"
              f"{seq.cpu_ms_per_request / echo_seq.cpu_ms_per_request:>8.2f}{wrk_cols}"
              f"{failed:>8}")
    if distinct:
        d_chat, d_floor = distinct["chat"], distinct["floor"]
        print(f"{'/chat':<10}{d_chat.median_ms:>11.2f}{d_chat.p99_ms:>9.2f}"
              f"{d_chat.cpu_ms_per_request:>12.2f}"
              f"{d_chat.cpu_ms_per_request / d_floor.cpu_ms_per_request:>9.2f}"
              f"   ← {args.distinct} requests, every message worded differently (PII scans and "
              "token counts not memoised)")
    if wrk["chat"] and wrk["echo"] and wrk["floor"]:
        print(f"throughput at concurrency 50: /chat {wrk['chat'].requests_per_s:.0f} req/s = "
              f"{wrk['chat'].requests_per_s / wrk['floor'].requests_per_s:.2f}× floor, "
              f"{wrk['chat'].requests_per_s / wrk['echo'].requests_per_s:.3f}× echo; "
              f"server CPU under load {wrk['chat'].cpu_ms_per_request:.2f} ms/req "
              f"(floor {wrk['floor'].cpu_ms_per_request:.2f}, "
              f"echo {wrk['echo'].cpu_ms_per_request:.2f})")
    else:
        print("throughput: wrk is not installed (apt-get install -y wrk); skipped")
    print(f"server RSS: {rss_after:.0f} MB after {args.requests} requests, "
          f"{rss_after_wrk:.0f} MB after the wrk runs")
    print("targets: "
          f"median {chat.median_ms:.2f} ms ≤ {TARGET_MEDIAN_MS:.0f} ms "
          f"{_status(chat.median_ms <= TARGET_MEDIAN_MS)}; "
          f"CPU {cpu_ratio:.2f}× floor ≤ {TARGET_CPU_RATIO:.0f}× "
          f"{_status(cpu_ratio <= TARGET_CPU_RATIO)}; "
          f"RSS {rss_after:.0f} MB ≤ {TARGET_RSS_MB:.0f} MB "
          f"{_status(rss_after <= TARGET_RSS_MB)}")
    if args.profile:
        with tempfile.TemporaryDirectory(prefix="bench-chat-profile-") as tmp:
            data_dir = Path(tmp) / "data"
            prepare_data_dir(data_dir)
            profile_in_process(args.profile, data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
