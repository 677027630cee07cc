"""Per-model traits of the simulated providers, read from `agents/sim_profiles.json`.

Models differ in the simulator only through these documented parameters (docs/SIMULATION.md):
speed, verbosity, retrieval depth, answer precision and latency jitter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from utils.telemetry.cost_calculator import model_lookup_keys, normalize_model_name

PROFILES_PATH = Path(__file__).with_name("sim_profiles.json")
DEFAULT_PROFILE = "default"

_NUMBER_FIELDS = ("ttft_ms", "output_tokens_per_s", "verbosity", "precision", "jitter")
_ROW_FIELDS = frozenset((*_NUMBER_FIELDS, "retrieval_depth", "source", "aliases"))


class SimProfileError(ValueError):
    """The profile file has a bad row (the message names the file, row and field)."""


@dataclass(frozen=True)
class SimProfile:
    """Traits of one simulated model family."""

    family: str
    ttft_ms: float
    output_tokens_per_s: float
    verbosity: int
    retrieval_depth: int
    precision: float
    jitter: float
    source: str

    def expected_latency_ms(self, output_tokens: int) -> float:
        """Median wall time to stream `output_tokens`: first token, then the rest at speed."""
        return self.ttft_ms + 1000.0 * output_tokens / self.output_tokens_per_s


def _check_row(path: Path, key: str, family: str, row: Any) -> SimProfile:
    def fail(problem: str) -> SimProfileError:
        return SimProfileError(f"profile file {path}: profiles.{key} {problem}")

    if not isinstance(row, dict):
        raise fail(f"must be an object, got {row!r}")
    missing = (_ROW_FIELDS - {"aliases"}) - set(row)
    unknown = set(row) - _ROW_FIELDS
    if missing or unknown:
        raise fail(f"has missing {sorted(missing)} / unknown {sorted(unknown)} fields")
    for field in _NUMBER_FIELDS:
        value = row[field]
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise fail(f"field {field} must be a non-negative number, got {value!r}")
    if row["output_tokens_per_s"] <= 0 or row["verbosity"] <= 0:
        raise fail("needs output_tokens_per_s > 0 and verbosity > 0")
    if not 0.0 <= row["precision"] <= 1.0:
        raise fail(f"field precision must be within 0..1, got {row['precision']!r}")
    if row["jitter"] >= 1.0:
        raise fail(f"field jitter is a relative std dev and must be < 1, got {row['jitter']!r}")
    depth = row["retrieval_depth"]
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise fail(f"field retrieval_depth must be an integer >= 1, got {depth!r}")
    if not isinstance(row["source"], str) or not row["source"].strip():
        raise fail("field source must say where the numbers come from")
    return SimProfile(
        family=family,
        ttft_ms=float(row["ttft_ms"]),
        output_tokens_per_s=float(row["output_tokens_per_s"]),
        verbosity=int(row["verbosity"]),
        retrieval_depth=depth,
        precision=float(row["precision"]),
        jitter=float(row["jitter"]),
        source=row["source"],
    )


def load_profiles(path: Path = PROFILES_PATH) -> Mapping[str, SimProfile]:
    """Read and validate a profile file; aliases map to their row's profile."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SimProfileError(f"cannot read profile file {path}: {exc}") from exc
    rows = data.get("profiles") if isinstance(data, dict) else None
    if not isinstance(rows, dict) or DEFAULT_PROFILE not in rows:
        raise SimProfileError(f"profile file {path} needs a 'profiles' object with a "
                              f"'{DEFAULT_PROFILE}' row")
    profiles: dict[str, SimProfile] = {}
    for key, row in rows.items():
        family = normalize_model_name(key) if key != DEFAULT_PROFILE else key
        profile = _check_row(path, key, family, row)
        aliases = row.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise SimProfileError(f"profile file {path}: profiles.{key}.aliases must be a list "
                                  "of model names")
        for name in (family, *(normalize_model_name(a) for a in aliases)):
            if name in profiles:
                raise SimProfileError(f"profile file {path}: model {name!r} appears in two rows")
            profiles[name] = profile
    return MappingProxyType(profiles)


@lru_cache(maxsize=1)
def _profiles() -> Mapping[str, SimProfile]:
    return load_profiles(PROFILES_PATH)


def get_profile(model_name: str, profiles: Mapping[str, SimProfile] | None = None) -> SimProfile:
    """The profile for a model id (any provider prefix or snapshot), else the `default` row."""
    table = _profiles() if profiles is None else profiles
    for key in model_lookup_keys(model_name):
        if key in table:
            return table[key]
    return table[DEFAULT_PROFILE]
