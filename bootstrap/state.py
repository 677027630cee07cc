"""Bootstrap state: which experiments run, which were promoted and which arms were archived.

Kept beside what it describes, so deleting it with the flag file resets the local setup:
`data/flags.state.json` for the local flag file (`<LOCAL_FLAGS_PATH stem>.state.json`), and
`DATA_DIR/launchdarkly.state.json` for a LaunchDarkly project.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError


class StateError(ValueError):
    """The state file cannot be read or does not match the expected shape."""


class ExperimentState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["running", "promoted"]
    winner: str | None = None
    archived: list[str] = []


class BootstrapState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experiments: dict[str, ExperimentState] = {}


def local_state_path(flags_path: Path) -> Path:
    """The state file of a local flag file: `flags.json` -> `flags.state.json`."""
    return flags_path.with_name(f"{flags_path.stem}.state.json")


def launchdarkly_state_path(data_dir: Path) -> Path:
    return data_dir / "launchdarkly.state.json"


def load_state(path: Path) -> BootstrapState:
    """The state at `path`, or an empty state when the file does not exist."""
    if not path.exists():
        return BootstrapState()
    try:
        return BootstrapState.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError) as err:
        raise StateError(f"{path}: cannot read the bootstrap state ({err}); delete the file to "
                         "reset the experiments it records") from None


def dump_state(state: BootstrapState) -> str:
    return json.dumps(state.model_dump(), indent=2, sort_keys=True) + "\n"


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_state(path: Path, state: BootstrapState) -> bool:
    """Write the state if it changed; True when the file was written."""
    text = dump_state(state)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    write_text_atomic(path, text)
    return True
