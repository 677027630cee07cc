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
import sys
from pathlib import Path

from bootstrap.experiments import DEFAULT_PATH as EXPERIMENTS_PATH
from bootstrap.experiments import ExperimentConfigError, load_experiments
from bootstrap.launchdarkly_backend import LaunchDarklyClient, LaunchDarklyError, LaunchDarklySync
from bootstrap.local_backend import FlagFileError, current_state, sync_flag_file
from bootstrap.manifest import DEFAULT_PATH as MANIFEST_PATH
from bootstrap.manifest import Manifest, ManifestError, experiment_errors, load_manifest
from bootstrap.state import StateError
from utils.settings import Settings, get_settings

log = logging.getLogger(__name__)

# Failures reported as one clear message and exit code 1 (anything else is a bug: traceback).
EXPECTED_ERRORS = (ManifestError, ExperimentConfigError, FlagFileError, StateError,
                   LaunchDarklyError, OSError, KeyError)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """--backend, --dry-run and the file paths every bootstrap script accepts."""
    parser.add_argument("--backend", choices=["local", "launchdarkly"], default=None,
                        help="where to write: the local flag file or the LaunchDarkly REST API "
                             "(default: launchdarkly when LD_API_KEY is set, else local)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the changes (a diff of the flag file locally) and write nothing")
    parser.add_argument("--manifest", type=Path, default=MANIFEST_PATH,
                        help="the manifest (default: %(default)s)")
    parser.add_argument("--experiments", type=Path, default=EXPERIMENTS_PATH,
                        help="the experiment definitions (default: %(default)s)")
    parser.add_argument("--flags-path", type=Path, default=None,
                        help="the local flag file (default: LOCAL_FLAGS_PATH, data/flags.json)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def resolve_backend(choice: str | None, settings: Settings) -> str:
    """The backend asked for, or the default: launchdarkly when an API key is set."""
    if choice:
        return choice
    has_key = bool(settings.LD_API_KEY and settings.LD_API_KEY.get_secret_value())
    return "launchdarkly" if has_key else "local"


def load_checked_experiments(path: Path, manifest: Manifest) -> list:
    """The experiments, checked against the manifest (configs, audiences, arms)."""
    experiments = load_experiments(path)
    if errors := experiment_errors(manifest, experiments):
        raise ManifestError(f"{path}: the experiments do not match the manifest:\n  - "
                            + "\n  - ".join(errors))
    return experiments


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
    parser = argparse.ArgumentParser(
        prog="python -m bootstrap.create_configs",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        run(args)
    except EXPECTED_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
