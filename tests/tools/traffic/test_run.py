"""A full traffic run against a small fake API on loopback: counts, feedback, log, summary."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
import time
import uuid

import pytest
import uvicorn
from fastapi import FastAPI, HTTPException

from tools.traffic.judge import JudgeResult
from tools.traffic.run import TrafficOptions, arun_traffic, run_traffic

KB_TEXT = ("Thompson sampling keeps a Beta posterior over each arm and pulls the arm with the "
           "highest sample.")


def make_fake_api(fail_every: int = 0) -> FastAPI:
    """/chat answers from a KB sentence; every `fail_every`-th call fails in turn as a 500 or
    as a 200 carrying an error body (the case the tutorial counted as a success)."""
    app = FastAPI()
    app.state.chats = []
    app.state.feedback = {}

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.post("/chat")
    async def chat(body: dict):
        app.state.chats.append(body)
        n = len(app.state.chats)
        if fail_every and n % fail_every == 0:
            if (n // fail_every) % 2:
                raise HTTPException(500, "provider failed")
            return {"error": "simulated provider error"}
        request_id = str(uuid.uuid4())
        return {"request_id": request_id, "response": f"{body['message']} {KB_TEXT}",
                "simulated": True, "agents": [], "totals": {}}

    @app.post("/feedback")
    async def feedback(body: dict):
        if body["request_id"] in app.state.feedback:
            return {"status": "duplicate"}
        app.state.feedback[body["request_id"]] = body
        return {"status": "recorded"}

    return app


class LoopbackServer:
    """Runs an ASGI app with uvicorn on a free loopback port in a background thread."""

    def __init__(self, app) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class AlternatingJudge:
    """positive, negative, none, failure in turn: every path of the feedback logic."""

    name = "alternating"

    def __init__(self) -> None:
        self.calls = 0
        self.seen: list[tuple[str, str]] = []

    async def judge(self, question: str, answer: str) -> JudgeResult:
        self.seen.append((question, answer))
        self.calls += 1
        kind = self.calls % 4
        if kind == 0:
            return JudgeResult("none", failed=True, error="judge timed out")
        return JudgeResult(("positive", "negative", "none")[kind - 1])


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    from utils.settings import get_settings

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OPENAI_API_KEY", "")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_every_query_is_sent_judged_and_its_feedback_posted(tmp_path):
    app = make_fake_api()
    judge = AlternatingJudge()
    with LoopbackServer(app) as url:
        summary = run_traffic(TrafficOptions(queries=24, concurrency=6, api_url=url, seed=3,
                                             pii_percentage=50, log_dir=tmp_path / "logs",
                                             show_progress=False), judge=judge)
    assert len(app.state.chats) == 24 == summary.sent == summary.successes
    assert summary.verdicts == {"positive": 6, "negative": 6, "none": 6}
    assert summary.judge_failures == 6
    assert len(app.state.feedback) == 12 == summary.feedback_posted["recorded"]
    kinds = sorted(f["kind"] for f in app.state.feedback.values())
    assert kinds == ["negative"] * 6 + ["positive"] * 6
    assert all(f["source"] == "simulated" for f in app.state.feedback.values())
    chat_users = {c["user_id"] for c in app.state.chats}
    assert len(chat_users) == 24  # default: one user per query
    for fb in app.state.feedback.values():
        assert fb["user_id"] in chat_users
    # The judge saw only the question and the answer text.
    assert all(isinstance(q, str) and isinstance(a, str) for q, a in judge.seen)


def test_error_bodies_and_non_200s_are_failures_by_kind(tmp_path):
    app = make_fake_api(fail_every=5)
    with LoopbackServer(app) as url:
        summary = run_traffic(TrafficOptions(queries=20, concurrency=1, api_url=url, seed=1,
                                             judge="simulated", log_dir=tmp_path,
                                             show_progress=False))
    assert summary.sent == 20 and summary.successes == 16
    assert summary.failures == {"http_500": 2, "error_body": 2}
    assert summary.exit_code == 0
    lines = "\n".join(summary.lines())
    assert "http_500: 2" in lines and "error_body: 2" in lines


def test_log_file_holds_a_line_per_query_and_the_summary(tmp_path):
    with LoopbackServer(make_fake_api()) as url:
        summary = run_traffic(TrafficOptions(queries=8, concurrency=4, api_url=url, seed=2,
                                             judge="simulated", log_dir=tmp_path / "logs",
                                             segment="mix", users=2, show_progress=False))
    assert summary.log_path is not None
    assert summary.log_path.parent == tmp_path / "logs"
    assert summary.log_path.name.startswith("concurrent_experiment_")
    text = summary.log_path.read_text(encoding="utf-8")
    assert sum(1 for line in text.splitlines() if "/8] OK" in line) == 8
    assert "Summary: concurrent run, segment mix" in text and "judge failures" in text


def test_piped_output_prints_progress_lines_and_every_failure_not_a_line_per_query(tmp_path):
    import io

    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=120)  # not a terminal: what `make demo > file` sees
    with LoopbackServer(make_fake_api(fail_every=25)) as url:
        summary = run_traffic(TrafficOptions(queries=200, concurrency=8, api_url=url, seed=5,
                                             judge="simulated", log_dir=tmp_path / "logs",
                                             show_progress=False), console=console)
    lines = out.getvalue().splitlines()
    progress = [line for line in lines if line.startswith("progress ")]
    failures = [line for line in lines if "/200] " in line]
    assert summary.sent == 200 and len(failures) == 200 - summary.successes == 8
    assert all("HTTP_500" in line or "ERROR_BODY" in line for line in failures)
    assert 10 <= len(progress) <= 12, progress  # a tenth of the run each, and the end
    assert progress[-1].startswith("progress 200/200 (100%): 192 ok, 8 failed")
    # The log file still has one line per query.
    text = summary.log_path.read_text(encoding="utf-8")
    assert sum(1 for line in text.splitlines() if "/200] " in line) == 200


def test_a_terminal_gets_a_line_per_query(tmp_path):
    import io

    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True)
    with LoopbackServer(make_fake_api()) as url:
        run_traffic(TrafficOptions(queries=12, concurrency=4, api_url=url, seed=5,
                                   judge="simulated", log_dir=tmp_path / "logs",
                                   show_progress=False), console=console)
    assert out.getvalue().count("/12] OK") == 12


def test_users_flag_sets_how_many_queries_each_user_sends(tmp_path):
    app = make_fake_api()
    with LoopbackServer(app) as url:
        run_traffic(TrafficOptions(queries=12, concurrency=3, api_url=url, seed=5, users=3,
                                   feedback=False, log_dir=tmp_path, show_progress=False,
                                   segment="eu-paid"))
    per_user: dict[str, int] = {}
    for chat in app.state.chats:
        per_user[chat["user_id"]] = per_user.get(chat["user_id"], 0) + 1
        assert chat["user_context"]["plan"] == "paid"
    assert sorted(per_user.values()) == [4, 4, 4]


def test_sequential_mode_sends_in_order_with_the_delay(tmp_path):
    app = make_fake_api()
    with LoopbackServer(app) as url:
        started = time.perf_counter()
        summary = run_traffic(TrafficOptions(queries=4, mode="sequential", delay=0.1,
                                             api_url=url, seed=8, feedback=False,
                                             log_dir=tmp_path, show_progress=False))
        elapsed = time.perf_counter() - started
    assert summary.sent == 4 and elapsed >= 0.3  # three pauses between four queries
    assert summary.log_path.name.startswith("sequential_experiment_")
    assert [r.index for r in summary.results] == [0, 1, 2, 3]


async def test_stopping_sends_no_new_requests_and_keeps_the_partial_summary(tmp_path):
    app = FastAPI()
    app.state.chats = 0

    @app.get("/health")
    async def health():
        return {}

    @app.post("/chat")
    async def chat(body: dict):
        app.state.chats += 1
        await asyncio.sleep(0.2)
        return {"request_id": str(app.state.chats), "response": "ok", "simulated": True}

    with LoopbackServer(app) as url:
        options = TrafficOptions(queries=50, concurrency=2, api_url=url, seed=1,
                                 feedback=False, log_dir=tmp_path, show_progress=False)
        task = asyncio.create_task(arun_traffic(options))
        await asyncio.sleep(0.5)
        # What the Ctrl-C handler does: stop new requests, let those in flight finish.
        os.kill(os.getpid(), signal.SIGINT)
        summary = await task
    assert summary.interrupted and summary.exit_code == 130
    assert 0 < summary.sent < 50 and summary.sent == app.state.chats
    assert "Partial summary" in "\n".join(summary.lines())


# --- the real app -----------------------------------------------------------------------------

@pytest.fixture
def real_app(tmp_path, monkeypatch):
    """The real `api.main` app over a fresh DATA_DIR with bootstrapped local flags, offline."""
    from utils.settings import get_settings

    monkeypatch.setenv("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    monkeypatch.setenv("SIM_TIME_SCALE", "0")
    monkeypatch.setenv("LLM_MODE", "simulated")
    for key in ("MISTRAL_API_KEY", "LD_SDK_KEY", "LD_API_KEY"):
        monkeypatch.setenv(key, "")
    get_settings.cache_clear()
    from api.main import create_app
    from bootstrap.create_configs import main as create_configs

    assert create_configs([]) == 0
    return create_app(), get_settings().events_db


@pytest.mark.slow
def test_a_run_against_the_real_app_matches_the_event_store(real_app, tmp_path):
    app, events_db = real_app
    with LoopbackServer(app) as url:
        summary = run_traffic(TrafficOptions(queries=30, concurrency=5, api_url=url, seed=7,
                                             pii_percentage=50, segment="mix",
                                             judge="simulated", log_dir=tmp_path / "logs",
                                             show_progress=False))
    assert summary.sent == 30 and summary.successes == 30, summary.failures
    assert summary.simulated_responses == 30
    with sqlite3.connect(events_db) as conn:
        requests = {r for (r,) in conn.execute("SELECT request_id FROM requests")}
        feedback = dict(conn.execute("SELECT kind, COUNT(*) FROM feedback GROUP BY kind"))
        sources = {s for (s,) in conn.execute("SELECT DISTINCT source FROM feedback")}
    assert requests == set(summary.request_ids)
    verdicts = summary.verdicts
    assert feedback.get("positive", 0) == verdicts.get("positive", 0)
    assert feedback.get("negative", 0) == verdicts.get("negative", 0)
    assert sum(feedback.values()) == summary.feedback_posted.get("recorded", 0)
    assert sources <= {"simulated"}
    assert summary.log_path.exists()


@pytest.mark.slow
def test_the_same_seed_gives_the_same_feedback_and_cost_per_user(real_app, tmp_path,
                                                                  monkeypatch):
    """Two runs with one seed, concurrency 8, on fresh stores: each user's feedback and cost
    are identical (latency is measured CPU time, so it may differ; see the README)."""
    from api.main import create_app
    from bootstrap.create_configs import main as create_configs
    from utils.settings import get_settings
    from utils.telemetry.metrics import COST_PER_REQUEST

    def one_run(app, events_db, name: str) -> dict:
        with LoopbackServer(app) as url:
            summary = run_traffic(TrafficOptions(
                queries=60, concurrency=8, api_url=url, seed=11, pii_percentage=40,
                judge="simulated", log_dir=tmp_path / name, show_progress=False))
        assert summary.successes == 60, summary.failures
        with sqlite3.connect(events_db) as conn:
            feedback = sorted(conn.execute(
                "SELECT r.user_key, f.kind FROM feedback f JOIN requests r USING (request_id)"))
            cost = sorted((u, round(v, 9)) for u, v in conn.execute(
                "SELECT user_key, SUM(value) FROM events WHERE event_key = ? GROUP BY user_key",
                (COST_PER_REQUEST,)))
        return {"feedback": feedback, "cost": cost}

    first = one_run(*real_app, "first")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "second-data"))
    get_settings.cache_clear()
    assert create_configs([]) == 0
    second = one_run(create_app(), get_settings().events_db, "second")
    assert first["feedback"] and len(first["cost"]) == 60
    assert first == second
