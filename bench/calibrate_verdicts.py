"""Calibration of the verdict rules: error rates of each experiment's decision over many runs.

    python bench/calibrate_verdicts.py [--runs 500] [--jobs 2] [--seed 0] [--store-runs 20]

For each rule in bootstrap/experiments.yaml (or `--experiment KEY`) it simulates experiments with planted effects and
runs the engine's own `analyze_experiment` (what `build_report` calls per experiment) on them,
then prints the share of runs ending SHIP or KEEP against the targets of issue 14:

    false SHIP under A/A                         <= 10%
    SHIP of a true -20% feedback drop            <=  5%   (other criteria passing)
    SHIP of a premium win (+30% at 1.5x cost)    >= 70%   (1,000 users per arm)
    KEEP of a decisive failure (-25% feedback)   >= 80%   (1,500 users per arm)

and, watched while traffic runs (issue 15: the report refreshed at every look, each look the
engine's verdict on the users so far, with the experiment's `monitoring` plan):

    false SHIP under A/A at any of 20 looks, 100 -> 1,000 users per arm     <= 10%
    premium win (+30% at 1.5x cost) SHIP by 1,000 per arm, a look every 100  >= 70%
        (the first SHIP or KEEP ends the experiment)

Per-user values are drawn from the same model as `tests/fakes/event_store.make_store` (two
requests per user; gamma latencies and costs, Poisson tokens and PII, one Bernoulli
thumbs-up per user), vectorised so that thousands of experiments take minutes. Then
`--store-runs` experiments go the whole way, through a real SQLite store written by
`make_store` and `build_report`, to show that path agrees and to time a report.
Exit status 1 when a figure misses its target.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.experiments.definitions import (  # noqa: E402
    Experiment,
    find_experiment,
    load_experiments,
)
from utils.experiments.monitoring import first_arrivals  # noqa: E402
from utils.experiments.user_metrics import ArmData  # noqa: E402
from utils.experiments.verdicts import analyze_experiment  # noqa: E402

BASE_FEEDBACK = 0.30  # P(thumbs-up) per user in control
BASE_SUPPORT_COST = 0.010  # USD per support request in control
SECURITY_COST = 0.001  # USD per security request
BASE_PII = 0.5  # exposed entities per request in control
BASE_LATENCY_MS = 2000.0  # security agent duration per request
REQUESTS = 2  # per user
# Experiments whose treatment acts on the security step (its model, or whether it runs: the
# Agent Graph topology); their planted PII and latency factors apply to the security path.
SECURITY_PATH_CONFIGS = {"security-agent", "support-assistant-graph"}


@dataclass(frozen=True)
class Scenario:
    """Planted truth: treatment / control factors of each quantity, at a sample size."""

    label: str
    users_per_arm: int
    feedback: float = 1.0
    cost: float = 1.0  # factor on each user's total cost
    pii: float = 1.0
    latency: float = 1.0
    target: tuple[str, str, float] | None = None  # (outcome, "<=" or ">=", share)


def simulate(experiment: Experiment, s: Scenario, rng: np.random.Generator) -> ArmData:
    """Per-user values of one experiment, aggregated as `user_metrics` would from a store.

    Users arrive in order (first_ts increasing), so a sequential look is a prefix of them.
    """
    n = 2 * s.users_per_arm
    arm = np.repeat(np.array([0, 1], dtype=np.int8), s.users_per_arm)
    rng.shuffle(arm)
    treat = arm == 1

    def factor(f: float) -> np.ndarray:
        return np.where(treat, f, 1.0)

    security = experiment.config in SECURITY_PATH_CONFIGS
    sec_latency = BASE_LATENCY_MS * (factor(s.latency) if security else 1.0)
    # Sums over REQUESTS: gamma(4, θ) per request adds to gamma(4·REQUESTS, θ).
    values = {
        "positive_feedback_rate": (rng.random(n) < BASE_FEEDBACK * factor(s.feedback)) * 1.0,
        "negative_feedback_rate": (rng.random(n) < 0.10) * 1.0,
        "ai_cost_per_request": factor(s.cost) * (
            REQUESTS * SECURITY_COST + rng.gamma(4 * REQUESTS, BASE_SUPPORT_COST / 4, n)),
        "p95_total_user_latency": rng.gamma(4 * REQUESTS, sec_latency / 4)
        + rng.gamma(4 * REQUESTS, 500.0 / 4, n),
        "average_total_user_tokens": rng.poisson(800 * REQUESTS, n) * 1.0,
        "pii_exposed_entities": rng.poisson(BASE_PII * REQUESTS
                                            * (factor(s.pii) if security else 1.0)) * 1.0,
    }
    values = {k: v for k, v in values.items() if k in experiment.metrics}
    return ArmData([f"u{i}" for i in range(n)], arm, np.arange(n, dtype=float), values)


def scenarios(key: str) -> list[Scenario]:
    """What each rule is measured on; the security rule's other criteria pass when planted."""
    if key in ("security-level", "security-routing"):  # the same shape of rule
        win = {"pii": 0.5, "cost": 0.8}  # PII halved, cost -20%
        return [
            Scenario("A/A, 300 per arm", 300, target=("SHIP", "<=", 0.10)),
            Scenario("A/A, 1,000 per arm", 1000, target=("SHIP", "<=", 0.10)),
            Scenario("equal feedback (true win), 300 per arm", 300, **win),
            Scenario("equal feedback (true win), 2,000 per arm", 2000, **win),
            Scenario("-5% feedback (at the margin), 1,000 per arm", 1000, feedback=0.95,
                     **win),
            Scenario("-10% feedback, 300 per arm", 300, feedback=0.9, **win),
            Scenario("-10% feedback, 1,000 per arm", 1000, feedback=0.9, **win),
            Scenario("-20% feedback, 100 per arm", 100, feedback=0.8, **win,
                     target=("SHIP", "<=", 0.05)),
            Scenario("-20% feedback, 300 per arm", 300, feedback=0.8, **win,
                     target=("SHIP", "<=", 0.05)),
            Scenario("-20% feedback, 1,000 per arm", 1000, feedback=0.8, **win,
                     target=("SHIP", "<=", 0.05)),
            Scenario("-25% feedback (decisive failure), 1,500 per arm", 1500, feedback=0.75,
                     **win, target=("KEEP", ">=", 0.80)),
        ]
    cheaper = {"cost": 0.8}  # so only feedback decides
    return [
        Scenario("A/A, 300 per arm", 300, target=("SHIP", "<=", 0.10)),
        Scenario("A/A, 1,000 per arm", 1000, target=("SHIP", "<=", 0.10)),
        Scenario("-10% feedback, cost -20%, 300 per arm", 300, feedback=0.9, **cheaper),
        Scenario("-20% feedback, cost -20%, 300 per arm", 300, feedback=0.8, **cheaper,
                 target=("SHIP", "<=", 0.05)),
        Scenario("premium win: +30% feedback at 1.5x cost, 1,000 per arm", 1000,
                 feedback=1.3, cost=1.5, target=("SHIP", ">=", 0.70)),
        Scenario("+30% feedback at 1.5x cost, 300 per arm", 300, feedback=1.3, cost=1.5),
        Scenario("+10% feedback at 1.5x cost (ratio 0.2), 1,000 per arm", 1000,
                 feedback=1.1, cost=1.5),
        Scenario("-25% feedback at 1.5x cost (decisive failure), 1,500 per arm", 1500,
                 feedback=0.75, cost=1.5, target=("KEEP", ">=", 0.80)),
    ]


