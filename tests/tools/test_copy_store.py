"""tools/copy_store.py: a store copied SQLite → PostgreSQL → SQLite reports the same; the tool
refuses what it must, names bad input, shows progress, and reads stores of older schemas."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from tests.fakes.event_store import comparable_report, make_store
from tools import copy_store as tool
from utils.experiments.verdicts import build_report
from utils.telemetry.event_store import EventRow, EventStore, Exposure, RunMark, WriteBatch
from utils.telemetry.pg_store import open_event_store
from utils.telemetry.store_schema import _MIGRATIONS, schema_tables


def _full_store(path: Path) -> Path:
    """Experiments with effects and unknown costs, plus a row in every other table."""
    make_store(path, users=300, seed=3, feedback=(0.25, 0.45), cost=(0.012, 0.008),
               unpriced_model=(None, "mystery-model"), failure_rate=(0.05, 0.1))
    store = EventStore(path)
    try:
        store.write_sync(WriteBatch(
            request_id="req-1", user_key="user-00001", request_status="ok",
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7",
            exposures=[Exposure("support-agent", "other-paid", True, tracker_token="tok")],
            events=[EventRow("ai_cost_per_request", 0.5, "support-agent", "other-paid",
                             "support", "m", "p", False)]))
        store.write_sync(WriteBatch(request_id="req-1", user_key="user-00001",
                                    feedback=("positive", "api")))
        store.write_sync(WriteBatch(request_id="offline-1", user_key="u-offline",
                                    mark=RunMark("premium-model-value", "treatment")))
    finally:
        store.close()
    return path


def _counts(location: str | Path) -> dict[str, int]:
    from utils.experiments.user_metrics import connect_event_store

    conn = connect_event_store(location)
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in schema_tables()}
    finally:
        conn.close()


def test_sqlite_to_postgres_and_back_gives_the_identical_report(tmp_path: Path,
                                                               pg_url: str) -> None:
    source = _full_store(tmp_path / "source.db")
    expected = _counts(source)
    assert all(expected.values()), expected  # every table has rows to get right

    assert tool.main(["--from", str(source), "--to", pg_url]) == 0
    back = tmp_path / "back.db"
    assert tool.main(["--from", pg_url, "--to", f"sqlite:///{back}"]) == 0

    assert _counts(pg_url) == expected and _counts(back) == expected
    # Vacuumed and analyzed like a bulk load, so the first report does not pay for it.
    conn = psycopg.connect(pg_url)
    try:
        done = dict(conn.execute(
            "SELECT relname, last_vacuum IS NOT NULL AND last_analyze IS NOT NULL "
            "FROM pg_stat_user_tables").fetchall())
    finally:
        conn.close()
    assert all(done[t] for t in schema_tables()), done
    report = comparable_report(build_report(source))
    assert sum(sum(e["users"].values()) for e in report["experiments"]) > 0
    assert comparable_report(build_report(pg_url)) == report
    assert comparable_report(build_report(back)) == report
    # Ids were copied as they were; the store's next rows still get fresh ones.
    for location in (pg_url, str(back)):
        store = open_event_store(location)
        try:
            store.write_sync(WriteBatch(
                request_id="after-copy", user_key="u-new", request_status="ok",
                exposures=[Exposure("support-agent", "other-paid", True)],
                events=[EventRow("ai_cost_per_request", 1.0, None, None, None, None, None,
                                 False)]))
            assert store.get_request("req-1").trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
        finally:
            store.close()
    assert _counts(pg_url)["events"] == expected["events"] + 1


def test_a_non_empty_target_is_refused_and_left_alone(tmp_path: Path, capsys) -> None:
    source = make_store(tmp_path / "a.db", users=50)
    target = make_store(tmp_path / "b.db", users=20, seed=2)
    before = _counts(target)
    assert tool.main(["--from", str(source), "--to", str(target)]) == 2
    err = capsys.readouterr().err
    assert f"--to {target} is not empty" in err and f"events {before['events']:,}" in err
    assert _counts(target) == before


def test_a_non_empty_postgres_target_is_refused(tmp_path: Path, pg_url: str, capsys) -> None:
    source = make_store(tmp_path / "a.db", users=50)
    assert tool.main(["--from", str(source), "--to", pg_url]) == 0
    before = _counts(pg_url)
    assert tool.main(["--from", str(source), "--to", pg_url]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert _counts(pg_url) == before


@pytest.mark.parametrize(("flag", "value", "said"), [
    ("--from", "mysql://db.example/events", "unknown scheme 'mysql'"),
    ("--to", "sqlite://", "names no file"),
    ("--from", "missing/nowhere.db", "no SQLite store at that path"),
])
def test_bad_locations_are_named(tmp_path: Path, capsys, flag: str, value: str,
                                 said: str) -> None:
    good = str(make_store(tmp_path / "good.db", users=5))
    args = {"--from": good, "--to": str(tmp_path / "new.db")} | {flag: value}
    assert tool.main(["--from", args["--from"], "--to", args["--to"]]) == 2
    err = capsys.readouterr().err
    assert value in err and flag in err and said in err, err


def test_progress_and_the_per_table_counts_go_to_stderr(tmp_path: Path, capsys,
                                                       monkeypatch) -> None:
    monkeypatch.setattr(tool, "PROGRESS_EVERY_S", 0.0)  # a line per batch
    source = make_store(tmp_path / "a.db", users=100)
    events = _counts(source)["events"]
    assert tool.main(["--from", str(source), "--to", str(tmp_path / "b.db"),
                      "--batch-size", "100"]) == 0
    out = capsys.readouterr()
    assert out.out == ""
    assert f"copy_store: events: 500/{events:,} rows, " in out.err
    assert f"copy_store: events: {events:,} rows in " in out.err and "rows/s" in out.err
    assert "counts verified, committed" in out.err


def test_a_count_mismatch_rolls_everything_back(tmp_path: Path, capsys, monkeypatch) -> None:
    source = make_store(tmp_path / "a.db", users=30)
    target = tmp_path / "b.db"
    real = tool._batches

    def lose_a_row(src, table, columns, size):  # what a broken reader would do
        for rows in real(src, table, columns, size):
            yield rows[1:] if table == "events" else rows

    monkeypatch.setattr(tool, "_batches", lose_a_row)
    assert tool.main(["--from", str(source), "--to", str(target)]) == 1
    assert "row counts differ (events: source" in capsys.readouterr().err
    assert not any(_counts(target).values())  # not even the tables that matched


def test_a_failure_mid_copy_leaves_postgres_empty(tmp_path: Path, pg_url: str,
                                                  capsys) -> None:
    source = make_store(tmp_path / "a.db", users=30)
    with sqlite3.connect(source) as conn:  # SQLite keeps what PostgreSQL's types refuse
        conn.execute("UPDATE events SET ts = 'yesterday' WHERE id = (SELECT MAX(id) FROM events)")
    assert tool.main(["--from", str(source), "--to", pg_url]) == 1
    assert "nothing was committed" in capsys.readouterr().err
    assert not any(_counts(pg_url).values())


def test_a_failed_vacuum_after_the_commit_is_a_warning(tmp_path: Path, pg_url: str, capsys,
                                                      monkeypatch) -> None:
    """The rows are committed before VACUUM runs: its failure (a database that went away,
    a statement timeout) must not read as a failed copy."""
    from utils.telemetry import store_url

    source = make_store(tmp_path / "a.db", users=30)
    execute = store_url.PgConnection.execute

    def failing_vacuum(self, sql, params=()):
        if sql.startswith("VACUUM"):
            raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
        return execute(self, sql, params)

    monkeypatch.setattr(store_url.PgConnection, "execute", failing_vacuum)
    assert tool.main(["--from", str(source), "--to", pg_url]) == 0
    err = capsys.readouterr().err
    assert "warning: VACUUM (ANALYZE) requests failed (canceling statement" in err
    assert "the copy is committed" in err and "done: " in err
    monkeypatch.undo()
    assert _counts(pg_url) == _counts(source)


def _version_1_store(path: Path) -> Path:
    """A store as the first schema wrote it: no trace or tracker columns, no marked_runs."""
    with sqlite3.connect(path) as conn:
        conn.executescript(_MIGRATIONS[0])
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute("INSERT INTO requests VALUES ('r1', 1.0, 'u1', '{}', 0, 'ok', 1)")
        conn.execute("INSERT INTO exposures (ts, request_id, user_key, config_key, "
                     "variation_key, in_experiment, context_json) "
                     "VALUES (1.0, 'r1', 'u1', 'support-agent', 'other-paid', 1, '{}')")
        conn.execute("INSERT INTO events (ts, request_id, user_key, event_key, value) "
                     "VALUES (1.1, 'r1', 'u1', 'ai_cost_per_request', 0.25)")
    return path


@pytest.mark.parametrize("target_kind", ["sqlite", "postgresql"])
def test_a_store_of_an_older_schema_copies(tmp_path: Path, capsys, request,
                                           target_kind: str) -> None:
    source = _version_1_store(tmp_path / "v1.db")
    target = (request.getfixturevalue("pg_url") if target_kind == "postgresql"
              else str(tmp_path / "new.db"))
    assert tool.main(["--from", str(source), "--to", target]) == 0
    err = capsys.readouterr().err
    assert "requests: the source lacks trace_id, span_id" in err
    assert "marked_runs: absent from the source" in err
    assert _counts(target) == {"requests": 1, "exposures": 1, "events": 1, "feedback": 0,
                               "marked_runs": 0}
    store = open_event_store(target)
    try:
        record = store.get_request("r1")
        assert record is not None and record.trace_id is None and record.status == "ok"
        assert record.exposures[0]["variation_key"] == "other-paid"
    finally:
        store.close()
    assert comparable_report(build_report(target)) == comparable_report(build_report(source))


def test_help_explains_itself(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        tool.main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "--from" in out and "one transaction" in out.lower() and "postgresql://" in out
