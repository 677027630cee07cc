"""Several API workers (`uvicorn --workers 2`) on one store, SQLite and PostgreSQL: under
concurrent chats and racing feedback, exactly the acknowledged rows, feedback counted once.
Each worker serves a flag-file edit within the reload interval; an offline run started through
either worker is claimed once, and every worker reports the same progress and results."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import ROOT
from tests.fakes.flagfile import standard_flags, write_flags
from tools.api_process import start_api
from utils.flags.client import FLAG_POLL_INTERVAL_S

_SECRETS = ("LD_SDK_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY",
            "MISTRAL_API_KEY", "ADMIN_TOKEN", "PRICING_OVERRIDES_PATH", "EVENTS_URL")
CHATS, CONCURRENCY = 40, 10
TABLES = ("requests", "feedback")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {"EVENTS_URL": f"sqlite:///{tmp_path / 'events.db'}",
               "EVENTS_DB": str(tmp_path / "ignored.db")}  # EVENTS_URL wins
    else:
        yield {"EVENTS_URL": request.getfixturevalue("pg_url"), "EVENTS_POOL_SIZE": "3"}


def _count(url: str) -> dict[str, int]:
    sql = {t: f"SELECT COUNT(*), COUNT(DISTINCT request_id) FROM {t}" for t in TABLES}
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return {t: tuple(conn.execute(q).fetchone()) for t, q in sql.items()}  # type: ignore
    with psycopg.connect(url) as conn:
        return {t: tuple(conn.execute(q).fetchone()) for t, q in sql.items()}  # type: ignore


def test_two_workers_write_exactly_the_acknowledged_rows(
        tmp_path: Path, shared_data_dir: Path, store_env: dict[str, str]) -> None:
    flags = tmp_path / "flags.json"
    write_flags(flags, standard_flags())
    env = {k: v for k, v in os.environ.items() if k not in _SECRETS}
    env.update(DATA_DIR=str(shared_data_dir), LOCAL_FLAGS_PATH=str(flags), LLM_MODE="simulated",
               SIM_TIME_SCALE="0", KB_DIR=str(ROOT / "kb"),
               TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS="", **store_env)
    api = start_api(env=env, workers=2, timeout=180)
    try:
        with httpx.Client(base_url=api.url, timeout=60) as client:
            def chat(i: int) -> tuple[str, str]:
                user = f"worker-user-{i % 13}"
                r = client.post("/chat", json={"user_id": user, "message": f"How do I reset "
                                               f"my password? ({i})",
                                               "user_context": {"country": "US"}})
                assert r.status_code == 200, r.text
                return r.json()["request_id"], user

            def feedback(job: tuple[str, str]) -> str:
                r = client.post("/feedback", json={"request_id": job[0], "user_id": job[1],
                                                   "kind": "positive"})
                assert r.status_code == 200, r.text
                return r.json()["status"]

            with ThreadPoolExecutor(CONCURRENCY) as pool:
                done = list(pool.map(chat, range(CHATS)))
                # Each feedback sent 3 times at once: the workers race on the same key.
                statuses = list(pool.map(feedback, [job for job in done for _ in range(3)]))
            assert client.get("/health").json()["status"] == "ok"
    finally:
        api.stop()
    assert len({rid for rid, _ in done}) == CHATS
    assert statuses.count("recorded") == CHATS and statuses.count("duplicate") == 2 * CHATS
    assert _count(store_env["EVENTS_URL"]) == {"requests": (CHATS, CHATS),
                                               "feedback": (CHATS, CHATS)}


# -- the flags file and the offline-experiment state, whichever worker answers ---------------

ADMIN = "workers-admin-token"


def _two_workers(tmp_path: Path, data_dir: Path,
                 **extra: str) -> tuple[Any, Path, dict[str, str]]:
    """`uvicorn --workers 2` on SQLite, with a flag file in `tmp_path`, once both answer;
    (the server, the flag file, its environment)."""
    flags = tmp_path / "flags.json"
    write_flags(flags, standard_flags())
    env = {k: v for k, v in os.environ.items() if k not in _SECRETS}
    env.update(DATA_DIR=str(data_dir), LOCAL_FLAGS_PATH=str(flags), LLM_MODE="simulated",
               SIM_TIME_SCALE="0", KB_DIR=str(ROOT / "kb"), TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS="",
               EVENTS_URL=f"sqlite:///{tmp_path / 'events.db'}", **extra)
    api = start_api(env=env, workers=2, timeout=180)  # the first start builds the indexes
    try:
        _pids_answering(api.url)
    except BaseException:
        api.stop()
        raise
    return api, flags, env


def _get(url: str, path: str, **kwargs: Any) -> httpx.Response:
    """A request on a connection of its own: the kernel hands each to either worker (a kept-
    alive connection would stay with one)."""
    response = httpx.get(url + path, timeout=30, headers={"Connection": "close"}, **kwargs)
    assert response.status_code == 200, response.text
    return response


def _pids_answering(url: str, timeout: float = 90) -> set[int]:
    pids: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(pids) < 2:
        assert time.monotonic() < deadline, f"only worker(s) {pids} answered within {timeout} s"
        health = _get(url, "/health")
        assert health.headers["x-worker-pid"] == str(health.json()["pid"])
        pids.add(health.json()["pid"])
    return pids


def _support_model(response: httpx.Response) -> str:
    return response.json()["served"]["us-paid"]["support-agent"]["model"]


def test_a_flag_file_edit_is_served_by_every_worker_within_the_reload_interval(
        tmp_path: Path, shared_data_dir: Path) -> None:
    api, flags, _ = _two_workers(tmp_path, shared_data_dir)
    try:
        pids = _pids_answering(api.url)
        assert {_support_model(_get(api.url, "/configs")) for _ in range(6)} == {"gpt-4o"}
        data = standard_flags()
        paid = data["flags"]["support-agent"]["variations"][4]
        assert paid["_ldMeta"]["variationKey"] == "other-paid"
        paid["model"]["name"] = "gpt-4o-mini"
        written = time.monotonic()
        write_flags(flags, data)
        served_new: dict[int, float] = {}  # worker -> seconds until it served the edit
        while set(served_new) != pids:
            assert time.monotonic() - written < 10, f"only {sorted(served_new)} of {pids}"
            response = _get(api.url, "/configs")
            pid, model = int(response.headers["x-worker-pid"]), _support_model(response)
            if model == "gpt-4o-mini":
                served_new.setdefault(pid, time.monotonic() - written)
            else:  # a worker that served the edit never goes back to the old value
                assert pid not in served_new, f"worker {pid} served {model} again"
        # The file watcher polls every FLAG_POLL_INTERVAL_S and the SDK's own file poller half
        # that: each worker serves an edit within about one interval (plus a loaded machine).
        assert max(served_new.values()) < FLAG_POLL_INTERVAL_S + 2.0, served_new
        # Chats (on pooled connections, so both workers) are all served the new model.
        with httpx.Client(base_url=api.url, timeout=60) as client, ThreadPoolExecutor(8) as pool:
            models = list(pool.map(lambda i: next(
                a["model"] for a in client.post("/chat", json={
                    "user_id": f"reload-{i}", "message": "How do I reset my password?",
                    "user_context": {"country": "US", "plan": "paid"}}).json()["agents"]
                if a["agent"] == "support"), range(24)))
        assert set(models) == {"gpt-4o-mini"}
        # A broken edit is refused by every worker: each keeps the last valid version and says so.
        flags.write_text('{"flags": ')
        refused: set[int] = set()
        deadline = time.monotonic() + 10
        while refused != pids:
            assert time.monotonic() < deadline, f"only {sorted(refused)} said degraded"
            health = _get(api.url, "/health").json()
            if health["status"] == "degraded" and any("not valid JSON" in r
                                                       for r in health["reasons"]):
                refused.add(health["pid"])
        assert {_support_model(_get(api.url, "/configs")) for _ in range(6)} == {"gpt-4o-mini"}
    finally:
        api.stop()
    print(f"flag edit served after (s): {served_new}")  # shown with -s


def _post_run(url: str, key: str, variant: str) -> httpx.Response:
    return httpx.post(f"{url}/offline-experiments/{key}/runs",
                      json={"variant": variant, "concurrency": 1}, timeout=180,
                      headers={"X-Admin-Token": ADMIN, "Connection": "close"})


def _watch(url: str, key: str, until: Callable[[dict[str, Any]], bool],
           timeout: float = 240) -> list[tuple[int, dict[str, Any]]]:
    """(worker pid, document) of GET /offline-experiments/KEY until `until(document)`."""
    seen: list[tuple[int, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    while not seen or not until(seen[-1][1]):
        assert time.monotonic() < deadline, seen[-1][1]["status"] if seen else "no answer"
        response = _get(url, f"/offline-experiments/{key}")
        seen.append((int(response.headers["x-worker-pid"]), response.json()))
        time.sleep(0.05)
    return seen


def test_an_offline_run_is_started_once_and_seen_alike_by_every_worker(
        tmp_path: Path, shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    from tools.offline_experiment import main
    from utils.settings import get_settings

    key = f"workers-{uuid.uuid4().hex[:8]}"
    api, _, env = _two_workers(tmp_path, shared_data_dir, ADMIN_TOKEN=ADMIN)
    for name in ("DATA_DIR", "LOCAL_FLAGS_PATH", "EVENTS_URL"):  # the servers' state, here
        monkeypatch.setenv(name, env[name])
    get_settings.cache_clear()

    def cli(*args: str) -> None:  # in this process: the servers only share its files
        assert main(list(args)) == 0

    try:
        pids = _pids_answering(api.url)
        cli("create", key, "--steps", "support-agent", "--tasks",
            str(ROOT / "kb" / "tasks" / "default.jsonl"), "--repeats", "3")
        # Four starts at once, on connections of their own (so both workers are asked).
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: _post_run(api.url, key, "baseline"), range(4)))
        assert sorted(a.status_code for a in answers) == [202] + [409] * 3, \
            [(a.status_code, a.text) for a in answers]
        started = next(a.json() for a in answers if a.status_code == 202)
        for refused in (a for a in answers if a.status_code == 409):
            detail = refused.json()["detail"]  # (a start that lost late finds the run done)
            assert key in detail and ("is running_baseline" in detail
                                      or "has run and is locked" in detail), detail
        t_run = time.monotonic()
        seen = _watch(api.url, key, lambda d: d["status"] == "baseline_complete")
        print(f"baseline of {70 * 3} task runs: {time.monotonic() - t_run:.1f} s, "
              f"{len(seen)} polls")
        running = [(pid, d["running"]) for pid, d in seen if d["status"] == "running_baseline"]
        # Every worker saw the same run (its process, its progress), progress never went back.
        assert {pid for pid, _ in running} == pids, "a worker never saw the run in progress"
        assert {r["pid"] for _, r in running} == {started["pid"]}
        done = [r["done"] for _, r in running]
        assert done == sorted(done) and running[-1][1]["total"] == 70 * 3
        assert any(0 < d < 70 * 3 for d in done), "no progress was reported mid-run"
        finished = {}
        while set(finished) != pids:  # the finished document, from each worker
            response = _get(api.url, f"/offline-experiments/{key}")
            finished[int(response.headers["x-worker-pid"])] = response.json()
        first, second = finished.values()
        assert first == second and first["running"] is None
        baseline = first["variants"][0]
        assert baseline["status"] == "complete" and baseline["tasks"]["total"] == 70 * 3
        again = _post_run(api.url, key, "baseline")
        assert again.status_code == 409 and "has run and is locked" in again.json()["detail"]

        # A run whose process dies is reported failed by whichever worker is asked next.
        cli("variant", key, "short", "--step", "support-agent", "--set", "max_tokens=64")
        variant = _post_run(api.url, key, "short")
        assert variant.status_code == 202, variant.text
        _watch(api.url, key, lambda d: (d["running"] or {}).get("done", 0) > 0)
        os.kill(variant.json()["pid"], signal.SIGKILL)  # the run's process, started above
        after = _watch(api.url, key, lambda d: d["status"] == "idle", timeout=30)[-1][1]
        short = next(v for v in after["variants"] if v["name"] == "short")
        assert short["status"] == "failed" and "interrupted" in short["failure"]
    finally:
        api.stop()
    with sqlite3.connect(tmp_path / "events.db") as conn:
        marked = conn.execute("SELECT variant, COUNT(*), COUNT(DISTINCT request_id) FROM "
                              "marked_runs WHERE experiment = ? GROUP BY variant",
                              (key,)).fetchall()
    # One run of the baseline, not four: exactly its task runs were recorded.
    assert dict((v, (n, d)) for v, n, d in marked)["baseline"] == (70 * 3, 70 * 3)
