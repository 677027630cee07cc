"""The SQLite event store: WAL, versioned schema, concurrent writers, nothing lost or doubled."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest

from utils.telemetry.event_store import (
    SCHEMA_VERSION,
    EventRow,
    EventStore,
    Exposure,
    WriteBatch,
    connect,
)

TABLES = ("requests", "exposures", "events", "feedback")


def _request_batch(request_id: str, user_key: str = "u1", events: int = 3) -> WriteBatch:
    """A request's batch: one requests row, one exposure, `events` event rows."""
    return WriteBatch(
        request_id=request_id, user_key=user_key, context={"country": "US", "plan": "paid"},
        exposures=[Exposure("support-agent", "other-paid", False)],
        events=[EventRow("$ld:ai:tokens:total", float(i), "support-agent", "other-paid",
                         "support", "gpt-4o", "openai", True) for i in range(events)],
        request_status="ok", simulated=True,
    )


def _feedback_batch(request_id: str, user_key: str = "u1") -> WriteBatch:
    return WriteBatch(
        request_id=request_id, user_key=user_key, feedback=("positive", "simulated"),
        events=[EventRow("$ld:ai:feedback:user:positive", 1.0, "support-agent", "other-paid",
                         None, None, None, False)],
    )


def _counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}


@pytest.fixture
def store(tmp_path: Path):
    store = EventStore(tmp_path / "events.db")
    yield store
    store.close()


