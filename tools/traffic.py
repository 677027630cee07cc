"""Simulated, judged traffic against the chat API: shared by the sequential and concurrent tools.

One run: pick topics from the KB, generate seeded queries (some with PII), spread them over
simulated users of the chosen segment(s), send them to `POST /chat` (at most `concurrency`
at a time, over one pooled `httpx.AsyncClient`), judge each answer and post positive or
negative verdicts to `POST /feedback`. Progress shows as a `rich` bar; every query line and
the summary also go to `LOG_DIR/<mode>_experiment_YYYYmmdd_HHMMSS.log`.

Exit codes of `main`: 0 the run finished (some queries may have failed; see the summary),
1 every query failed or the run could not start, 2 bad arguments, 3 the API was unreachable,
130 interrupted with Ctrl-C (after printing the partial summary).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import secrets
import signal
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from tools.judge import Judge, JudgeMode, make_judge
from tools.queries import Query, generate_queries
from tools.topics import get_topics

Mode = Literal["concurrent", "sequential"]
SEGMENTS = ("eu-free", "eu-paid", "other-free", "other-paid")
SEGMENT_CHOICES = (*SEGMENTS, "mix")
EU_COUNTRIES = ("DE", "FR", "ES", "IT", "NL", "BE", "AT", "PL", "PT", "GR", "CZ", "HU", "SE",
                "DK", "FI")
OTHER_COUNTRIES = ("US", "GB", "CA", "AU", "JP", "BR", "IN")
_REGIONS = {"US": "north-america", "CA": "north-america", "BR": "south-america",
            "GB": "europe", "AU": "oceania", "JP": "asia", "IN": "asia"}
MAX_CONCURRENCY = 200
# After this many connection errors in a row the API is gone: stop instead of failing on.
MAX_CONSECUTIVE_CONNECTION_ERRORS = 5
EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 3, 130


class ApiUnreachableError(RuntimeError):
    """The API did not answer at the given URL."""


@dataclass(frozen=True)
class SimUser:
    """A simulated user: a stable key and the context the API targets on."""

    user_id: str
    segment: str
    context: dict[str, str]


def make_users(n: int, segment: str, rng: random.Random) -> list[SimUser]:
    """`n` users in `segment` (or spread evenly over the four segments for "mix")."""
    if n < 1:
        raise ValueError(f"need at least one user, got {n}")
    if segment not in SEGMENT_CHOICES:
        raise ValueError(f"unknown segment {segment!r}; choose one of {', '.join(SEGMENT_CHOICES)}")
    run_tag = f"{rng.getrandbits(24):06x}"  # distinct keys per run, same keys for the same seed
    users = []
    for i in range(n):
        seg = SEGMENTS[i % len(SEGMENTS)] if segment == "mix" else segment
        area, plan = seg.split("-")
        country = rng.choice(EU_COUNTRIES if area == "eu" else OTHER_COUNTRIES)
        region = "europe" if area == "eu" else _REGIONS.get(country, "other")
        users.append(SimUser(f"sim-{run_tag}-{i:05d}", seg,
                             {"country": country, "plan": plan, "region": region}))
    return users


@dataclass(kw_only=True)
class TrafficOptions:
    """Everything a run needs; the command-line flags map one to one onto these fields."""

    queries: int = 50
    concurrency: int = 10
    delay: float = 0.0
    pii_percentage: float = 15.0
    timeout: float = 2000.0
    api_url: str = "http://localhost:8000"
    seed: int | None = None
    segment: str = "other-paid"
    users: int | None = None
    log_dir: Path = Path("logs")
    feedback: bool = True
    judge: JudgeMode = "auto"
    mode: Mode = "concurrent"
    show_progress: bool = True
    grace_s: float = 10.0  # how long Ctrl-C waits for requests in flight


@dataclass
class QueryResult:
    """What happened to one query."""

    index: int
    user: SimUser
    query: Query
    status: str  # "ok" or a failure kind: timeout, connection_error, http_<code>, error_body
    seconds: float
    request_id: str | None = None
    simulated: bool | None = None
    verdict: str | None = None
    judge_error: str | None = None
    feedback: str | None = None  # recorded, duplicate, failed, or None when nothing was posted
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True for a 200 response with an answer."""
        return self.status == "ok"


