"""What a traffic run reports: query results, the summary, the progress rate, the log file."""

from __future__ import annotations

import logging
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.progress import ProgressColumn, Task
from rich.text import Text

from tools.traffic.args import Mode
from tools.traffic.queries import Query
from tools.traffic.users import SimUser

EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 3, 130


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

    def progress_line(self, planned: int) -> str:
        """A one-line progress report for piped output: done, failures, rate, median."""
        done, elapsed = self.sent, max(time.time() - self.started_at, 1e-9)
        failed = done - self.successes
        stats = self.latency_stats()
        median = f", median {stats['median']:.2f} s" if stats else ""
        feedback = self.feedback_posted.get("recorded", 0)
        return (f"progress {done:,}/{planned:,} ({done / max(planned, 1):.0%}): "
                f"{self.successes:,} ok, {failed:,} failed, {feedback:,} feedback, "
                f"{done / elapsed:.1f} queries/s{median}, {elapsed:.0f} s elapsed")

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


class RateColumn(ProgressColumn):
    """Queries per second, from rich's own speed estimate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} q/s" if speed else "– q/s", style="progress.data.speed")


def open_run_log(log_dir: Path, mode: Mode) -> tuple[logging.Logger, Path]:
    """A logger writing to a new `<mode>_experiment_<stamp>.log` under `log_dir`, and its path."""
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


def close_run_log(logger: logging.Logger) -> None:
    """Close and detach the run log's file handlers."""
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)
