"""Add the experiment variations and start the experiments of `bootstrap/experiments.yaml`.

    python -m bootstrap.experiment_variations [--backend local|launchdarkly] [--dry-run]
        [--start] [--create-model-configs]

Adds the manifest's `experiment_variations` (claude-opus-treatment: the premium model with the
same tools as other-paid). Locally, each experiment also becomes a rule on its audience segment
serving a rollout of kind `experiment` with its own seed and split, so the SDK buckets users
exactly like LaunchDarkly and reports `inExperiment`; that is the start. Against LaunchDarkly it
creates the variations (then reads back what the SDK will be served), the metrics of
`utils/telemetry/metrics.py`, and each experiment with its iteration (treatments, the audience
rule, primary and secondary metrics, randomised by user); `--start` starts the iterations.
A promoted experiment is not restarted. Running it twice changes nothing.
"""

from __future__ import annotations

import argparse

from bootstrap.cli import load_checked_experiments, resolve_backend, run_script
from bootstrap.launchdarkly_backend import LaunchDarklySync
from bootstrap.launchdarkly_client import LaunchDarklyClient
from bootstrap.launchdarkly_experiments import LaunchDarklyExperiments
from bootstrap.launchdarkly_verify import check_model_configs, verify_served
from bootstrap.local_backend import current_state, sync_flag_file
from bootstrap.manifest import GRAPH_EXPERIMENTS_LOCAL_ONLY, load_manifest, on_graph
from bootstrap.state import BootstrapState, ExperimentState
from utils.settings import get_settings


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
    for exp in [e for e in experiments if on_graph(manifest, e)]:
        print(f"skipping {exp.key} on LaunchDarkly: {GRAPH_EXPERIMENTS_LOCAL_ONLY}")
    experiments = [e for e in experiments if not on_graph(manifest, e)]
    with LaunchDarklyClient.from_settings(settings) as client:
        project, environment = settings.LD_PROJECT_KEY, settings.LD_ENVIRONMENT
        sync = LaunchDarklySync(client, project, environment, dry_run=args.dry_run)
        sync.sync_tools(manifest)
        check_model_configs(sync, manifest.experiment_variations_for_all(),
                            create=args.create_model_configs)
        configs = sorted({ev.config for ev in manifest.experiment_variations})
        for config_key in configs:
            sync.sync_config(manifest, config_key, manifest.experiment_variations_for(config_key))
        if not args.dry_run:
            for config_key in configs:
                verify_served(sync, config_key, manifest.experiment_variations_for(config_key))
        lab = LaunchDarklyExperiments(client, project, environment, dry_run=args.dry_run)
        lab.sync_metrics(list(dict.fromkeys(m for exp in experiments for m in exp.metrics)))
        for exp in experiments:
            have = lab.sync_experiment(exp)
            if args.start:
                lab.start(exp, have)
    changes = sync.changes + lab.changes
    where = f"LaunchDarkly project {project} ({environment})"
    if not changes:
        print(f"no changes: the experiment variations, metrics and experiments exist in {where}")
    else:
        print(f"{'dry run: ' if args.dry_run else ''}{len(changes)} change(s) for {where}")
    for exp in experiments:
        print(f"{exp.key}: {describe_split(exp)}; primary metric {exp.primary_metric}")
    if not args.start:
        print("The iterations are drafts: run again with --start to start them.")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", action="store_true",
                        help="LaunchDarkly: start each experiment's draft iteration")
    parser.add_argument("--create-model-configs", action="store_true",
                        help="LaunchDarkly: create the model configs the variations name when "
                             "the project lacks them")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return run_script("python -m bootstrap.experiment_variations", __doc__, run, argv,
                      add_arguments=_add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
