"""Promote an experiment's winning variation to its whole audience.

    python -m bootstrap.promote EXPERIMENT VARIATION [--dry-run] [--backend ...]

In LaunchDarkly's order: stop the experiment's iteration with VARIATION as the winning
treatment (LaunchDarkly freezes its results), then serve VARIATION to everyone in the audience
segment (the experiment rollout goes away) -- or, when the experiment declares
`promote_to: everyone`, to everyone (the default/fallthrough variation too) -- then archive
the losing arms that no other targeting rule or default still serves. Locally the flag file's rule is rewritten the same way
and the state (data/flags.state.json) records the winner and the archived arms; the running
server picks the new flag file up without a restart. VARIATION must be an arm of the
experiment. Running it twice changes nothing.
"""

from __future__ import annotations

import argparse

from bootstrap.cli import load_checked_experiments, resolve_backend, run_script
from bootstrap.launchdarkly_backend import LaunchDarklySync
from bootstrap.launchdarkly_client import LaunchDarklyClient
from bootstrap.launchdarkly_experiments import LaunchDarklyExperiments
from bootstrap.local_backend import current_state, sync_flag_file
from bootstrap.manifest import (
    Manifest,
    ManifestError,
    graph_promotion_by_hand,
    load_manifest,
    on_graph,
)
from bootstrap.state import (
    BootstrapState,
    ExperimentState,
    launchdarkly_state_path,
    load_state,
    save_state,
)
from utils.experiments.definitions import find_experiment
from utils.settings import get_settings


class PromotionError(ValueError):
    """The experiment or variation named on the command line cannot be promoted."""


def find_arm(experiments: list, key: str, variation: str):
    """The experiment `key`, after checking `variation` is one of its arms."""
    try:
        exp = find_experiment(experiments, key)
    except KeyError as exc:
        raise PromotionError(exc.args[0]) from None
    if variation not in exp.split:
        raise PromotionError(f"refusing to promote {variation!r}: it is not an arm of {key} "
                             f"(arms: {', '.join(exp.split)})")
    return exp


def archivable(manifest: Manifest, exp, winner: str) -> list[str]:
    """The losing arms nothing else serves once `winner` is promoted: no other segment rule
    of the config and not its default (an arm still serving other users stays published)."""
    if exp.config in {g.key for g in manifest.graphs}:
        targeting = manifest.graph(exp.config).targeting  # a graph targets its default only
        still_served: set[str] = set()
    else:
        targeting = manifest.config(exp.config).targeting
        still_served = {r.variation for r in targeting.rules if r.segment != exp.audience}
    still_served.add(targeting.default)
    return [arm for arm in exp.split if arm != winner and arm not in still_served]


def promoted(state: BootstrapState, exp, winner: str, archived: list[str]) -> BootstrapState:
    new = state.model_copy(deep=True)
    new.experiments[exp.key] = ExperimentState(status="promoted", winner=winner,
                                               archived=archived)
    return new


def archive_on_launchdarkly(sync: LaunchDarklySync, config: str, arms: list[str]) -> None:
    """PATCH each arm's variation to `state: archived` unless it already is."""
    base = f"/api/v2/projects/{sync.project}/ai-configs/{config}"
    variations = {v.get("key"): v for v in
                  (sync.client.request("GET", base) or {}).get("variations", [])}
    for arm in arms:
        if (variations.get(arm) or {}).get("state") != "archived":
            sync._change(f"archive variation {config}/{arm}", "PATCH",
                         f"{base}/variations/{arm}", {"state": "archived"})


def describe(state: BootstrapState, exp) -> str:
    entry = state.experiments.get(exp.key)
    if entry is None:
        return f"{exp.audience}: experiment not started (its segment rule applies)"
    if entry.status == "running":
        split = " / ".join(f"{arm} {p:g}%" for arm, p in exp.split.items())
        return f"{exp.audience}: experiment rollout {split} (seed {exp.seed})"
    who = "everyone (default variation too)" if exp.promote_to == "everyone" else "everyone"
    return (f"{exp.audience}: {who} gets {entry.winner} "
            f"(archived: {', '.join(entry.archived) or 'none'})")


def run(args: argparse.Namespace) -> None:
    settings = get_settings()
    manifest = load_manifest(args.manifest)
    experiments = load_checked_experiments(args.experiments, manifest)
    exp = find_arm(experiments, args.experiment, args.variation)
    local = resolve_backend(args.backend, settings) == "local"
    if not local and on_graph(manifest, exp):
        raise PromotionError(graph_promotion_by_hand(manifest, exp, args.variation))
    if local:
        path = args.flags_path or settings.flags_path
        if not path.exists():
            raise ManifestError(f"{path} does not exist; run python -m bootstrap.create_configs "
                                "and python -m bootstrap.experiment_variations first")
        state = current_state(path)
    else:
        state_path = launchdarkly_state_path(settings.DATA_DIR)
        state = load_state(state_path)
    new_state = promoted(state, exp, args.variation, archivable(manifest, exp, args.variation))
    print(f"{exp.name} ({exp.config})")
    print(f"  before: {describe(state, exp)}")
    print(f"  after:  {describe(new_state, exp)}")
    if local:
        sync_flag_file(path, manifest, experiments, new_state, dry_run=args.dry_run)
        return
    with LaunchDarklyClient.from_settings(settings) as client:
        project, environment = settings.LD_PROJECT_KEY, settings.LD_ENVIRONMENT
        LaunchDarklyExperiments(client, project, environment, dry_run=args.dry_run).stop(
            exp, args.variation, reason=f"promoted with python -m bootstrap.promote {exp.key} "
                                        f"{args.variation}")
        sync = LaunchDarklySync(client, project, environment, dry_run=args.dry_run)
        sync.sync_targeting(exp.config, [(exp.audience, args.variation)],
                            default=args.variation if exp.promote_to == "everyone" else None,
                            force_segments=frozenset({exp.audience}))
        archive_on_launchdarkly(sync, exp.config, new_state.experiments[exp.key].archived)
    if not args.dry_run:
        save_state(state_path, new_state)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="experiment key, e.g. premium-model-value")
    parser.add_argument("variation", help="the winning arm to serve, e.g. other-paid")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return run_script("python -m bootstrap.promote", __doc__, run, argv,
                      add_arguments=_add_arguments, errors=(PromotionError,))


if __name__ == "__main__":
    raise SystemExit(main())
