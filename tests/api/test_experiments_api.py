"""GET /experiments, /experiments/{key}/results and /report on a tiny app."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.routes.experiments import router
from tests.fakes.event_store import make_store
from utils.experiments.definitions import load_experiments
from utils.settings import get_settings


@pytest.fixture()
def client_for(monkeypatch):
    def make(db: Path) -> TestClient:
        monkeypatch.setenv("EVENTS_DB", str(db))
        get_settings.cache_clear()
        app = FastAPI()
        app.state.settings = get_settings()
        app.include_router(router)
        return TestClient(app)

    yield make
    get_settings.cache_clear()


def test_list_shows_both_experiments_with_verdicts(tmp_path, client_for):
    client = client_for(make_store(tmp_path / "e.db", users=300))
    body = client.get("/experiments").json()
    assert body["simulated"] is True
    keys = {e["key"]: e for e in body["experiments"]}
    assert set(keys) == {e.key for e in load_experiments()}  # every experiment in the file
    assert {"security-level", "premium-model-value", "security-routing"} <= set(keys)
    assert sum(keys["premium-model-value"]["users"].values()) == 300
    # No planted effect: strict security has not shown less PII, so it cannot ship yet.
    assert keys["security-level"]["outcome"] == "NEED_MORE_DATA", keys["security-level"]
    # 150 per arm is an interim look of the premium plan: `otherwise: keep_control` waits for
    # the final look, so no early KEEP without a decisive failure.
    assert keys["premium-model-value"]["outcome"] == "NEED_MORE_DATA", keys["premium-model-value"]
    assert keys["premium-model-value"]["variation"] is None
    assert "interim look" in keys["premium-model-value"]["summary"]


def test_results_use_the_report_json_schema(tmp_path, client_for):
    client = client_for(make_store(tmp_path / "e.db", users=300))
    body = client.get("/experiments/premium-model-value/results").json()
    (exp,) = body["experiments"]
    assert exp["key"] == "premium-model-value"
    assert {"metrics", "criteria", "verdict", "users", "srm_p_value"} <= set(exp)
    # Each criterion carries its sentence, the one wording the UI, HTML and terminal show.
    words = [c["in_words"] for c in exp["criteria"]]
    assert words[0].startswith("Positive feedback rate rises by at least 15%: observed "), words
    assert all(re.search(r"(sure|not enough data yet)", w) for w in words), words


def test_report_is_html_with_charts(tmp_path, client_for):
    client = client_for(make_store(tmp_path / "e.db", users=300))
    resp = client.get("/experiments/security-level/report")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert "<svg" in resp.text and "Security Level" in resp.text


def test_unknown_key_is_a_404_naming_it(tmp_path, client_for):
    client = client_for(tmp_path / "none.db")
    for path in ("/experiments/nope/results", "/experiments/nope/report"):
        resp = client.get(path)
        assert resp.status_code == 404
        assert "'nope'" in resp.json()["detail"]


def test_missing_store_gives_zero_users_not_a_500(tmp_path, client_for):
    client = client_for(tmp_path / "none.db")
    resp = client.get("/experiments/security-level/results")
    assert resp.status_code == 200
    (exp,) = resp.json()["experiments"]
    assert sum(exp["users"].values()) == 0
    assert exp["verdict"]["outcome"] == "NEED_MORE_DATA"


def test_the_list_is_the_experiments_file_in_service_as_the_report_reads_it(
        tmp_path, client_for, monkeypatch):
    # What `tools.demo --experiments security-routing` serves: its subset, not every definition.
    from tools.demo import write_experiments_subset
    from utils.experiments.verdicts import build_report

    subset = write_experiments_subset(["security-routing"], tmp_path / "experiments.yaml")
    monkeypatch.setenv("EXPERIMENTS_FILE", str(subset))
    store = make_store(tmp_path / "e.db", users=300)
    client = client_for(store)
    listed = [e["key"] for e in client.get("/experiments").json()["experiments"]]
    reported = [r.experiment.key for r in build_report(store, load_experiments(subset))
                .experiments]
    assert listed == reported == ["security-routing"]
    assert client.get("/experiments/security-level/results").status_code == 404
