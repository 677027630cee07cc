"""Error rates of the offline experiments' paired comparison (utils/stats/paired.py).

Simulates task sets like the default one: each task has its own pass probability (most tasks
nearly always pass or fail, some are on the edge), repeats are independent draws given the
task, and the two variants' draws are correlated through the task. Measures, over many
simulated experiments:

- false "better" rate under no effect: P(better) >= 0.95 when both variants are the same;
- power: P(better) >= 0.95 when the variant truly adds `effect` to the pass rate;
- coverage of the 95% interval for the true difference in pass rate;
in two worlds: a uniform lift, and task-level changes that cancel on average (some tasks
much better, as many much worse, in every repeat);
each with the design-effect correction and without it (every pair treated as independent),
to show why repeats need it.

    python bench/calibrate_paired.py [--experiments 600] [--tasks 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import utils.stats.paired as paired  # noqa: E402

SURE = 0.95


def task_probabilities(rng: np.random.Generator, tasks: int) -> np.ndarray:
    """Pass probabilities per task: U-shaped, as task sets tend to be (Beta(0.5, 0.35))."""
    return rng.beta(0.5, 0.35, size=tasks)


def simulate(rng, tasks, repeats, effect, shifts):
    p_b = task_probabilities(rng, tasks)
    # The variant helps tasks that are not already passing: the mean lift is `effect`.
    room = 1.0 - p_b
    lift = effect * room / room.mean() if effect else np.zeros(tasks)
    if shifts:  # plus task-level changes that cancel on average: some tasks get much
        # better, as many much worse, in every repeat (a change that helps some questions
        # and hurts others), which is what makes repeats of a task move together
        sign = rng.choice([-1.0, 0.0, 0.0, 1.0], size=tasks)
        lift = lift + 0.6 * sign
    p_a = np.clip(p_b + lift, 0.0, 1.0)
    true_diff = float((p_a - p_b).mean())
    shared = rng.random((tasks, repeats))  # same seed → correlated draws across variants
    own = rng.random((tasks, repeats))
    u_a = np.where(rng.random((tasks, repeats)) < 0.5, shared, own)
    b = shared < p_b[:, None]
    a = u_a < p_a[:, None]
    return a, b, true_diff


def population_difference(effect, shifts, seed=5):
    """The difference in pass rate over tasks like these (a very large task set)."""
    a, b, _ = simulate(np.random.default_rng(seed), 400_000, 1, effect, shifts)
    return float(a.mean() - b.mean())


def run(experiments, tasks, repeats, effect, shifts, corrected, seed):
    rng = np.random.default_rng(seed)
    population = population_difference(effect, shifts)
    sure = covered = covered_population = 0
    original = paired.design_effect
    if not corrected:
        paired.design_effect = lambda diff: 1.0
    try:
        for i in range(experiments):
            a, b, true_diff = simulate(rng, tasks, repeats, effect, shifts)
            result = paired.compare_paired(a, b, seed=i)
            sure += result.p_better >= SURE
            covered += result.ci[0] <= true_diff <= result.ci[1]
            covered_population += result.ci[0] <= population <= result.ci[1]
    finally:
        paired.design_effect = original
    return sure / experiments, covered / experiments, covered_population / experiments


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiments", type=int, default=600)
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"{args.experiments} simulated experiments, {args.tasks} tasks × {args.repeats} "
          f"repeats; 'sure' = P(better) >= {SURE}")
    print("coverage: how often the 95% interval holds the true difference on this task set "
          "(the tasks' own pass probabilities) and over tasks like these (the population)")
    print(f"{'effect':>8} {'task shifts':>12} {'correction':>11} {'sure':>7} "
          f"{'cover: set':>11} {'cover: population':>18}")
    for shifts in (False, True):
        for effect in (0.0, 0.05, 0.10):
            for corrected in (True, False):
                sure, coverage, population = run(args.experiments, args.tasks, args.repeats,
                                                 effect, shifts, corrected, seed=11)
                label = "design eff." if corrected else "none"
                print(f"{effect:>8.2f} {'yes' if shifts else 'no':>12} {label:>11} "
                      f"{sure:>7.3f} {coverage:>11.3f} {population:>18.3f}")
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
