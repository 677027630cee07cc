"""Marked (experiment) runs never enter online verdicts; stores from before marking still work."""

from __future__ import annotations

import sqlite3

import numpy as np

from tests.fakes.event_store import EVENT_COLUMNS, EXPOSURE_COLUMNS, SUP, make_store
from utils.experiments.definitions import load_experiments
from utils.experiments.user_metrics import (
    connect_event_store,
    load_all_arm_data,
    store_is_simulated,
)
from utils.experiments.verdicts import build_report
from utils.telemetry import metrics as mk
from utils.telemetry.event_store import EventStore, RunMark, WriteBatch, connect


def _values(path):
    conn = connect_event_store(path)
    try:
        data = load_all_arm_data(conn, load_experiments())
    finally:
        conn.close()
    return {key: (d.users, {m: np.nan_to_num(v).round(9).tolist() for m, v in d.values.items()})
            for key, d in data.items()}


def _add_marked_runs(path, *, existing_user="user-00000", newcomers=50):
    """Treatment-arm exposures with large costs and thumbs-up, all marked as offline runs."""
    ex, ev, marks = [], [], []
    users = [existing_user] + [f"offline-{i}" for i in range(newcomers)]
    for i, user in enumerate(users):
        rid = f"marked-{i}"
        ex.append((5.0e6, rid, user, SUP[0], SUP[2], 1, "{}"))
        for key, value in ((mk.COST_PER_REQUEST, 5.0), (mk.FEEDBACK_POSITIVE, 1.0)):
            ev.append((5.0e6 + 1, rid, user, key, value, SUP[0], SUP[2], "support", "m", "p", 1))
        marks.append((rid, "offline-exp", "v1", f"t{i}", 0, "offline"))
    conn = connect(path)
    with conn:
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO exposures ({EXPOSURE_COLUMNS}) VALUES (?,?,?,?,?,?,?)", ex)
        conn.executemany(f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                         ev)
        conn.executemany("INSERT INTO marked_runs VALUES (?,?,?,?,?,?)", marks)
    conn.close()


def test_marked_runs_change_no_online_user_or_metric(tmp_path):
    path = make_store(tmp_path / "e.db", users=300)
    before = _values(path)
    report_before = build_report(path)
    _add_marked_runs(path)
    assert _values(path) == before
    report_after = build_report(path)
    for a, b in zip(report_before.experiments, report_after.experiments, strict=True):
        assert a.users == b.users and a.verdict.outcome == b.verdict.outcome


def test_unmarked_the_same_rows_would_count(tmp_path):
    """The exclusion is what keeps them out: without the marks they change the verdict data."""
    path = make_store(tmp_path / "e.db", users=300)
    before = _values(path)
    _add_marked_runs(path)
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM marked_runs")
    conn.commit()
    conn.close()
    users, _ = _values(path)["premium-model-value"]
    assert len(users) > len(before["premium-model-value"][0])


def test_store_from_before_marking_is_read(tmp_path):
    path = make_store(tmp_path / "e.db", users=200)
    expected = _values(path)
    conn = sqlite3.connect(path)
    # What a store of schema 2 holds: no marked runs, no tracker columns, no event data
    # (schemas 3, 4 and 5).
    conn.execute("DROP TABLE marked_runs")
    conn.execute("ALTER TABLE exposures DROP COLUMN tracker_token")
    conn.execute("ALTER TABLE exposures DROP COLUMN tracker_simulated")
    conn.execute("ALTER TABLE events DROP COLUMN data_json")
    conn.execute("UPDATE schema_version SET version = 2")
    conn.commit()
    conn.close()
    assert _values(path) == expected
    conn = connect_event_store(path)
    assert store_is_simulated(conn) is True
    conn.close()
    connect(path).close()  # reopening by the app migrates it to the current schema
    names = {r[0] for r in sqlite3.connect(path).execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "marked_runs" in names


def test_a_store_of_only_marked_simulated_runs_is_not_flagged_simulated(tmp_path):
    store = EventStore(tmp_path / "e.db")
    from utils.telemetry.event_store import EventRow
    store.write_sync(WriteBatch(
        request_id="r1", user_key="offline", request_status="ok", simulated=True,
        events=[EventRow(mk.TOKENS_TOTAL, 1.0, SUP[0], "x", "support", "m", "p", True)],
        mark=RunMark("exp", "baseline", "t1", 0)))
    store.close()
    rows = sqlite3.connect(tmp_path / "e.db").execute("SELECT * FROM marked_runs").fetchall()
    assert rows == [("r1", "exp", "baseline", "t1", 0, "offline")]
    conn = connect_event_store(tmp_path / "e.db")
    assert store_is_simulated(conn) is False
    conn.close()
