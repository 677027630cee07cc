"""Fault injection, event store: locked, full, read-only, deleted while serving.

Each fault is real: another connection holds the write lock; SQLite's own page limit makes
the file full; the file is made immutable (root) or read-only (others); the file is removed.
A fault answers 503 with the reason within the lock timeout, /health says degraded, and a
request is only ever answered 200 once its rows are in the file.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from utils.settings import get_settings

LOCK_TIMEOUT_S = 1.0
CHAT = {"user_id": "store-user", "message": "What is Q-learning?",
        "user_context": {"country": "US", "plan": "paid"}}


@pytest.fixture
def client(flags_file: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from api.main import create_app

    monkeypatch.setenv("STORE_LOCK_TIMEOUT_S", str(LOCK_TIMEOUT_S))
    get_settings.cache_clear()
    with TestClient(create_app()) as test_client:
        yield test_client


def _db(client: Any) -> Path:
    return client.app.state.service.store.path


def _requests_in_file(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT request_id FROM requests")}


def _timed_chat(client: Any) -> tuple[Any, float]:
    started = time.monotonic()
    response = client.post("/chat", json=CHAT)
    return response, time.monotonic() - started


def _assert_degraded(client: Any, *words: str) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "degraded"
    assert any(all(w in reason for w in words) for reason in body["reasons"]), body["reasons"]


def test_a_locked_store_is_a_503_within_the_lock_timeout_then_recovers(client: Any) -> None:
    assert client.post("/chat", json=CHAT).status_code == 200
    blocker = sqlite3.connect(_db(client), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        response, elapsed = _timed_chat(client)
        assert response.status_code == 503, response.text
        assert "locked" in response.json()["detail"]["error"]
        assert elapsed < LOCK_TIMEOUT_S + 5  # bounded (the chat itself runs too): not 30 s
        _assert_degraded(client, "locked")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    recovered = client.post("/chat", json=CHAT)
    assert recovered.status_code == 200
    assert client.get("/health").json()["status"] == "ok"
    assert recovered.json()["request_id"] in _requests_in_file(_db(client))


def test_a_store_write_under_a_held_lock_fails_within_the_lock_timeout(tmp_path: Path) -> None:
    import asyncio

    from utils.telemetry.event_store import EventStore, StoreUnavailable, WriteBatch

    store = EventStore(tmp_path / "events.db", lock_timeout_s=0.5)
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="locked|busy"):
            asyncio.run(store.write(WriteBatch("r1", "u1", request_status="ok")))
        elapsed = time.monotonic() - started
        assert store.problems() and "locked" in store.problems()[0]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert 0.4 < elapsed < 1.0
    assert store.write_sync(WriteBatch("r2", "u1", request_status="ok")) == "recorded"
    assert store.problems() == []
    store.close()


def test_a_batch_whose_caller_gave_up_while_the_lock_was_held_is_not_written(
        tmp_path: Path) -> None:
    """A 503 never leaves rows behind: a batch reaching the front of the queue after its
    caller's deadline (the caller answered 503) is dropped, not committed late."""
    from utils.telemetry.event_store import EventStore, StoreUnavailable, WriteBatch

    store = EventStore(tmp_path / "events.db", lock_timeout_s=1.0)
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        first = store.submit(WriteBatch("waited", "u1", request_status="ok"))
        time.sleep(0.1)  # the writer is now waiting for the lock with `first`
        late = store.submit(WriteBatch("gave-up", "u1", request_status="ok"),
                            deadline=time.monotonic() + 0.3)
        time.sleep(0.5)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert first.result(5) == "recorded"  # its caller had no deadline: committed
    with pytest.raises(StoreUnavailable, match="did not commit"):
        late.result(5)
    assert store.write_sync(WriteBatch("after", "u1", request_status="ok")) == "recorded"
    assert store.problems() == []
    store.close()
    assert _requests_in_file(tmp_path / "events.db") == {"waited", "after"}


def test_a_locked_store_fails_queued_requests_together_not_one_timeout_each(
        client: Any) -> None:
    import concurrent.futures

    blocker = sqlite3.connect(_db(client), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(lambda _: client.post("/chat", json=CHAT).status_code,
                                     range(6)))
        elapsed = time.monotonic() - started
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert statuses == [503] * 6
    assert elapsed < 3 * LOCK_TIMEOUT_S + 5  # not 6 sequential lock timeouts


def test_a_full_store_is_a_503_and_acknowledged_rows_are_kept(client: Any) -> None:
    store = client.app.state.service.store
    acknowledged = client.post("/chat", json=CHAT).json()["request_id"]
    # SQLite's own size limit: the next page it needs makes the file "full" (SQLITE_FULL).
    pages = store._writer_conn.execute("PRAGMA page_count").fetchone()[0]
    store._writer_conn.execute(f"PRAGMA max_page_count = {pages}")
    try:
        for _ in range(20):  # until a write needs a new page
            response = client.post("/chat", json=CHAT)
            if response.status_code != 200:
                break
        assert response.status_code == 503, response.text
        assert "full" in response.json()["detail"]["error"]
        _assert_degraded(client, "full")
    finally:
        store._writer_conn.execute("PRAGMA max_page_count = 1073741823")
    assert client.post("/chat", json=CHAT).status_code == 200
    assert acknowledged in _requests_in_file(_db(client))


