"""The verdict engine's SQL on PostgreSQL: the same events give the same JSON report."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.event_store import comparable_report, make_store
from tools.copy_store import copy_store
from utils.experiments.user_metrics import EventStoreError, connect_event_store
from utils.experiments.verdicts import build_report, report_to_dict
from utils.telemetry.event_store import EventStore, RunMark, WriteBatch


def test_a_store_copied_into_postgres_gives_the_identical_report(tmp_path: Path,
                                                                 pg_url: str) -> None:
    # Effects, an unpriced model (unknown costs), failed runs and a marked (offline) run, so
    # every query of the engine has rows to get right.
    sqlite_path = tmp_path / "e.db"
    make_store(sqlite_path, users=600, seed=7, feedback=(0.25, 0.45), cost=(0.012, 0.008),
               unpriced_model=(None, "mystery-model"), failure_rate=(0.05, 0.1))
    store = EventStore(sqlite_path)
    store.write_sync(WriteBatch(request_id="offline-1", user_key="u-offline",
                                mark=RunMark("premium-model-value", "treatment")))
    store.close()
    copied = copy_store(str(sqlite_path), pg_url)
    assert copied["events"] > 1000 and copied["marked_runs"] == 1

    on_sqlite = build_report(sqlite_path)
    on_postgres = build_report(pg_url)
    assert report_to_dict(on_postgres)["db_path"] == pg_url
    expected = comparable_report(on_sqlite)
    assert comparable_report(on_postgres) == expected
    assert sum(sum(e["users"].values()) for e in expected["experiments"]) > 0
    assert any(e["metrics"] for e in expected["experiments"])


def test_a_postgres_database_without_the_tables_names_them(pg_url: str) -> None:
    with pytest.raises(EventStoreError, match="no table events, exposures"):
        connect_event_store(pg_url)
    with pytest.raises(EventStoreError, match="cannot connect"):
        connect_event_store(pg_url.rsplit("/", 1)[0] + "/no_such_db")
