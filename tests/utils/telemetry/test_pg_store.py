"""The event store on a real PostgreSQL: same schema, writer and answers as on SQLite."""

from __future__ import annotations

import threading

import psycopg
import pytest

from tests.utils.telemetry.test_event_store import (
    TABLES,
    _feedback_batch,
    _request_batch,
    graph_batch,
    write_from_threads,
)
from utils.telemetry.event_store import SCHEMA_VERSION
from utils.telemetry.pg_store import PgEventStore, open_event_store
from utils.telemetry.store_faults import StoreUnavailable
from utils.telemetry.store_url import parse_location, redact


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}


@pytest.fixture
def store(pg_url: str):
    store = open_event_store(pg_url)
    assert isinstance(store, PgEventStore)
    yield store
    store.close()


def test_schema_is_created_once_with_float8_timestamps(store: PgEventStore, pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [
            (SCHEMA_VERSION,)]
        types = dict(conn.execute("SELECT column_name, data_type FROM information_schema"
                                  ".columns WHERE table_name = 'events'").fetchall())
    assert types["ts"] == types["value"] == "double precision"
    PgEventStore(pg_url).close()  # a second process connecting migrates nothing twice
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 1


def test_request_batch_writes_every_row_and_reads_back(store: PgEventStore, pg_url: str) -> None:
    ts = 1_700_000_000.123456  # float4 would round this by minutes
    batch = _request_batch("r1", events=4)
    batch.ts = ts
    assert store.write_sync(batch) == "recorded"
    assert _counts(pg_url) == {"requests": 1, "exposures": 1, "events": 4, "feedback": 0}
    assert store.query("SELECT ts FROM events LIMIT 1")[0][0] == ts
    record = store.get_request("r1")
    assert record is not None and record.user_key == "u1"
    assert record.context == {"country": "US", "plan": "paid"}
    assert record.exposures == [{"config_key": "support-agent", "variation_key": "other-paid",
                                 "in_experiment": 0, "tracker_token": None,
                                 "tracker_simulated": 0}]
    assert store.get_request("missing") is None
    assert store.summary()["tables"]["events"] == 4
    # A request written again (the same id) replaces its row, as SQLite's store does.
    again = _request_batch("r1", events=0)
    again.request_status = "error"
    store.write_sync(again)
    assert store.get_request("r1").status == "error"  # type: ignore[union-attr]


def test_event_data_is_stored_as_json_and_read_back(store: PgEventStore) -> None:
    store.write_sync(graph_batch("g1"))
    assert [r["data"] for r in store.events_of("g1")] == [
        {"path": ["supervisor-agent", "support-agent"]},
        {"sourceKey": "supervisor-agent", "targetKey": "support-agent"}]


def test_feedback_is_counted_once_under_races_by_two_stores(pg_url: str) -> None:
    # Two processes' stores (two writers, two pools) race to record the same feedback.
    a, b = open_event_store(pg_url), open_event_store(pg_url)
    try:
        a.write_sync(_request_batch("r1", events=0))
        results: list[str] = []
        barrier = threading.Barrier(8)

        def send(store) -> None:
            barrier.wait()
            results.append(store.write_sync(_feedback_batch("r1")))

        threads = [threading.Thread(target=send, args=(s,)) for s in (a, b) * 4]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        a.close()
        b.close()
    assert sorted(results) == ["duplicate"] * 7 + ["recorded"]
    assert _counts(pg_url)["feedback"] == 1 and _counts(pg_url)["events"] == 1


def test_concurrent_writer_threads_leave_exactly_the_expected_rows(store: PgEventStore,
                                                                   pg_url: str) -> None:
    expected = write_from_threads(store, threads=6, per_thread=30)
    assert _counts(pg_url) == expected


def test_a_bad_batch_in_a_group_does_not_lose_the_others(store: PgEventStore,
                                                         pg_url: str) -> None:
    futures = [store.submit(_request_batch(f"good-{i}")) for i in range(20)]
    bad = store.submit(_request_batch("bad", user_key=None))  # type: ignore[arg-type]
    futures += [store.submit(_request_batch(f"late-{i}")) for i in range(20)]
    assert all(f.result(10) == "recorded" for f in futures)
    with pytest.raises(psycopg.errors.NotNullViolation):
        bad.result(10)
    assert _counts(pg_url)["requests"] == 40
    assert store.problems() == []


def test_unreachable_database_is_a_503_reason_then_recovers(postgres_server: str) -> None:
    # A database that does not exist yet: writes fail with the reason, then succeed once it is
    # created (the pool reconnects; nothing needs a restart).
    name = "later_db"
    url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    store = PgEventStore(url, lock_timeout_s=1.0)
    try:
        assert store.problems() and name in store.problems()[0]
        with pytest.raises(StoreUnavailable, match=f"{name}.*unavailable|unreachable"):
            store.write_sync(_request_batch("r0"))
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        assert store.write_sync(_request_batch("r1")) == "recorded"
        assert store.problems() == []
    finally:
        store.close()
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_connections_killed_by_the_server_are_replaced(store: PgEventStore, pg_url: str) -> None:
    store.write_sync(_request_batch("before"))
    with psycopg.connect(pg_url, autocommit=True) as conn:  # what a database restart does
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                     "datname = current_database() AND pid <> pg_backend_pid()")
    outcomes = []
    for i in range(3):  # the first may meet the dead connection: a 503, never a false "ok"
        try:
            outcomes.append(store.write_sync(_request_batch(f"after-{i}")))
        except StoreUnavailable:
            outcomes.append("503")
    assert outcomes[-1] == "recorded"
    assert _counts(pg_url)["requests"] == 1 + outcomes.count("recorded")


def test_locations_parse_and_hide_passwords() -> None:
    assert parse_location("sqlite:///data/x.db").path.as_posix() == "data/x.db"  # type: ignore
    assert parse_location("sqlite:////tmp/x.db").path.as_posix() == "/tmp/x.db"  # type: ignore
    assert parse_location("data/y.db").kind == "sqlite"
    pg = parse_location("postgres://me:secret@db:5432/events")
    assert pg.is_postgres and pg.url == "postgresql://me:secret@db:5432/events"
    assert "secret" not in str(pg) and redact(pg.url) == "postgresql://me:***@db:5432/events"
    with pytest.raises(ValueError, match="mysql"):
        parse_location("mysql://x/y")
    with pytest.raises(ValueError, match="names no file"):
        parse_location("sqlite:///")

