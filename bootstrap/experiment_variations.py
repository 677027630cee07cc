"""Add the experiment variations and start the experiments of `bootstrap/experiments.yaml`.

    python -m bootstrap.experiment_variations [--backend local|launchdarkly] [--dry-run]

Adds the manifest's `experiment_variations` (claude-opus-treatment: the premium model with the
same tools as other-paid). Locally, each experiment also becomes a rule on its audience segment
serving a rollout of kind `experiment` with its own seed and split, so the SDK buckets users
exactly like LaunchDarkly and reports `inExperiment`. Against LaunchDarkly it creates the
variations and prints the remaining steps to start the experiments there. A promoted
experiment is not restarted. Running it twice changes nothing.
"""

from __future__ import annotations

import argparse

from bootstrap.cli import load_checked_experiments, resolve_backend, run_script
from bootstrap.launchdarkly_backend import LaunchDarklySync
from bootstrap.launchdarkly_client import LaunchDarklyClient
from bootstrap.local_backend import current_state, sync_flag_file
from bootstrap.manifest import load_manifest
from bootstrap.state import BootstrapState, ExperimentState
from utils.settings import get_settings
from utils.telemetry.metrics import METRICS


def start_experiments(state: BootstrapState, experiments: list) -> BootstrapState:
    """A copy of `state` where every experiment not yet started is running."""
    new = state.model_copy(deep=True)
    for exp in experiments:
        if exp.key not in new.experiments:
            new.experiments[exp.key] = ExperimentState(status="running")
    return new


def describe_split(exp) -> str:
    split = " / ".join(f"{arm} {percent:g}%" for arm, percent in exp.split.items())
    return f"{exp.audience} users of {exp.config}: {split} (seed {exp.seed}, by user)"


def launchdarkly_steps(exp, project: str, environment: str) -> str:
    """The manual steps left to start one experiment in LaunchDarkly."""
    metrics = "\n".join(f"       - {m}: event key {METRICS[m].event_key}" for m in exp.metrics)
    arms = ", ".join(f"{arm} {p:g}%" for arm, p in exp.split.items())
    return (
        f"Experiment {exp.name} ({exp.key}) in project {project}, environment {environment}:\n"
        f"  1. Make sure these metrics exist (Metrics > Create; custom metrics are numeric, "
        f"per-user sum):\n{metrics}\n"
        f"  2. Experiments > Create experiment: name \"{exp.name}\", hypothesis \"{exp.hypothesis}"
        f"\", randomize by user, AI config {exp.config}.\n"
        f"  3. Audience: the targeting rule for segment {exp.audience}; variations {arms}; "
        f"control {exp.control}.\n"
        f"  4. Primary metric {exp.primary_metric}; add the other metrics; statistical "
        f"approach Bayesian, threshold {exp.threshold:.0%}.\n"
        f"  5. Start the iteration, then send traffic (python -m tools.concurrent_traffic_generator)."
    )


def run(args: argparse.Namespace) -> None:
    settings = get_settings()
    manifest = load_manifest(args.manifest)
    experiments = load_checked_experiments(args.experiments, manifest)
    if resolve_backend(args.backend, settings) == "local":
        path = args.flags_path or settings.flags_path
        state = current_state(path)
        for exp in experiments:
            entry = state.experiments.get(exp.key)
            if entry is not None and entry.status == "promoted":
                print(f"{exp.key}: already promoted to {entry.winner}; not restarted")
        new_state = start_experiments(state, experiments)
        sync_flag_file(path, manifest, experiments, new_state, dry_run=args.dry_run)
        for exp in experiments:
            if new_state.experiments[exp.key].status == "running":
                print(f"{exp.key}: {describe_split(exp)}")
        return
    with LaunchDarklyClient.from_settings(settings) as client:
        sync = LaunchDarklySync(client, settings.LD_PROJECT_KEY, settings.LD_ENVIRONMENT,
                                dry_run=args.dry_run)
        sync.sync_tools(manifest)
        for config_key in sorted({ev.config for ev in manifest.experiment_variations}):
            sync.sync_config(manifest, config_key, manifest.experiment_variations_for(config_key))
    if not sync.changes:
        print("no changes: the experiment variations exist in LaunchDarkly")
    print("\nRemaining steps (LaunchDarkly starts experiments from its UI or experiments API):")
    for exp in experiments:
        print(launchdarkly_steps(exp, settings.LD_PROJECT_KEY, settings.LD_ENVIRONMENT))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return run_script("python -m bootstrap.experiment_variations", __doc__, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
