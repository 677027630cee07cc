"""Options of a traffic run and the command line that fills them (`build_parser`)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from tools.traffic.judge import JudgeMode
from tools.traffic.users import SEGMENT_CHOICES

Mode = Literal["concurrent", "sequential"]
LineMode = Literal["auto", "each", "periodic"]
MAX_CONCURRENCY = 200


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
    lines: LineMode = "auto"
    grace_s: float = 10.0  # how long Ctrl-C waits for requests in flight


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
    parser.add_argument("--lines", choices=get_args(LineMode), default="auto",
                        help="console lines: one per query (each), a progress line every "
                             "10%% of the run or 10 s plus every failure (periodic), or auto "
                             "(each on a terminal, periodic when piped; default). The log "
                             "file always has one line per query")
    return parser


def options_from_args(args: argparse.Namespace, mode: Mode) -> TrafficOptions:
    """TrafficOptions from parsed command-line arguments."""
    return TrafficOptions(
        queries=args.queries, concurrency=getattr(args, "concurrency", 1), delay=args.delay,
        pii_percentage=args.pii_percentage, timeout=args.timeout, api_url=args.api_url,
        seed=args.seed, segment=args.segment, users=args.users, log_dir=args.log_dir,
        feedback=args.feedback, judge=args.judge, mode=mode, show_progress=args.show_progress,
        lines=args.lines)