@dataclass
class Summary:
    """The outcome of a run; `lines()` renders it for the console and the log file."""

    mode: Mode
    planned: int
    segment: str
    judge: str
    seed: int
    started_at: float = field(default_factory=time.time)
    total_time_s: float = 0.0
    results: list[QueryResult] = field(default_factory=list)
    interrupted: bool = False
    aborted_reason: str | None = None
    log_path: Path | None = None

    @property
    def sent(self) -> int:
        """Queries that got an outcome (success or failure)."""
        return len(self.results)

    @property
    def successes(self) -> int:
        """Queries answered with a 200 and a response."""
        return sum(r.ok for r in self.results)

    @property
    def failures(self) -> dict[str, int]:
        """Failed queries by kind (timeout, connection_error, http_<code>, error_body, ...)."""
        return dict(Counter(r.status for r in self.results if not r.ok))

    @property
    def timeouts(self) -> int:
        """Queries that timed out."""
        return self.failures.get("timeout", 0)

    @property
    def latencies(self) -> list[float]:
        """Seconds per successful query."""
        return [r.seconds for r in self.results if r.ok]

    @property
    def verdicts(self) -> dict[str, int]:
        """Judge verdicts (positive, negative, none) over successful queries."""
        return dict(Counter(r.verdict for r in self.results if r.verdict))

    @property
    def feedback_posted(self) -> dict[str, int]:
        """Feedback posts by outcome (recorded, duplicate, failed)."""
        return dict(Counter(r.feedback for r in self.results if r.feedback))

    @property
    def judge_failures(self) -> int:
        """Answers the judge could not rate (timeouts, provider errors, bad output)."""
        return sum(1 for r in self.results if r.judge_error)

    @property
    def simulated_responses(self) -> int:
        """Successful responses in which a simulated provider served at least one call."""
        return sum(1 for r in self.results if r.ok and r.simulated)

    @property
    def request_ids(self) -> list[str]:
        """The `request_id` of every successful query, in query order."""
        return [r.request_id for r in sorted(self.results, key=lambda r: r.index)
                if r.request_id]

    def latency_stats(self) -> dict[str, float] | None:
        """Mean, median and 95th percentile of successful latencies, or None if none."""
        values = sorted(self.latencies)
        if not values:
            return None
        # Nearest-rank p95: a value that was actually observed.
        p95 = values[min(len(values) - 1, max(0, round(0.95 * len(values)) - 1))]
        return {"mean": statistics.fmean(values), "median": statistics.median(values),
                "p95": p95}

    @property
    def exit_code(self) -> int:
        """The process exit code this outcome maps to."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.aborted_reason:
            return EXIT_UNREACHABLE
        return EXIT_FAILED if self.sent and not self.successes else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain data (for the demo and for tests)."""
        return {
            "mode": self.mode, "planned": self.planned, "sent": self.sent,
            "segment": self.segment, "judge": self.judge, "seed": self.seed,
            "total_time_s": round(self.total_time_s, 3), "successes": self.successes,
            "failures": self.failures, "timeouts": self.timeouts,
            "latency_s": self.latency_stats(), "verdicts": self.verdicts,
            "feedback_posted": self.feedback_posted, "judge_failures": self.judge_failures,
            "simulated_responses": self.simulated_responses, "interrupted": self.interrupted,
            "aborted_reason": self.aborted_reason,
            "log_path": str(self.log_path) if self.log_path else None,
        }

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        rate = self.sent / self.total_time_s if self.total_time_s > 0 else 0.0
        title = "Partial summary (interrupted)" if self.interrupted else "Summary"
        failures = self.failures
        failure_text = ", ".join(f"{k}: {v}" for k, v in sorted(failures.items())) or "none"
        stats = self.latency_stats()
        latency = ("n/a" if stats is None else
                   f"mean {stats['mean']:.2f} s, median {stats['median']:.2f} s, "
                   f"p95 {stats['p95']:.2f} s")
        verdicts = self.verdicts
        posted = self.feedback_posted
        lines = [
            f"{title}: {self.mode} run, segment {self.segment}, judge {self.judge}, "
            f"seed {self.seed}",
            f"  total time          {self.total_time_s:.1f} s ({rate:.1f} queries/s)",
            f"  queries sent        {self.sent} of {self.planned}",
            f"  successes           {self.successes}",
            f"  failures            {sum(failures.values())} ({failure_text})",
            f"  timeouts            {self.timeouts}",
            f"  latency             {latency}",
            f"  simulated answers   {self.simulated_responses} of {self.successes}",
            f"  judge verdicts      positive {verdicts.get('positive', 0)}, "
            f"negative {verdicts.get('negative', 0)}, none {verdicts.get('none', 0)}",
            f"  feedback posted     recorded {posted.get('recorded', 0)}, "
            f"duplicate {posted.get('duplicate', 0)}, failed {posted.get('failed', 0)}",
            f"  judge failures      {self.judge_failures}",
        ]
        if self.aborted_reason:
            lines.append(f"  stopped early       {self.aborted_reason}")
        if self.log_path:
            lines.append(f"  log file            {self.log_path}")
        return lines


