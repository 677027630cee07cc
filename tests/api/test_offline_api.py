"""The offline experiments' task diff and task runs over HTTP, for the UI's Offline tab."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.tools.test_offline_promote import FREE, offline, world  # noqa: F401 (a fixture)


@pytest.fixture
def client(capsys, world):  # noqa: F811
    from api.main import create_app

    offline(capsys, world, "ui", FREE, ("calls", "support-agent", "max_tool_calls=3"),
            ("mini", "support-agent", "model=claude-haiku-4-5", "calls"))
    with TestClient(create_app()) as client:
        yield client


def test_diff_of_two_variants_is_task_by_task_with_the_servers_comparison(client) -> None:
    document = client.get("/offline-experiments/ui").json()
    body = client.get("/offline-experiments/ui/diff", params={"a": "baseline", "b": "mini"})
    assert body.status_code == 200
    diff = body.json()
    assert (diff["a"], diff["b"], diff["repeats"]) == ("baseline", "mini", document["repeats"])
    assert [t["task_id"] for t in diff["tasks"]] == ["dqn", "ppo"]
    for row in diff["tasks"]:
        assert 0 <= row["a_passed"] <= diff["repeats"] and 0 <= row["b_passed"] <= diff["repeats"]
        assert row["differs"] == (row["a_passed"] != row["b_passed"])
    # The comparison is the one the show document carries (mini against its parent, calls).
    mini = next(v for v in document["variants"] if v["name"] == "mini")
    against_parent = client.get("/offline-experiments/ui/diff",
                                params={"a": "calls", "b": "mini"}).json()["comparison"]
    assert against_parent == mini["comparison"]


def test_diff_names_an_unknown_variant_and_a_missing_parameter(client) -> None:
    response = client.get("/offline-experiments/ui/diff", params={"a": "baseline", "b": "ghost"})
    assert response.status_code == 404 and "no variant 'ghost'" in response.json()["detail"]
    assert client.get("/offline-experiments/ui/diff", params={"a": "baseline"}).status_code == 422
    assert client.get("/offline-experiments/nope/diff",
                      params={"a": "baseline", "b": "calls"}).status_code == 404


def test_a_pending_variant_diffs_with_no_results_and_no_comparison(client) -> None:
    from tools.offline_experiment import main

    assert main(["variant", "ui", "later", "--step", "support-agent", "--set",
                 "max_tokens=64"]) == 0
    diff = client.get("/offline-experiments/ui/diff", params={"a": "calls", "b": "later"}).json()
    assert diff["comparison"] is None
    assert all(t["b_passed"] is None and not t["differs"] for t in diff["tasks"])


def test_task_runs_are_the_recorded_runs_of_that_task(client) -> None:
    body = client.get("/offline-experiments/ui/variants/calls/tasks/ppo/runs").json()
    assert body["task_id"] == "ppo" and body["variant"] == "calls"
    assert [r["repeat"] for r in body["runs"]] == list(range(len(body["runs"])))
    assert all(r["task_id"] == "ppo" and r["request_id"] and "checks" in r for r in body["runs"])
    missing = client.get("/offline-experiments/ui/variants/calls/tasks/nope/runs")
    assert missing.status_code == 404 and "no run of task 'nope'" in missing.json()["detail"]
    ghost = client.get("/offline-experiments/ui/variants/ghost/tasks/ppo/runs")
    assert ghost.status_code == 404 and "no variant 'ghost'" in ghost.json()["detail"]


def test_starting_a_run_needs_the_admin_token_a_known_key_and_an_allowed_run(
        capsys, world, monkeypatch) -> None:  # noqa: F811
    """Refusals answer before any process starts (tests/api/test_workers.py starts real runs)."""
    from api.main import create_app
    from tests.tools.test_offline_promote import cli
    from utils.settings import get_settings

    assert cli(capsys, "create", "starts", "--steps", "support-agent", "--tasks",
               str(world["tasks"]), "--context", FREE)[0] == 0
    monkeypatch.setenv("ADMIN_TOKEN", "t0ken")
    get_settings.cache_clear()
    admin = {"X-Admin-Token": "t0ken"}
    with TestClient(create_app()) as client:
        def start(key: str, headers=admin, **body):
            return client.post(f"/offline-experiments/{key}/runs", json=body, headers=headers)

        assert start("starts", headers={}).status_code == 403
        assert start("starts", headers={"X-Admin-Token": "wrong"}).status_code == 403
        missing = start("nope", variant="baseline")
        assert missing.status_code == 404 and "no offline experiment 'nope'" in missing.text
        ghost = start("starts", variant="ghost")
        assert ghost.status_code == 409 and "no variant 'ghost'" in ghost.json()["detail"]
        assert start("starts", variant="baseline", concurrency=0).status_code == 422
        assert start("starts", variant="baseline", extra=1).status_code == 422
