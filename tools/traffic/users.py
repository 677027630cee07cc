"""Simulated users of the traffic tools: segments, countries and `make_users`."""

from __future__ import annotations

import random
from dataclasses import dataclass

from bootstrap.manifest import load_manifest

_MANIFEST = load_manifest()
SEGMENTS = tuple(s.key for s in _MANIFEST.segments)
SEGMENT_CHOICES = (*SEGMENTS, "mix")
# The segments' own country list (bootstrap/manifest.yaml), so users land where targeting says.
_EU_CLAUSE = _MANIFEST.segment_clause("eu-free", "country")
assert _EU_CLAUSE is not None and not _EU_CLAUSE.negate, "eu-free must list its countries"
EU_COUNTRIES: tuple[str, ...] = tuple(str(c) for c in _EU_CLAUSE.values)
OTHER_COUNTRIES = ("US", "GB", "CA", "AU", "JP", "BR", "IN")
_REGIONS = {"US": "north-america", "CA": "north-america", "BR": "south-america",
            "GB": "europe", "AU": "oceania", "JP": "asia", "IN": "asia"}


@dataclass(frozen=True)
class SimUser:
    """A simulated user: a stable key and the context the API targets on."""

    user_id: str
    segment: str
    context: dict[str, str]


def make_users(n: int, segment: str, rng: random.Random) -> list[SimUser]:
    """`n` users in `segment` (or spread evenly over the four segments for "mix")."""
    if n < 1:
        raise ValueError(f"need at least one user, got {n}")
    if segment not in SEGMENT_CHOICES:
        raise ValueError(f"unknown segment {segment!r}; choose one of {', '.join(SEGMENT_CHOICES)}")
    run_tag = f"{rng.getrandbits(24):06x}"  # distinct keys per run, same keys for the same seed
    users = []
    for i in range(n):
        seg = SEGMENTS[i % len(SEGMENTS)] if segment == "mix" else segment
        area, plan = seg.split("-")
        country = rng.choice(EU_COUNTRIES if area == "eu" else OTHER_COUNTRIES)
        region = "europe" if area == "eu" else _REGIONS.get(country, "other")
        users.append(SimUser(f"sim-{run_tag}-{i:05d}", seg,
                             {"country": country, "plan": plan, "region": region}))
    return users