def _make_read_only(paths: list[Path]) -> Any:
    """Make files unwritable for real, even for root (immutable); return the undo."""
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "+i", *map(str, paths)], check=True)
        return lambda: subprocess.run(["chattr", "-i", *map(str, paths)], check=True)
    for path in paths:
        path.chmod(0o444)
    return lambda: [path.chmod(0o644) for path in paths]


def test_a_store_that_is_read_only_at_start_still_serves_and_answers_503(
        flags_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from utils.telemetry.event_store import connect

    db = tmp_path / "read-only.db"
    connect(db).close()
    monkeypatch.setenv("EVENTS_DB", str(db))
    monkeypatch.setenv("STORE_LOCK_TIMEOUT_S", str(LOCK_TIMEOUT_S))
    get_settings.cache_clear()
    undo = _make_read_only([db])
    try:
        with TestClient(create_app()) as client:
            response, elapsed = _timed_chat(client)
            assert response.status_code == 503, response.text
            assert "read-only" in response.json()["detail"]["error"]
            assert elapsed < LOCK_TIMEOUT_S + 5
            _assert_degraded(client, "read-only")
            assert client.get("/configs").status_code == 200  # the rest still serves
    finally:
        undo()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("chattr"),
                    reason="an open file can only be made unwritable with chattr +i (root)")
def test_a_store_made_read_only_while_serving_is_a_503_then_recovers(client: Any) -> None:
    assert client.post("/chat", json=CHAT).status_code == 200
    db = _db(client)
    undo = _make_read_only([db, db.with_name(db.name + "-wal")])
    try:
        response, elapsed = _timed_chat(client)
        assert response.status_code == 503, response.text
        assert "cannot be written" in response.json()["detail"]["error"]
        assert elapsed < LOCK_TIMEOUT_S + 5
        _assert_degraded(client, "cannot be written")
    finally:
        undo()
    assert client.post("/chat", json=CHAT).status_code == 200


def test_a_store_file_deleted_while_serving_is_never_acknowledged_into(client: Any) -> None:
    first = client.post("/chat", json=CHAT)
    assert first.status_code == 200
    db = _db(client)
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    response = client.post("/chat", json=CHAT)
    assert response.status_code == 503, response.text
    assert "deleted" in response.json()["detail"]["error"]
    _assert_degraded(client, "deleted")
    feedback = client.post("/feedback", json={"request_id": first.json()["request_id"],
                                              "user_id": CHAT["user_id"], "kind": "positive"})
    assert feedback.status_code == 503
    assert not db.exists()  # nothing quietly created an empty store in its place


def test_a_postgresql_restart_is_a_503_and_degraded_then_recovers_by_itself(
        flags_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database server stops (`pg_ctl stop -m fast`) under a running app and comes back:
    503 with the reason and /health degraded meanwhile, then 200 and ok with no app restart."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from tests.fakes.postgres import require_postgres
    from tools.local_postgres import throwaway_cluster

    with throwaway_cluster(require_postgres()) as cluster:
        monkeypatch.setenv("EVENTS_URL", cluster.url)
        monkeypatch.setenv("STORE_LOCK_TIMEOUT_S", str(LOCK_TIMEOUT_S))
        get_settings.cache_clear()
        with TestClient(create_app()) as client:
            before = client.post("/chat", json=CHAT)
            assert before.status_code == 200, before.text
            assert client.get("/health").json()["status"] == "ok"
            cluster.stop()
            # /health asks the database itself: degraded without any write failing first.
            deadline = time.monotonic() + 5
            while client.get("/health").json()["status"] == "ok":
                assert time.monotonic() < deadline, "/health stayed ok with the database down"
                time.sleep(0.2)
            _assert_degraded(client, "refused")
            response, elapsed = _timed_chat(client)
            assert response.status_code == 503, response.text
            assert "refused" in response.json()["detail"]["error"]
            assert elapsed < LOCK_TIMEOUT_S + 5
            assert client.post("/feedback", json={
                "request_id": before.json()["request_id"], "user_id": CHAT["user_id"],
                "kind": "positive"}).status_code == 503
            cluster.start()
            deadline = time.monotonic() + 10
            while (after := client.post("/chat", json=CHAT)).status_code != 200:
                assert after.status_code == 503, after.text
                assert time.monotonic() < deadline, "no reconnection within 10 s"
                time.sleep(0.2)
            deadline = time.monotonic() + 3
            while client.get("/health").json()["status"] != "ok":
                assert time.monotonic() < deadline, client.get("/health").json()["reasons"]
                time.sleep(0.2)
        import psycopg

        with psycopg.connect(cluster.url) as conn:
            stored = {r[0] for r in conn.execute("SELECT request_id FROM requests")}
    assert {before.json()["request_id"], after.json()["request_id"]} <= stored
