"""Several API workers (`uvicorn --workers 2`) on one store, SQLite and PostgreSQL: under
concurrent chats and racing feedback, exactly the acknowledged rows, feedback counted once."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import ROOT
from tests.fakes.flagfile import standard_flags, write_flags
from tools.api_process import start_api

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
    api = start_api(env=env, workers=2)
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
