"""Per-user metric values from a hand-built store: who is in which arm, and what counts."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from tests.fakes.event_store import EVENT_COLUMNS, EXPOSURE_COLUMNS
from utils.experiments.definitions import find_experiment, load_experiments
from utils.experiments.user_metrics import connect_event_store, load_all_arm_data
from utils.telemetry import metrics as mk
from utils.telemetry.event_store import connect

CONFIG, CONTROL, TREATMENT = "security-agent", "basic-security", "strict-security"


def _exposure(ts: float, user: str, variation: str, in_experiment: int = 1, request: str = ""):
    return (ts, request or f"{user}-{ts}", user, CONFIG, variation, in_experiment, "{}")


def _event(ts: float, user: str, key: str, value: float, request: str = ""):
    return (ts, request or f"{user}-{ts}", user, key, value, CONFIG, CONTROL, "support", "m",
            "p", 0)


@pytest.fixture
def arm_data(tmp_path: Path):
    path = tmp_path / "events.db"
    exposures = [
        _exposure(10, "alice", CONTROL, request="alice-r1"),
        _exposure(20, "alice", CONTROL),  # a second exposure in the same arm changes nothing
        _exposure(10, "bob", TREATMENT),
        _exposure(10, "carol", CONTROL),
        _exposure(12, "carol", TREATMENT),  # seen in both arms: left out
        _exposure(10, "dave", CONTROL, in_experiment=0),  # served, but not in the experiment
        _exposure(30, "erin", TREATMENT),
    ]
    events = [
        _event(11, "alice", mk.COST_PER_REQUEST, 0.10),
        _event(21, "alice", mk.COST_PER_REQUEST, 0.20),
        _event(9.5, "alice", mk.DURATION_TOTAL, 900.0, request="alice-r1"),  # same request
        _event(25, "alice", mk.FEEDBACK_POSITIVE, 1.0),
        _event(26, "alice", mk.FEEDBACK_POSITIVE, 1.0),  # "any": still one conversion
        _event(11, "dave", mk.COST_PER_REQUEST, 5.0),
        _event(5, "erin", mk.COST_PER_REQUEST, 7.0),  # before erin's first exposure
        _event(31, "erin", mk.PII_EXPOSED_ENTITIES, 2.0),
        _event(32, "erin", mk.PII_EXPOSED_ENTITIES, 1.0),
    ]
    conn = connect(path)
    with conn:
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO exposures ({EXPOSURE_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                         exposures)
        conn.executemany(f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                         events)
    conn.close()
    experiment = find_experiment(load_experiments(), "security-level")
    reader = connect_event_store(path)
    try:
        yield load_all_arm_data(reader, [experiment])["security-level"]
    finally:
        reader.close()


def value(data, metric: str, user: str) -> float:
    return float(data.values[metric][data.users.index(user)])


def test_users_are_assigned_by_first_in_experiment_exposure(arm_data) -> None:
    assert arm_data.users == ["alice", "bob", "erin"]
    assert list(arm_data.arm) == [0, 1, 1]
    assert arm_data.excluded_users == 1  # carol, in both arms; dave never entered


def test_sums_count_events_after_the_first_exposure_only(arm_data) -> None:
    assert value(arm_data, "ai_cost_per_request", "alice") == pytest.approx(0.30)
    assert value(arm_data, "ai_cost_per_request", "erin") == 0.0  # its only cost came earlier
    assert value(arm_data, "pii_exposed_entities", "erin") == 3.0


def test_users_without_events_count_as_zero_for_means_and_conversions(arm_data) -> None:
    assert value(arm_data, "ai_cost_per_request", "bob") == 0.0
    assert value(arm_data, "positive_feedback_rate", "bob") == 0.0
    assert value(arm_data, "positive_feedback_rate", "alice") == 1.0


def test_percentile_metrics_leave_out_users_without_events(arm_data) -> None:
    # alice's latency event was tracked a moment before her first exposure, in that request.
    assert value(arm_data, "p95_total_user_latency", "alice") == 900.0
    assert math.isnan(value(arm_data, "p95_total_user_latency", "bob"))
    assert list(arm_data.arm_values("p95_total_user_latency", 1)) == []


def test_a_file_without_the_tables_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).close()
    from utils.experiments.user_metrics import EventStoreError

    with pytest.raises(EventStoreError, match="no table events, exposures"):
        connect_event_store(path)