def test_store_uses_wal_journal_mode(store: EventStore) -> None:
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_schema_version_is_recorded_once_and_reconnecting_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = EventStore(path)
    store.write_sync(_request_batch("r1"))
    store.close()
    for _ in range(3):
        connect(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [
            (SCHEMA_VERSION,)]
    assert _counts(path)["requests"] == 1  # reopening never drops or duplicates data


def test_database_from_before_versioning_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with sqlite3.connect(path) as conn:  # a version-0 file: no tables, no version row
        conn.execute("CREATE TABLE unrelated (x INTEGER)")
    connect(path).close()
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert set(TABLES) | {"schema_version", "unrelated"} <= names
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [
            (SCHEMA_VERSION,)]


def test_migration_from_an_older_version_updates_the_version_row(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (0)")
    connect(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [
            (SCHEMA_VERSION,)]


def test_request_batch_writes_every_row_and_reads_back(store: EventStore) -> None:
    assert store.write_sync(_request_batch("r1", events=4)) == "recorded"
    assert _counts(store.path) == {"requests": 1, "exposures": 1, "events": 4, "feedback": 0}
    record = store.get_request("r1")
    assert record is not None and record.user_key == "u1"
    assert record.context == {"country": "US", "plan": "paid"}
    assert record.exposures == [{"config_key": "support-agent", "variation_key": "other-paid",
                                 "in_experiment": 0, "tracker_token": None,
                                 "tracker_simulated": 0}]
    assert store.get_request("missing") is None


def test_duplicate_feedback_is_reported_and_adds_no_events(store: EventStore) -> None:
    store.write_sync(_request_batch("r1", events=0))
    assert store.write_sync(_feedback_batch("r1")) == "recorded"
    assert store.write_sync(_feedback_batch("r1")) == "duplicate"
    assert _counts(store.path)["feedback"] == 1
    assert _counts(store.path)["events"] == 1


async def test_async_write_resolves_after_commit(store: EventStore) -> None:
    assert await store.write(_request_batch("r-async")) == "recorded"
    assert _counts(store.path)["requests"] == 1


def write_from_threads(store, threads: int, per_thread: int) -> dict[str, int]:
    """Requests from several threads at once, feedback on every other one; the rows expected."""

    def work(t: int) -> None:
        for i in range(per_thread):
            store.write_sync(_request_batch(f"t{t}-{i}", user_key=f"user-{t}"))
            if i % 2 == 0:
                store.write_sync(_feedback_batch(f"t{t}-{i}", user_key=f"user-{t}"))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    n = threads * per_thread
    return {"requests": n, "exposures": n, "events": 3 * n + n // 2, "feedback": n // 2}


def test_concurrent_writer_threads_leave_exactly_the_expected_rows(store: EventStore) -> None:
    expected = write_from_threads(store, threads=8, per_thread=40)
    assert _counts(store.path) == expected


def _write_from_process(path: str, prefix: str, count: int) -> None:
    store = EventStore(Path(path))
    futures = [store.submit(_request_batch(f"{prefix}-{i}")) for i in range(count)]
    for future in futures:
        future.result(timeout=60)
    store.close()


def test_two_processes_writing_one_file_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    connect(path).close()
    ctx = multiprocessing.get_context("spawn")
    processes = [ctx.Process(target=_write_from_process, args=(str(path), name, 150))
                 for name in ("a", "b")]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    assert _counts(path) == {"requests": 300, "exposures": 300, "events": 900, "feedback": 0}
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(DISTINCT request_id) FROM events").fetchone()[0] == 300


def test_a_bad_batch_in_a_group_commit_does_not_lose_the_others(store: EventStore) -> None:
    # Hold the write lock so the writer queues the next batches and commits them as one group.
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    first = store.submit(_request_batch("first"))
    good_a = store.submit(_request_batch("good-a"))
    bad = store.submit(_request_batch("bad", user_key=None))  # type: ignore[arg-type]
    good_b = store.submit(_request_batch("good-b"))
    blocker.execute("COMMIT")
    blocker.close()
    assert first.result(10) == good_a.result(10) == good_b.result(10) == "recorded"
    with pytest.raises(sqlite3.IntegrityError):
        bad.result(10)
    with sqlite3.connect(store.path) as conn:
        ids = sorted(r[0] for r in conn.execute("SELECT request_id FROM requests"))
        assert ids == ["first", "good-a", "good-b"]
        assert conn.execute("SELECT COUNT(*) FROM events WHERE request_id = 'bad'").fetchone()[
            0] == 0


def test_close_drains_the_queue_before_stopping(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.db")
    futures = [store.submit(_request_batch(f"r{i}")) for i in range(500)]
    store.close()
    assert all(f.done() and f.result() == "recorded" for f in futures)
    assert _counts(store.path)["requests"] == 500
    late = store.submit(_request_batch("late"))
    with pytest.raises(RuntimeError, match="closed"):
        late.result(1)


def test_summary_counts_rows_per_table_and_event_key(store: EventStore) -> None:
    store.write_sync(_request_batch("r1", events=2))
    summary = store.summary()
    assert summary["schema_version"] == SCHEMA_VERSION
    assert summary["tables"]["events"] == 2
    assert summary["events_by_key"] == {"$ld:ai:tokens:total": 2}


def test_the_documented_schema_is_the_schema(tmp_path: Path) -> None:
    """docs/CONTRACTS.md describes the tables the migrations create, column for column."""
    import re

    doc = (Path(__file__).resolve().parents[3] / "docs" / "CONTRACTS.md").read_text()
    section = doc.split("## Event store", 1)[1].split("\n## ", 1)[0]
    documented = {}
    for bullet in re.findall(r"^- `(\w+)`:(.*?)(?=^- `|^\S)", section, re.S | re.M):
        table, text = bullet
        columns = text.split("—", 1)[1] if "—" in text else ""
        documented[table] = re.findall(r"`(\w+)`", columns)
    conn = connect(tmp_path / "events.db")
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    actual = {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})") if r[1] != "id"]
              for t in tables}
    conn.close()
    assert set(documented) == set(actual)
    for table, columns in actual.items():
        if table != "schema_version":
            assert documented[table] == columns, table


def graph_batch(request_id: str) -> WriteBatch:
    """A request's graph path and handoff rows (agent NULL, data beyond the columns)."""
    path = ["supervisor-agent", "support-agent"]
    return WriteBatch(request_id=request_id, user_key="u1", events=[
        EventRow("$ld:ai:graph:path", 1.0, "support-assistant-graph", "detector-routed", None,
                 None, None, True, {"path": path}),
        EventRow("$ld:ai:graph:handoff_success", 1.0, "support-assistant-graph",
                 "detector-routed", None, None, None, True,
                 {"sourceKey": path[0], "targetKey": path[1]})])


def test_event_data_is_stored_as_json_and_read_back(store: EventStore) -> None:
    store.write_sync(graph_batch("g1"))
    store.write_sync(_request_batch("g2", events=1))
    rows = store.events_of("g1")
    assert [r["data"] for r in rows] == [
        {"path": ["supervisor-agent", "support-agent"]},
        {"sourceKey": "supervisor-agent", "targetKey": "support-agent"}]
    assert rows[0]["agent"] is None and rows[0]["variation_key"] == "detector-routed"
    assert [r["data"] for r in store.events_of("g2")] == [None]  # an agent row has none


def test_a_schema_4_store_migrates_and_keeps_its_rows(tmp_path: Path) -> None:
    from utils.telemetry.store_schema import _MIGRATIONS

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for migration in _MIGRATIONS[:4]:
        conn.executescript(migration)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (4)")
    conn.execute("INSERT INTO events (ts, request_id, user_key, event_key, value) VALUES "
                 "(1.0, 'old', 'u1', '$ld:ai:tokens:total', 5.0)")
    conn.commit()
    conn.close()
    store = EventStore(path)
    try:
        store.write_sync(graph_batch("new"))
        assert [(r["value"], r["data"]) for r in store.events_of("old")] == [(5.0, None)]
        assert store.events_of("new")[0]["data"] == {"path": ["supervisor-agent",
                                                              "support-agent"]}
        assert store.summary()["schema_version"] == SCHEMA_VERSION == 5
    finally:
        store.close()