@dataclass(frozen=True)
class Watched:
    """A scenario looked at repeatedly: `looks` per-arm sizes up to its users_per_arm."""

    scenario: Scenario
    looks: tuple[int, ...]
    stop_on_keep: bool  # a KEEP ends the experiment (else only SHIP counts, the worst case)
    target: tuple[str, str, float]


def watched(key: str) -> list[Watched]:
    aa = Scenario("A/A, 20 looks, 100 -> 1,000 per arm", 1000)
    looks20 = tuple(int(round(x)) for x in np.linspace(100, 1000, 20))
    rows = [Watched(aa, looks20, False, ("SHIP", "<=", 0.10))]
    if key == "premium-model-value":
        win = Scenario("premium win +30% at 1.5x cost, a look every 100 per arm", 1000,
                       feedback=1.3, cost=1.5)
        rows.append(Watched(win, tuple(range(100, 1001, 100)), True, ("SHIP", ">=", 0.70)))
    else:
        win = Scenario("true win (equal feedback), a look every 100 per arm", 1000,
                       pii=0.5, cost=0.8)
        rows.append(Watched(win, tuple(range(100, 1001, 100)), True, ("SHIP", ">=", 0.0)))
    return rows


def run_watched(args: tuple[str, Watched, int, int]) -> dict[str, int]:
    """Counts of the outcome that ended each watched experiment (or of SHIP at any look)."""
    key, w, runs, seed = args
    experiment = find_experiment(load_experiments(), key)
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    for _ in range(runs):
        full = simulate(experiment, w.scenario, rng)
        ended = "NEED_MORE_DATA"
        for n in w.looks:
            outcome = analyze_experiment(experiment, first_arrivals(full, (n, n))).verdict.outcome
            if outcome == "SHIP" or (outcome == "KEEP" and w.stop_on_keep):
                ended = outcome
                break
        counts[ended] = counts.get(ended, 0) + 1
    return counts


def run_batch(args: tuple[str, Scenario, int, int]) -> dict[str, int]:
    """Outcome counts of `runs` simulated experiments (one worker's share)."""
    key, scenario, runs, seed = args
    # One look with the full rule, as at a final look (the watched rows use the plan).
    experiment = find_experiment(load_experiments(), key).model_copy(update={"monitoring": None})
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    for _ in range(runs):
        outcome = analyze_experiment(experiment, simulate(experiment, scenario, rng)).verdict
        counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
    return counts


