"""`make demo`: the whole experiment loop on the embedded defaults, offline, in a few minutes.

Steps: reset the demo's data → bootstrap the AI configs and both experiments into the local
flag file → start the API on a free port → drive judged traffic from other-paid users →
print both verdicts → write the HTML and JSON reports → stop the server.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.panel import Panel

from tools.api_process import ApiProcess, ApiStartError, free_port, start_api
from utils.experiments.definitions import DEFAULT_PATH as EXPERIMENTS_PATH
from utils.experiments.definitions import (
    ExperimentConfigError,
    load_experiments,
    parse_experiments,
)
from utils.strict_yaml import read_yaml

ROOT = Path(__file__).resolve().parents[1]
console = Console()
log = logging.getLogger("demo")

# Why these numbers: Security Level only sees users whose requests reach the security agent,
# i.e. that carry PII. With 2 queries per user and a 40% PII share, 1 − 0.6² = 64% of users
# reach security, so 1,000 users give ~640 exposed users (~320 per arm): above the 100-per-arm
# minimum with room to spare. Premium Model Value sees every other-paid user (~500 per arm).
DEFAULT_QUERIES = 2000
DEFAULT_USERS = 1000
DEFAULT_PII_PERCENTAGE = 40
CI_QUERIES, CI_USERS = 400, 200


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.demo",
        description="Run the whole loop offline: bootstrap configs and experiments, serve the "
        "API, drive judged traffic, and print the experiment verdicts. Uses simulated model "
        "providers and the local flag file even if keys are set, so it never costs money.",
    )
    parser.add_argument("--queries", type=int, default=DEFAULT_QUERIES,
                        help=f"chat requests to send (default {DEFAULT_QUERIES})")
    parser.add_argument("--users", type=int, default=DEFAULT_USERS,
                        help=f"distinct other-paid users sending them (default {DEFAULT_USERS})")
    parser.add_argument("--pii-percentage", type=float, default=DEFAULT_PII_PERCENTAGE,
                        help=f"share of queries carrying PII (default {DEFAULT_PII_PERCENTAGE})")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="requests in flight at once (default 16)")
    parser.add_argument("--seed", type=int, default=7, help="traffic seed (default 7)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data",
                        help="where flags, events and reports go (default ./data)")
    parser.add_argument("--keep-server", action="store_true",
                        help="leave the API running at the end (Ctrl-C to stop)")
    parser.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    parser.add_argument("--experiments", default="",
                        help="comma-separated experiment keys to start and report (default: "
                        "every experiment in bootstrap/experiments.yaml); the others are not "
                        "started, so their audience is served its segment's variation")
    parser.add_argument("--ci", action="store_true",
                        help=f"a reduced run for CI ({CI_QUERIES} queries, {CI_USERS} users)")
    args = parser.parse_args(argv)
    if args.ci:
        args.queries, args.users = CI_QUERIES, CI_USERS
    if args.queries < 1 or args.users < 1:
        parser.error("--queries and --users must be at least 1")
    try:
        args.experiment_keys = chosen_experiments(args.experiments)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def chosen_experiments(keys: str, path: Path = EXPERIMENTS_PATH) -> list[str]:
    """The experiment keys the demo drives, in file order; every defined one when `keys` is empty."""
    defined = [e.key for e in load_experiments(path)]
    wanted = [k.strip() for k in keys.split(",") if k.strip()]
    unknown = [k for k in wanted if k not in defined]
    if unknown:
        raise ValueError(f"--experiments: unknown experiment {', '.join(map(repr, unknown))}; "
                         f"defined in {path.name}: {', '.join(defined)}")
    return [k for k in defined if k in wanted] if wanted else defined


def write_experiments_subset(keys: list[str], target: Path,
                             source: Path = EXPERIMENTS_PATH) -> Path:
    """The definitions file holding only `keys`, for the bootstrap and the report to read."""
    data = read_yaml(source, ExperimentConfigError, "experiments file")
    data["experiments"] = [e for e in data["experiments"] if e["key"] in keys]
    parse_experiments(data, target)  # still a valid definitions file
    target.write_text(f"# Written by tools/demo.py from {source.name}: only {', '.join(keys)}.\n"
                      + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return target


def _env(data_dir: Path) -> dict[str, str]:
    """The embedded defaults: local flag file, simulated providers, nothing slept."""
    env = dict(os.environ)
    for key in ("LD_SDK_KEY", "LD_API_KEY", "LOCAL_FLAGS_PATH", "EVENTS_DB"):
        env.pop(key, None)
    env.update({"DATA_DIR": str(data_dir), "LLM_MODE": "simulated", "SIM_TIME_SCALE": "0",
                "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "", "LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1"})
    return env


def _run(step: str, command: list[str], env: dict[str, str]) -> None:
    console.rule(f"[bold]{step}")
    console.print(f"[dim]$ {' '.join(command)}")
    result = subprocess.run(command, cwd=ROOT, env=env)
    if result.returncode != 0:
        raise SystemExit(f"demo: step '{step}' failed (exit {result.returncode})")


def reset_data(data_dir: Path) -> None:
    """Delete the demo's state (flags, store, reports, bootstrap state); keep index caches."""
    removed = []
    for name in ("flags.json", "flags.state.json", "events.db", "events.db-wal",
                 "events.db-shm", "experiments.yaml", "reports", "logs"):
        path = data_dir / name
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(name)
        elif path.exists():
            path.unlink()
            removed.append(name)
    data_dir.mkdir(parents=True, exist_ok=True)
    what = ", ".join(removed) if removed else "nothing to remove"
    console.print(f"Reset demo data in {data_dir} ({what}); search indexes are kept.")


