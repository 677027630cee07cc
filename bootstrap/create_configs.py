"""Create the AI configs, tools, segments and targeting of `bootstrap/manifest.yaml`.

    python -m bootstrap.create_configs [--backend local|launchdarkly] [--dry-run]

Local (the default without LD_API_KEY): writes the LaunchDarkly flag file LOCAL_FLAGS_PATH
(default data/flags.json), validated with the real SDK and replaced atomically, so a running
server picks it up. LaunchDarkly (the default with LD_API_KEY): creates or updates the project
LD_PROJECT_KEY / LD_ENVIRONMENT through the REST API. Running it twice changes nothing.
"""

from __future__ import annotations

import argparse
import logging

from bootstrap.cli import load_checked_experiments, resolve_backend, run_script
from bootstrap.launchdarkly_backend import LaunchDarklySync
from bootstrap.launchdarkly_client import LaunchDarklyClient
from bootstrap.local_backend import current_state, sync_flag_file
from bootstrap.manifest import load_manifest
from utils.settings import get_settings

log = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> None:
    settings = get_settings()
    manifest = load_manifest(args.manifest)
    if resolve_backend(args.backend, settings) == "local":
        path = args.flags_path or settings.flags_path
        state = current_state(path)
        # Experiments already started stay in the file; only they need experiments.yaml.
        experiments = load_checked_experiments(args.experiments, manifest) if state.experiments \
            else []
        sync_flag_file(path, manifest, experiments, state, dry_run=args.dry_run)
        return
    with LaunchDarklyClient.from_settings(settings) as client:
        sync = LaunchDarklySync(client, settings.LD_PROJECT_KEY, settings.LD_ENVIRONMENT,
                                dry_run=args.dry_run)
        changes = sync.sync_manifest(manifest)
    where = f"LaunchDarkly project {settings.LD_PROJECT_KEY} ({settings.LD_ENVIRONMENT})"
    if not changes:
        print(f"no changes: {where} is up to date")
    else:
        print(f"{'dry run: ' if args.dry_run else ''}{len(changes)} change(s) for {where}")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return run_script("python -m bootstrap.create_configs", __doc__, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
