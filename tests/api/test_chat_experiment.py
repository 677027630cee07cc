"""POST /chat with an `experiment` payload: admin only, overrides per step, runs marked."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from utils.settings import get_settings

US_PAID = {"country": "US", "plan": "paid"}
TOKEN = "harness-s3cret"
PAYLOAD = {"id": "harness-1", "variant": "mini",
           "overrides": {"support-agent": {"model": "gpt-4o-mini", "tools": ["search_v1"]}}}


@pytest.fixture
def admin_client(flags_file, monkeypatch):
    monkeypatch.setenv("ADMIN_TOKEN", TOKEN)
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        yield client
    get_settings.cache_clear()


def _body(**extra):
    return {"user_id": "harness-user", "message": "How does PPO clipping work?",
            "user_context": US_PAID, **extra}


def test_overrides_apply_per_step_and_the_run_is_marked(admin_client) -> None:
    plain = admin_client.post("/chat", json=_body()).json()
    response = admin_client.post("/chat", json=_body(experiment=PAYLOAD),
                                 headers={"X-Admin-Token": TOKEN})
    assert response.status_code == 200, response.text
    data = response.json()
    support = next(a for a in data["agents"] if a["agent"] == "support")
    assert support["model"] == "gpt-4o-mini"
    assert set(support["tools_used"]) <= {"search_v1"}
    assert support["variation_key"] == "other-paid@harness-1/mini"
    assert not any(a["in_experiment"] for a in data["agents"])
    supervisor = next(a for a in data["agents"] if a["agent"] == "supervisor")
    assert supervisor["variation_key"] == "supervisor-basic"  # steps not named are untouched

    store = admin_client.app.state.service.store
    marks = [tuple(r) for r in store.query(
        "SELECT request_id, experiment, variant, task_id, source FROM marked_runs")]
    assert marks == [(data["request_id"], "harness-1", "mini", None, "api")]
    assert plain["request_id"] not in {m[0] for m in marks}


def test_the_experiment_field_needs_the_admin_token(admin_client) -> None:
    no_token = admin_client.post("/chat", json=_body(experiment=PAYLOAD))
    assert no_token.status_code == 401 and "X-Admin-Token" in no_token.text
    wrong = admin_client.post("/chat", json=_body(experiment=PAYLOAD),
                              headers={"X-Admin-Token": TOKEN + "x"})
    assert wrong.status_code == 403
    # A plain request needs no token, and a refused one recorded nothing.
    assert admin_client.post("/chat", json=_body()).status_code == 200
    store = admin_client.app.state.service.store
    assert store.summary()["tables"]["marked_runs"] == 0


def test_disabled_without_an_admin_token_configured(client) -> None:
    response = client.post("/chat", json=_body(experiment=PAYLOAD),
                           headers={"X-Admin-Token": "anything"})
    assert response.status_code == 403 and "ADMIN_TOKEN" in response.text


@pytest.mark.parametrize("experiment, needle", [
    ({**PAYLOAD, "overrides": {"support-agent": {"pii_policy": "strict"}}}, "pii_policy"),
    ({**PAYLOAD, "overrides": {"nope-agent": {"model": "gpt-4o"}}}, "unknown step"),
    ({**PAYLOAD, "overrides": {"support-agent": {"temperature": 9}}}, "temperature"),
    ({**PAYLOAD, "overrides": {"support-agent": {"tools": ["rm_rf"]}}}, "rm_rf"),
    ({**PAYLOAD, "overrides": {"support-agent": "gpt-4o"}}, "support-agent"),
    ({**PAYLOAD, "overrides": ["support-agent"]}, "overrides"),
    ({**PAYLOAD, "id": "../etc"}, "id"),
    ({**PAYLOAD, "surprise": 1}, "surprise"),
    ({"variant": "v", "overrides": {}}, "id"),
])
def test_malformed_payloads_are_refused_naming_the_problem(admin_client, experiment,
                                                          needle) -> None:
    response = admin_client.post("/chat", json=_body(experiment=experiment),
                                 headers={"X-Admin-Token": TOKEN})
    assert response.status_code == 422
    assert needle in response.text