class _RateColumn(ProgressColumn):
    """Queries per second, from rich's own speed estimate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} q/s" if speed else "– q/s", style="progress.data.speed")


def _open_log(log_dir: Path, mode: Mode) -> tuple[logging.Logger, Path]:
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    path = log_dir / f"{mode}_experiment_{stamp}.log"
    suffix = 1
    while path.exists():  # two runs in the same second must not share a file
        path = log_dir / f"{mode}_experiment_{stamp}_{suffix}.log"
        suffix += 1
    logger = logging.getLogger(f"tools.traffic.run.{path.stem}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger, path


def _close_log(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)


def _classify(response: httpx.Response) -> tuple[str, dict[str, Any] | None, str | None]:
    """(status, body, error) for a /chat response; a 200 without an answer is a failure."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        detail = body.get("detail") if isinstance(body, dict) else response.text[:200]
        return f"http_{response.status_code}", None, str(detail)[:300]
    if not isinstance(body, dict):
        return "invalid_json", None, response.text[:200]
    if body.get("error") or not isinstance(body.get("response"), str):
        return "error_body", None, str(body.get("error") or "no 'response' in body")[:300]
    return "ok", body, None


class _Runner:
    """One run's state: client, judge, counters, progress and log."""

    def __init__(self, options: TrafficOptions, queries: list[Query], users: list[SimUser],
                 judge: Judge | None, summary: Summary, client: httpx.AsyncClient,
                 logger: logging.Logger, console: Console, progress: Progress) -> None:
        self.options = options
        self.queries = queries
        self.users = users
        self.judge = judge
        self.summary = summary
        self.client = client
        self.logger = logger
        self.console = console
        self.progress = progress
        self.task_id = progress.add_task(f"{options.mode} traffic", total=len(queries))
        self.stop = asyncio.Event()
        self.consecutive_connection_errors = 0
        self.in_flight = 0

    async def send(self, index: int) -> QueryResult:
        """Send query `index`, judge the answer and post feedback."""
        query = self.queries[index]
        user = self.users[index % len(self.users)]
        payload = {"user_id": user.user_id, "message": query.text, "user_context": user.context}
        started = time.perf_counter()
        try:
            response = await self.client.post("/chat", json=payload, timeout=self.options.timeout)
        except httpx.TimeoutException:
            return QueryResult(index, user, query, "timeout", time.perf_counter() - started,
                               error=f"no answer within {self.options.timeout:g} s")
        except httpx.TransportError as exc:
            return QueryResult(index, user, query, "connection_error",
                               time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - started
        status, body, error = _classify(response)
        result = QueryResult(index, user, query, status, seconds, error=error)
        if body is None:
            return result
        result.request_id = body.get("request_id")
        result.simulated = bool(body.get("simulated"))
        if self.judge is not None:
            # The judge sees the question and the answer text, nothing about who served it.
            judged = await self.judge.judge(query.text, body["response"])
            if judged.failed:
                result.judge_error = judged.error or "judge failed"
            else:
                result.verdict = judged.verdict
                if judged.verdict in ("positive", "negative") and result.request_id:
                    result.feedback = await self.post_feedback(result, judged.verdict)
        return result

    async def post_feedback(self, result: QueryResult, kind: str) -> str:
        """POST /feedback; returns recorded, duplicate or failed."""
        payload = {"request_id": result.request_id, "user_id": result.user.user_id,
                   "kind": kind, "source": "simulated"}
        try:
            response = await self.client.post("/feedback", json=payload, timeout=60.0)
        except httpx.HTTPError as exc:
            self.logger.warning("feedback for %s failed: %s", result.request_id, exc)
            return "failed"
        if response.status_code != 200:
            self.logger.warning("feedback for %s failed: HTTP %s %s", result.request_id,
                                response.status_code, response.text[:200])
            return "failed"
        try:
            status = response.json().get("status")
        except (ValueError, AttributeError):
            status = None
        return "duplicate" if status == "duplicate" else "recorded"

    def record(self, result: QueryResult) -> None:
        """Count, print and log one result; stop the run if the API has gone away."""
        self.summary.results.append(result)
        n = len(self.queries)
        text = " ".join(result.query.loggable.split())
        head = text[:60] + ("…" if len(text) > 60 else "")
        verdict = result.verdict or ("judge-failed" if result.judge_error else "-")
        line = (f"[{len(self.summary.results):>{len(str(n))}}/{n}] "
                f"{result.status.upper():<16} {result.seconds:7.2f}s {result.user.segment:<10} "
                f"{verdict:<12} {head}")
        style = "green" if result.ok else "red"
        self.progress.console.print(Text(line, style=style), highlight=False, no_wrap=True,
                                    overflow="ellipsis")
        self.logger.info("%s%s", line, f" | error: {result.error}" if result.error else "")
        if result.judge_error:
            self.logger.warning("judge failed for %s: %s", result.request_id, result.judge_error)
        self.progress.advance(self.task_id)
        if result.status == "connection_error":
            self.consecutive_connection_errors += 1
            if self.consecutive_connection_errors >= MAX_CONSECUTIVE_CONNECTION_ERRORS:
                self.abort(f"the API at {self.options.api_url} stopped answering "
                           f"({self.consecutive_connection_errors} connection errors in a row)")
        else:
            self.consecutive_connection_errors = 0

    def abort(self, reason: str) -> None:
        """Stop sending new queries, once, for `reason`."""
        if not self.stop.is_set():
            self.summary.aborted_reason = reason
            self.console.print(f"[red]{reason}; stopping[/red]")
            self.logger.error("%s; stopping", reason)
            self.stop.set()

    async def _slot(self, index: int, semaphore: asyncio.Semaphore) -> None:
        async with semaphore:
            if self.stop.is_set():
                return
            self.in_flight += 1
            try:
                result = await self.send(index)
            finally:
                self.in_flight -= 1
            self.record(result)
            if self.options.delay > 0 and index < len(self.queries) - 1:
                # The pause between requests ends early on Ctrl-C.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.options.delay)

    async def run(self) -> None:
        """Send every query, at most `concurrency` at a time, until done or stopped."""
        limit = 1 if self.options.mode == "sequential" else self.options.concurrency
        semaphore = asyncio.Semaphore(limit)  # FIFO: queries start in order
        tasks = [asyncio.create_task(self._slot(i, semaphore)) for i in range(len(self.queries))]
        everything = asyncio.gather(*tasks, return_exceptions=True)
        stopped = asyncio.create_task(self.stop.wait())
        try:
            await asyncio.wait({everything, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not everything.done():
                self.console.print(f"[yellow]waiting up to {self.options.grace_s:g} s for "
                                   f"{self.in_flight} request(s) in flight[/yellow]")
                try:
                    await asyncio.wait_for(asyncio.shield(everything), self.options.grace_s)
                except TimeoutError:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            stopped.cancel()
        if everything.done() and not everything.cancelled():
            for outcome in everything.result():
                if isinstance(outcome, Exception):  # a bug, not an API failure: make it visible
                    self.logger.error("query task failed: %r", outcome)
                    self.console.print(f"[red]query task failed: {outcome!r}[/red]")


async def check_api(client: httpx.AsyncClient, api_url: str) -> str | None:
    """GET /health; raise ApiUnreachableError if nothing answers, return a warning if unwell."""
    try:
        response = await client.get("/health", timeout=15.0)
    except httpx.HTTPError as exc:
        raise ApiUnreachableError(
            f"cannot reach the API at {api_url} ({type(exc).__name__}: {exc}). Start it with "
            "`uvicorn api.main:app --port 8000` or pass --api-url") from exc
    if response.status_code != 200:
        return f"GET {api_url}/health answered HTTP {response.status_code}; sending anyway"
    return None


async def arun_traffic(options: TrafficOptions, *, judge: Judge | None = None,
                       transport: httpx.AsyncBaseTransport | None = None,
                       console: Console | None = None) -> Summary:
    """Run traffic as `options` says and return the summary (async form of `run_traffic`).

    Raises ApiUnreachableError when /health does not answer, ValueError for bad options.
    """
    console = console or Console(stderr=False)
    seed = options.seed if options.seed is not None else secrets.randbits(31)
    rng = random.Random(seed)
    summary = Summary(options.mode, options.queries, options.segment, "-", seed)
    if options.queries == 0:
        return summary
    limits = httpx.Limits(max_connections=options.concurrency + 5,
                          max_keepalive_connections=options.concurrency + 5)
    client = httpx.AsyncClient(base_url=options.api_url.rstrip("/"), limits=limits,
                               transport=transport, timeout=options.timeout)
    logger, log_path = _open_log(options.log_dir, options.mode)
    summary.log_path = log_path
    loop = asyncio.get_running_loop()
    runner: _Runner | None = None

    def on_sigint() -> None:
        if runner is None or runner.stop.is_set():
            # Second Ctrl-C (or before the run started): stop waiting.
            for task in asyncio.all_tasks(loop):
                if task is not asyncio.current_task(loop):
                    task.cancel()
            return
        summary.interrupted = True
        runner.console.print("[yellow]Ctrl-C: no new requests (press again to stop at "
                             "once)[/yellow]")
        runner.logger.warning("interrupted: no new requests")
        runner.stop.set()

    sigint_installed = False
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGINT, on_sigint)  # main thread on Unix only
        sigint_installed = True
    started = time.perf_counter()  # reset below: the rate counts the sending phase only
    try:
        # Check the API first: a missing server should fail in a second, not after the
        # topics and the judge have been prepared.
        warning = await check_api(client, options.api_url)
        if warning:
            console.print(f"[yellow]{warning}[/yellow]")
            logger.warning(warning)
        if options.feedback and judge is None:
            judge = make_judge(options.judge, seed=seed)
        summary.judge = judge.name if judge is not None else "off (--no-feedback)"
        topics = get_topics()
        queries = generate_queries(options.queries, topics, options.pii_percentage,
                                   seed=rng.getrandbits(32))
        users = make_users(options.users or options.queries, options.segment, rng)
        logger.info("run: mode=%s queries=%d concurrency=%d delay=%gs pii=%g%% segment=%s "
                    "users=%d judge=%s seed=%d api=%s timeout=%gs feedback=%s",
                    options.mode, options.queries, options.concurrency, options.delay,
                    options.pii_percentage, options.segment, len(users), summary.judge, seed,
                    options.api_url, options.timeout, options.feedback)
        columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                   MofNCompleteColumn(), _RateColumn(), TimeElapsedColumn(),
                   TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=console, disable=not options.show_progress) as progress:
            runner = _Runner(options, queries, users, judge, summary, client, logger, console,
                             progress)
            started = time.perf_counter()
            await runner.run()
    except (ApiUnreachableError, ValueError, FileNotFoundError) as exc:
        logger.error("%s", exc)
        raise
    except asyncio.CancelledError:
        summary.interrupted = True
    finally:
        summary.total_time_s = time.perf_counter() - started
        if sigint_installed:
            loop.remove_signal_handler(signal.SIGINT)
        await client.aclose()
        for line in summary.lines() if summary.sent or summary.interrupted else ():
            logger.info("%s", line)
        _close_log(logger)
    return summary


def run_traffic(options: TrafficOptions, **kwargs: Any) -> Summary:
    """Run traffic synchronously (for scripts such as the demo); see `arun_traffic`."""
    return asyncio.run(arun_traffic(options, **kwargs))


# --- command line ---------------------------------------------------------------------------

def _bounded(kind: type, low: float | None, high: float | None, what: str) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{what} must be a{'n integer' if kind is int else ' number'}, got {text!r}"
            ) from None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = (f"between {low:g} and {high:g}" if low is not None and high is not None
                      else f"at least {low:g}" if low is not None else f"at most {high:g}")
            raise argparse.ArgumentTypeError(f"{what} must be {bounds}, got {text}")
        return value
    return parse


