"""What the bootstrap scripts share: common arguments, backend choice, error handling."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from bootstrap.launchdarkly_client import LaunchDarklyError
from bootstrap.local_backend import FlagFileError
from bootstrap.manifest import DEFAULT_PATH as MANIFEST_PATH
from bootstrap.manifest import Manifest, ManifestError, experiment_errors
from bootstrap.state import StateError
from utils.experiments.definitions import DEFAULT_PATH as EXPERIMENTS_PATH
from utils.experiments.definitions import ExperimentConfigError, load_experiments
from utils.settings import Settings

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


def run_script(prog: str, doc: str | None, run: Callable[[argparse.Namespace], None],
               argv: list[str] | None, *,
               add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
               errors: tuple[type[BaseException], ...] = ()) -> int:
    """Parse the common arguments (plus the script's own), run, and turn expected failures
    into one clear message and exit code 1."""
    parser = argparse.ArgumentParser(
        prog=prog, description=doc.split("\n\n", 1)[1] if doc else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    if add_arguments is not None:
        add_arguments(parser)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        run(args)
    except (*EXPECTED_ERRORS, *errors) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
