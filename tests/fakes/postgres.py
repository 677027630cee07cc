"""Whether the tests' throwaway PostgreSQL can run (Debian's binaries, a temporary cluster).

The cluster and its fresh databases come from tools/local_postgres.py (`throwaway_server`,
`fresh_database`), which bench/ uses too. Under CI (`CI=true`) missing binaries fail the
tests that need them; on a laptop without PostgreSQL those tests skip and say why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools.local_postgres import MISSING, pg_bin_dir


def require_postgres() -> Path:
    """The binaries' directory; fails under CI, skips elsewhere, when they are missing."""
    found = pg_bin_dir()
    if found is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(MISSING + " (CI=true: these tests must run)", pytrace=False)
        pytest.skip(MISSING)
    return found