def build_parser(mode: Mode) -> argparse.ArgumentParser:
    """The command-line parser for the concurrent or the sequential generator."""
    concurrent = mode == "concurrent"
    parser = argparse.ArgumentParser(
        prog=f"python -m tools.{'concurrent_traffic_generator' if concurrent else 'traffic_generator'}",
        description=("Send simulated, judged user traffic to the chat API "
                     f"({'several queries at a time' if concurrent else 'one query at a time'}"
                     "), post the judge's feedback, and log a summary."),
        epilog="Exit codes: 0 done, 1 every query failed, 2 bad arguments, 3 API unreachable, "
               "130 interrupted.")
    parser.add_argument("--queries", type=_bounded(int, 0, None, "--queries"), default=50,
                        help="how many queries to send (default 50; 0 does nothing)")
    if concurrent:
        parser.add_argument("--concurrency",
                            type=_bounded(int, 1, MAX_CONCURRENCY, "--concurrency"), default=10,
                            help=f"queries in flight at once, 1..{MAX_CONCURRENCY} (default 10)")
    parser.add_argument("--delay", type=_bounded(float, 0, None, "--delay"),
                        default=0.0 if concurrent else 2.0,
                        help="seconds to pause after each query "
                             f"(default {'0' if concurrent else '2.0'})")
    parser.add_argument("--pii-percentage", type=_bounded(float, 0, 100, "--pii-percentage"),
                        default=15.0,
                        help="share of queries with personal details woven in, 0..100 "
                             "(default 15)")
    parser.add_argument("--timeout", type=_bounded(float, 0.001, None, "--timeout"),
                        default=2000.0,
                        help="seconds to wait for one /chat answer (default 2000: real "
                             "multi-agent runs can be slow)")
    parser.add_argument("--api-url", default="http://localhost:8000",
                        help="base URL of the API (default http://localhost:8000)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed for queries, users and the simulated judge "
                             "(default: random, printed in the summary)")
    parser.add_argument("--segment", choices=SEGMENT_CHOICES, default="other-paid",
                        help="user segment to simulate, or 'mix' for all four evenly "
                             "(default other-paid)")
    parser.add_argument("--users", type=_bounded(int, 1, None, "--users"), default=None,
                        help="number of distinct users; queries are shared round-robin "
                             "(default: one user per query)")
    parser.add_argument("--log-dir", type=Path, default=Path("logs"),
                        help=f"folder for {mode}_experiment_YYYYmmdd_HHMMSS.log (default logs/)")
    parser.add_argument("--no-feedback", dest="feedback", action="store_false",
                        help="do not judge answers or post feedback")
    parser.add_argument("--judge", choices=("auto", "llm", "simulated"), default="auto",
                        help="who rates answers: llm (needs OPENAI_API_KEY or "
                             "ANTHROPIC_API_KEY), simulated (offline scorer), or auto "
                             "(llm when a key is set; default)")
    parser.add_argument("--no-progress", dest="show_progress", action="store_false",
                        help="hide the progress bar (query lines and summary still print)")
    return parser


def options_from_args(args: argparse.Namespace, mode: Mode) -> TrafficOptions:
    """TrafficOptions from parsed command-line arguments."""
    return TrafficOptions(
        queries=args.queries, concurrency=getattr(args, "concurrency", 1), delay=args.delay,
        pii_percentage=args.pii_percentage, timeout=args.timeout, api_url=args.api_url,
        seed=args.seed, segment=args.segment, users=args.users, log_dir=args.log_dir,
        feedback=args.feedback, judge=args.judge, mode=mode, show_progress=args.show_progress)


def main(argv: list[str] | None, mode: Mode) -> int:
    """Parse `argv`, run, print the summary; returns the exit code (see the module docstring)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = options_from_args(build_parser(mode).parse_args(argv), mode)
    console = Console()
    if options.queries == 0:
        console.print("--queries is 0: nothing to do.")
        return EXIT_OK
    try:
        summary = run_traffic(options, console=console)
    except ApiUnreachableError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        console.print("[yellow]interrupted before any request was sent[/yellow]")
        return EXIT_INTERRUPTED
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return EXIT_FAILED
    for line in summary.lines():
        console.print(line, highlight=False)
    return summary.exit_code
