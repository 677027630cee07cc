"""One traffic run's sending loop: `/chat`, the judge, `/feedback`, per-query lines, Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.text import Text

from tools.traffic.args import TrafficOptions
from tools.traffic.judge import Judge
from tools.traffic.output import QueryResult, Summary
from tools.traffic.queries import Query
from tools.traffic.users import SimUser

# After this many connection errors in a row the API is gone: stop instead of failing on.
MAX_CONSECUTIVE_CONNECTION_ERRORS = 5
# Piped output: a progress line per tenth of the run, or after this many seconds.
PROGRESS_EVERY_S = 10.0


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


class Runner:
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
        lines = options.lines
        self.each_line = lines == "each" or (lines == "auto" and console.is_terminal)
        self.last_progress = (0, time.perf_counter())  # (results, when) at the last line

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
        if self.each_line or not result.ok:
            style = "green" if result.ok else "red"
            self.progress.console.print(Text(line, style=style), highlight=False,
                                        no_wrap=True, overflow="ellipsis")
        if not self.each_line:
            self.maybe_print_progress()
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

    def maybe_print_progress(self) -> None:
        """One line every tenth of the run (or PROGRESS_EVERY_S), and at the end."""
        done, n = len(self.summary.results), len(self.queries)
        last_done, last_at = self.last_progress
        now = time.perf_counter()
        step = max(1, n // 10)
        if not (done == n or done // step > last_done // step
                or now - last_at >= PROGRESS_EVERY_S):
            return
        self.last_progress = (done, now)
        self.console.print(self.summary.progress_line(n), highlight=False, soft_wrap=True)

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
