"""POST /feedback: attributed to the request's variations, once; admin endpoints guarded."""

from __future__ import annotations

import sqlite3

from utils.settings import get_settings
from utils.telemetry import metrics

US_PAID = {"country": "US", "plan": "paid"}


def _chat(client, user_id: str = "fb-user", message: str = "What is Q-learning?") -> dict:
    return client.post("/chat", json={"user_id": user_id, "message": message,
                                      "user_context": US_PAID}).json()


def _rows(sql: str, *params):
    with sqlite3.connect(get_settings().events_db) as conn:
        return conn.execute(sql, params).fetchall()


def test_feedback_is_counted_once_for_each_served_variation(client) -> None:
    chat = _chat(client)
    body = {"request_id": chat["request_id"], "user_id": "fb-user", "kind": "positive",
            "source": "simulated"}
    assert client.post("/feedback", json=body).json()["status"] == "recorded"
    assert client.post("/feedback", json=body).json()["status"] == "duplicate"
    assert client.post("/feedback", json={**body, "kind": "negative"}).json()["status"] == \
        "duplicate"
    rows = _rows("SELECT config_key, variation_key FROM events WHERE event_key = ? AND "
                 "request_id = ?", metrics.FEEDBACK_POSITIVE, chat["request_id"])
    served = [(r["config_key"], r["variation_key"]) for r in chat["agents"]]
    served.append(("support-assistant-graph", chat["graph"]["variation_key"]))  # the topology
    assert sorted(rows) == sorted(served)
    assert _rows("SELECT COUNT(*) FROM events WHERE event_key = ?",
                 metrics.FEEDBACK_NEGATIVE) == [(0,)]


def test_feedback_for_unknown_request_is_404(client) -> None:
    response = client.post("/feedback", json={"request_id": "nope", "user_id": "x",
                                              "kind": "positive"})
    assert response.status_code == 404 and "nope" in response.json()["detail"]


def test_feedback_from_another_user_is_422(client) -> None:
    chat = _chat(client, user_id="owner")
    response = client.post("/feedback", json={"request_id": chat["request_id"],
                                              "user_id": "intruder", "kind": "negative"})
    assert response.status_code == 422


def test_every_agent_run_is_recorded_with_duration_tokens_and_cost(client) -> None:
    chat = _chat(client, message="My phone is +1 415 555 0134, what is TD(0)?")
    keys = {metrics.DURATION_TOTAL, metrics.TOKENS_TOTAL, metrics.COST_PER_REQUEST,
            metrics.GENERATION_SUCCESS}
    for run in chat["agents"]:
        recorded = {row[0] for row in _rows(
            "SELECT event_key FROM events WHERE request_id = ? AND agent = ?",
            chat["request_id"], run["agent"])}
        assert keys <= recorded, run["agent"]
    exposures = _rows("SELECT config_key FROM exposures WHERE request_id = ?",
                      chat["request_id"])
    assert sorted(e[0] for e in exposures) == ["security-agent", "supervisor-agent",
                                                "support-agent", "support-assistant-graph"]
    pii_rows = _rows("SELECT value FROM events WHERE request_id = ? AND event_key = ?",
                     chat["request_id"], metrics.PII_EXPOSED_ENTITIES)
    assert pii_rows == [(0.0,)]
    assert not _rows("SELECT 1 FROM events e JOIN requests r USING (request_id) WHERE "
                     "r.context_json LIKE '%415 555%'")


def test_admin_endpoints_refuse_without_token(client, monkeypatch) -> None:
    assert client.post("/admin/flush").status_code == 403
    assert client.get("/admin/store").status_code == 403


def test_admin_endpoints_work_with_the_token(flags_file, monkeypatch) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app

    monkeypatch.setenv("ADMIN_TOKEN", "s3cret")
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        assert client.get("/admin/store", headers={"X-Admin-Token": "wrong"}).status_code == 403
        ok = client.get("/admin/store", headers={"X-Admin-Token": "s3cret"})
        assert ok.status_code == 200 and "tables" in ok.json()
        assert client.post("/admin/flush", headers={"X-Admin-Token": "s3cret"}).json()["flushed"]
        assert "s3cret" not in client.get("/health").text
