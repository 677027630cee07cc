"""Simulated, judged traffic against the chat API: shared by the sequential and concurrent tools.

One run: pick topics from the KB, generate seeded queries (some with PII), spread them over
simulated users of the chosen segment(s), send them to `POST /chat` (at most `concurrency`
at a time, over one pooled `httpx.AsyncClient`), judge each answer and post positive or
negative verdicts to `POST /feedback`. Progress shows as a `rich` bar; every query line and
the summary also go to `LOG_DIR/<mode>_experiment_YYYYmmdd_HHMMSS.log`.

Exit codes of `main`: 0 the run finished (some queries may have failed; see the summary),
1 every query failed or the run could not start, 2 bad arguments, 3 the API was unreachable,
130 interrupted with Ctrl-C (after printing the partial summary).

The pieces live in sibling modules: `tools.traffic.users` (simulated users),
`tools.traffic.args` (options and command line), `tools.traffic.output` (results, summary,
progress and log file) and `tools.traffic.runner` (the sending loop); the names other modules
use are re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import signal
import time
from typing import Any

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tools.traffic.args import (
    MAX_CONCURRENCY,
    Mode,
    TrafficOptions,
    build_parser,
    options_from_args,
)
from tools.traffic.judge import Judge, make_judge
from tools.traffic.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    QueryResult,
    RateColumn,
    Summary,
    close_run_log,
    open_run_log,
)
from tools.traffic.queries import generate_queries
from tools.traffic.runner import MAX_CONSECUTIVE_CONNECTION_ERRORS, Runner
from tools.traffic.topics import get_topics
from tools.traffic.users import (
    EU_COUNTRIES,
    OTHER_COUNTRIES,
    SEGMENT_CHOICES,
    SEGMENTS,
    SimUser,
    make_users,
)

__all__ = [
    "EU_COUNTRIES", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_UNREACHABLE",
    "MAX_CONCURRENCY", "MAX_CONSECUTIVE_CONNECTION_ERRORS", "OTHER_COUNTRIES", "SEGMENTS",
    "SEGMENT_CHOICES", "ApiUnreachableError", "Mode", "QueryResult", "SimUser", "Summary",
    "TrafficOptions", "arun_traffic", "build_parser", "check_api", "main", "make_users",
    "options_from_args", "run_traffic",
]


class ApiUnreachableError(RuntimeError):
    """The API did not answer at the given URL."""


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
    # Idle connections are dropped after 2 s, before the server's keep-alive ends (uvicorn's
    # default is 5 s, httpx's too): at equal timeouts the server now and then closes one just
    # as a query is sent on it, and that query fails.
    limits = httpx.Limits(max_connections=options.concurrency + 5,
                          max_keepalive_connections=options.concurrency + 5, keepalive_expiry=2.0)
    client = httpx.AsyncClient(base_url=options.api_url.rstrip("/"), limits=limits,
                               transport=transport, timeout=options.timeout)
    logger, log_path = open_run_log(options.log_dir, options.mode)
    summary.log_path = log_path
    loop = asyncio.get_running_loop()
    runner: Runner | None = None

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
                   MofNCompleteColumn(), RateColumn(), TimeElapsedColumn(),
                   TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=console, disable=not options.show_progress) as progress:
            runner = Runner(options, queries, users, judge, summary, client, logger, console,
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
        close_run_log(logger)
    return summary


def run_traffic(options: TrafficOptions, **kwargs: Any) -> Summary:
    """Run traffic synchronously (for scripts such as the demo); see `arun_traffic`."""
    return asyncio.run(arun_traffic(options, **kwargs))


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