def measure(key: str, s: Scenario | Watched, runs: int, jobs: int, seed: int,
            pool: ProcessPoolExecutor | None) -> dict[str, float]:
    shares = [runs // jobs + (i < runs % jobs) for i in range(jobs)]
    label = s.scenario.label if isinstance(s, Watched) else s.label
    tasks = [(key, s, k, seed * 1_000_003 + zlib.crc32(label.encode()) * 7 + i)
             for i, k in enumerate(shares) if k]
    fn = run_watched if isinstance(s, Watched) else run_batch
    results = pool.map(fn, tasks) if pool else map(fn, tasks)
    total: dict[str, int] = {}
    for counts in results:
        for outcome, n in counts.items():
            total[outcome] = total.get(outcome, 0) + n
    return {o: total.get(o, 0) / runs for o in ("SHIP", "KEEP", "NEED_MORE_DATA", "INVALID")}


def _interval(share: float, runs: int) -> float:
    """Half-width of a 95% binomial interval (normal approximation, floored at 1 run)."""
    return 1.96 * math.sqrt(max(share * (1 - share), 1.0 / runs) / runs)


def store_check(runs: int, seed: int) -> list[str]:
    """A/A through real stores and `build_report`: verdicts and seconds per report."""
    from tests.fakes.event_store import make_store
    from utils.experiments.verdicts import build_report

    ships: dict[str, int] = {}
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            path = make_store(Path(tmp) / f"aa{i}.db", users=2000, seed=seed * 1000 + i)
            t0 = time.perf_counter()
            report = build_report(path)
            seconds.append(time.perf_counter() - t0)
            for r in report.experiments:
                ships[r.experiment.key] = ships.get(r.experiment.key, 0) + (
                    r.verdict.outcome == "SHIP")
            path.unlink()
    lines = [f"  {key}: false SHIP {n}/{runs}" for key, n in ships.items()]
    lines.append(f"  build_report over 2,000 users (~1,000 per arm, both experiments): median "
                 f"{statistics.median(seconds):.2f} s, worst {max(seconds):.2f} s")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=500,
                   help="simulated experiments per single-look row; 0 skips them")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--store-runs", type=int, default=20,
                   help="A/A experiments through real SQLite stores and build_report")
    p.add_argument("--watched-runs", type=int, default=200,
                   help="experiments per watched (repeated-look) row; 0 skips them")
    p.add_argument("--experiment", metavar="KEY", help="only this rule")
    args = p.parse_args(argv)
    keys = [args.experiment] if args.experiment else [e.key for e in load_experiments()]
    missed = 0
    start = time.perf_counter()
    pool = ProcessPoolExecutor(args.jobs) if args.jobs > 1 else None
    try:
        for key in keys:
            print(f"\n{key}  ({args.runs} simulated experiments per row, one look each with "
                  "the full rule, as at a final look)")
            print(f"  {'scenario':<62} {'SHIP':>6} {'KEEP':>6} {'MORE':>6}  target")
            for s in scenarios(key) if args.runs else ():
                shares = measure(key, s, args.runs, args.jobs, args.seed, pool)
                mark = ""
                if s.target:
                    outcome, op, bar = s.target
                    got = shares[outcome]
                    ok = got <= bar if op == "<=" else got >= bar
                    missed += not ok
                    mark = (f"{outcome} {op} {bar:.0%}: {'ok' if ok else 'MISSED'} "
                            f"(±{_interval(got, args.runs):.1%})")
                print(f"  {s.label:<62} {shares['SHIP']:>6.1%} {shares['KEEP']:>6.1%} "
                      f"{shares['NEED_MORE_DATA']:>6.1%}  {mark}")
            if not args.watched_runs:
                continue
            plan = find_experiment(load_experiments(), key).monitoring
            print(f"  watched while traffic runs ({args.watched_runs} experiments per row; "
                  f"monitoring: {plan.method if plan else 'single look'})")
            for w in watched(key):
                shares = measure(key, w, args.watched_runs, args.jobs, args.seed, pool)
                outcome, op, bar = w.target
                got = shares[outcome]
                ok = got <= bar if op == "<=" else got >= bar
                mark = ""
                if bar:
                    missed += not ok
                    mark = (f"{outcome} {op} {bar:.0%}: {'ok' if ok else 'MISSED'} "
                            f"(±{_interval(got, args.watched_runs):.1%})")
                print(f"  {w.scenario.label:<62} {shares['SHIP']:>6.1%} {shares['KEEP']:>6.1%} "
                      f"{shares['NEED_MORE_DATA']:>6.1%}  {mark}")
    finally:
        if pool:
            pool.shutdown()
    if args.store_runs:
        print(f"\nThrough real stores ({args.store_runs} A/A experiments, make_store + "
              "build_report):")
        print("\n".join(store_check(args.store_runs, args.seed)))
    print(f"\n{missed} target(s) missed; {time.perf_counter() - start:.0f} s")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