def start_server(port: int, env: dict[str, str]) -> ApiProcess:
    console.rule("[bold]Starting the API")
    with console.status(f"waiting for http://127.0.0.1:{port}/health ..."):
        try:
            server = start_api(env=env, port=port)
        except ApiStartError as exc:
            raise SystemExit(f"demo: {exc}") from None
    console.print(f"API ready at {server.url} (web UI at {server.url}/)")
    return server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    data_dir = args.data_dir.resolve()
    env = _env(data_dir)
    python = sys.executable
    console.print(Panel.fit(
        "Offline demo: simulated providers, local flag file, local event store.\n"
        f"{args.queries} queries from {args.users} other-paid users, "
        f"{args.pii_percentage:g}% carrying PII, concurrency {args.concurrency}.",
        title="multi-agent experiments"))

    reset_data(data_dir)
    experiments_file = write_experiments_subset(args.experiment_keys,
                                                data_dir / "experiments.yaml")
    console.print(f"Experiments driven: {', '.join(args.experiment_keys)}")
    # The server's Experiments tab (and every report) reads the subset the demo drives.
    env["EXPERIMENTS_FILE"] = str(experiments_file)
    _run("Bootstrap: AI configs, segments, targeting",
         [python, "-m", "bootstrap.create_configs", "--backend", "local"], env)
    _run("Bootstrap: experiment variations and rollouts",
         [python, "-m", "bootstrap.experiment_variations", "--backend", "local",
          "--experiments", str(experiments_file)], env)

    port = args.port or free_port()
    server = start_server(port, env)
    try:
        _run("Traffic: judged other-paid users", [
            python, "-m", "tools.concurrent_traffic_generator",
            "--api-url", f"http://127.0.0.1:{port}", "--queries", str(args.queries),
            "--users", str(args.users), "--pii-percentage", f"{args.pii_percentage:g}",
            "--concurrency", str(args.concurrency), "--segment", "other-paid",
            "--seed", str(args.seed), "--judge", "simulated",
            "--log-dir", str(data_dir / "logs")], env)
        reports = data_dir / "reports"
        reports.mkdir(parents=True, exist_ok=True)
        report = [python, "-m", "tools.experiment_report",
                  "--experiments-file", str(experiments_file)]
        _run("Verdicts", report, env)
        json_path = reports / "experiments.json"
        with json_path.open("w") as out:
            subprocess.run([*report, "--json"], cwd=ROOT, env=env, stdout=out, check=True)
        html_path = reports / "experiments.html"
        subprocess.run([*report, "--html", str(html_path)],
                       cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        console.rule("[bold]Done")
        console.print(f"HTML report: {html_path}\nJSON verdicts: {json_path}\n"
                      f"Elapsed: {time.monotonic() - started:.0f} s")
        if args.keep_server:
            console.print(f"API still running at http://127.0.0.1:{port}/ — Ctrl-C to stop.")
            with contextlib.suppress(KeyboardInterrupt):
                server.process.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
