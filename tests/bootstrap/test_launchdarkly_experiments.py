"""Metrics, experiments, iterations, model configs and served values against the REST fake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap import create_configs, experiment_variations, promote
from bootstrap.launchdarkly_client import LaunchDarklyClient, LaunchDarklyError
from bootstrap.launchdarkly_experiments import metric_payload
from tests.fakes.launchdarkly import FakeLaunchDarkly
from utils.experiments.definitions import find_experiment, load_experiments
from utils.telemetry.metrics import METRICS

API_KEY = "api-test-key"


def _serve(monkeypatch: pytest.MonkeyPatch, server: FakeLaunchDarkly, data_dir: Path) -> None:
    monkeypatch.setenv("LD_API_KEY", API_KEY)
    monkeypatch.setenv("LD_API_BASE_URL", server.base_url)
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    from utils.settings import get_settings

    get_settings.cache_clear()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeLaunchDarkly]:
    with FakeLaunchDarkly(api_key=API_KEY, page_size=2) as server:  # small pages: paginate
        _serve(monkeypatch, server, tmp_path)
        yield server


def _bootstrap(*extra: str) -> None:
    assert create_configs.main([]) == 0
    assert experiment_variations.main(list(extra)) == 0


def test_metrics_carry_kind_aggregation_analysis_and_success_criterion(fake) -> None:
    _bootstrap()
    m = fake.metrics
    assert m["positive_feedback_rate"]["isNumeric"] is False
    assert m["positive_feedback_rate"]["eventKey"] == "$ld:ai:feedback:user:positive"
    assert m["positive_feedback_rate"]["successCriteria"] == "HigherThanBaseline"
    assert m["negative_feedback_rate"]["successCriteria"] == "LowerThanBaseline"
    latency = m["p95_total_user_latency"]
    assert (latency["isNumeric"], latency["unitAggregationType"], latency["analysisType"],
            latency["percentileValue"], latency["unit"]) == (True, "sum", "percentile", 95, "ms")
    assert latency["eventDefault"] == {"disabled": True}
    cost = m["ai_cost_per_request"]
    assert (cost["analysisType"], cost["unit"], cost["successCriteria"]) == (
        "mean", "USD", "LowerThanBaseline")
    assert cost["eventDefault"] == {"disabled": False, "value": 0}
    assert {k: v["kind"] for k, v in m.items()} == {k: "custom" for k in METRICS}
    assert all(v["randomizationUnits"] == ["user"] for v in m.values())
    # a second run reads every list page by page (pages of 2) and creates nothing twice
    writes = len(fake.writes())
    assert experiment_variations.main([]) == 0
    assert len(fake.writes()) == writes
    pages = [r.path for r in fake.requests if r.path.startswith("/api/v2/metrics/")]
    assert any("offset=4" in p for p in pages)


def test_experiment_iteration_has_treatments_rule_metrics_and_unit(fake) -> None:
    _bootstrap()
    exp = find_experiment(load_experiments(), "premium-model-value")
    draft = fake.experiments[exp.key]["draftIteration"]
    assert draft["status"] == "not_started" and draft["randomizationUnit"] == "user"
    assert draft["primarySingleMetric"] == {"key": "positive_feedback_rate"}
    assert [m["key"] for m in draft["metrics"]] == exp.metrics
    names = {t["name"]: t for t in draft["treatments"]}
    assert set(names) == {"other-paid", "claude-opus-treatment"}
    assert names["other-paid"]["baseline"] and not names["claude-opus-treatment"]["baseline"]
    assert names["other-paid"]["allocationPercent"] == "50"
    keys = fake.targeting_keys("support-agent")
    ids = [v["_id"] for v in fake._targeting_variations("support-agent")]
    (param,) = names["claude-opus-treatment"]["parameters"]
    assert param["flagKey"] == "support-agent"
    assert keys[ids.index(param["variationId"])] == "claude-opus-treatment"
    rule = next(r for r in fake.targeting["support-agent"]["rules"]
                if r["clauses"][0]["values"] == ["other-paid"])
    assert draft["flags"] == {"support-agent": {"targetingRule": rule["_id"],
                                                "flagConfigVersion": 2}}


def test_start_starts_each_iteration_once(fake, capsys) -> None:
    _bootstrap("--start")
    for exp in fake.experiments.values():
        assert exp["currentIteration"]["status"] == "running" and exp["draftIteration"] is None
    starts = [r for r in fake.writes() if "/experiments/" in r.path
              and r.body["instructions"][0]["kind"] == "startIteration"]
    assert len(starts) == 2 and all("semanticpatch" in r.content_type for r in starts)
    writes = len(fake.writes())
    capsys.readouterr()
    assert experiment_variations.main(["--start"]) == 0
    assert len(fake.writes()) == writes
    assert "iteration already running" in capsys.readouterr().out


def test_dry_run_lists_metrics_and_experiments_and_writes_nothing(fake, capsys) -> None:
    assert create_configs.main([]) == 0
    writes = len(fake.writes())
    assert experiment_variations.main(["--dry-run", "--start"]) == 0
    out = capsys.readouterr().out
    assert len(fake.writes()) == writes
    assert "would create metric p95_total_user_latency ($ld:ai:duration:total): numeric, " \
           "per-user sum, p95, ms, lower is better" in out
    assert "would create experiment premium-model-value" in out
    assert "would start the iteration of security-level" in out


def test_changed_metric_is_patched_with_a_diff(fake, capsys) -> None:
    _bootstrap()
    fake.metrics["ai_cost_per_request"]["successCriteria"] = "HigherThanBaseline"
    fake.metrics["ai_cost_per_request"]["unit"] = "EUR"
    capsys.readouterr()
    assert experiment_variations.main(["--dry-run"]) == 0
    assert "would update metric ai_cost_per_request: successCriteria 'HigherThanBaseline' -> " \
           "'LowerThanBaseline'; unit 'EUR' -> 'USD'" in capsys.readouterr().out
    assert experiment_variations.main([]) == 0
    assert fake.metrics["ai_cost_per_request"]["successCriteria"] == "LowerThanBaseline"
    (patch,) = [r for r in fake.writes() if r.method == "PATCH" and "/metrics/" in r.path]
    assert {op["path"] for op in patch.body} == {"/successCriteria", "/unit"}


def test_promotion_stops_first_then_serves_and_archives_only_unserved_losers(fake) -> None:
    _bootstrap("--start")
    before = len(fake.writes())
    assert promote.main(["premium-model-value", "claude-opus-treatment"]) == 0
    kinds = [(r.method, r.path.rsplit("/", 1)[-1],
              r.body["instructions"][0]["kind"] if isinstance(r.body, dict)
              and isinstance(r.body.get("instructions"), list) else r.body)
             for r in fake.writes()[before:]]
    assert kinds[0][2] == "stopIteration"  # LaunchDarkly's order: stop with the winner first
    assert kinds[1][1] == "targeting" and kinds[1][2] == "updateRuleVariationOrRollout"
    assert kinds[2] == ("PATCH", "other-paid", {"state": "archived"})
    exp = fake.experiments["premium-model-value"]["currentIteration"]
    winner = next(t for t in exp["treatments"] if t["_id"] == exp["winningTreatmentId"])
    assert exp["status"] == "stopped" and winner["name"] == "claude-opus-treatment"
    # strict-security wins Security Level: basic-security still serves other segments
    assert promote.main(["security-level", "strict-security"]) == 0
    security = {v["key"]: v for v in fake.configs["security-agent"]["variations"]}
    assert security["basic-security"].get("state") != "archived"
    writes = len(fake.writes())
    assert promote.main(["premium-model-value", "claude-opus-treatment"]) == 0  # idempotent
    assert len(fake.writes()) == writes


def test_targeting_of_a_running_experiment_cannot_be_changed_before_the_stop(fake) -> None:
    _bootstrap("--start")
    rule = next(r for r in fake.targeting["support-agent"]["rules"]
                if r["clauses"][0]["values"] == ["other-paid"])
    with LaunchDarklyClient(fake.base_url, API_KEY, max_retries=0) as client, \
            pytest.raises(LaunchDarklyError, match="part of a running experiment"):
        client.request("PATCH", "/api/v2/projects/multi-agent-chatbot/ai-configs/support-agent/"
                       "targeting", semantic_patch=True,
                       body={"environmentKey": "production", "instructions": [
                           {"kind": "removeRule", "ruleId": rule["_id"]}]})


def test_missing_model_config_is_named_with_what_to_create(fake, capsys) -> None:
    del fake.model_configs["Mistral.mistral-small-latest"]
    assert create_configs.main([]) == 1
    err = capsys.readouterr().err
    assert "Mistral.mistral-small-latest" in err and "--create-model-configs" in err
    assert '"provider": "Mistral"' in err and fake.writes() == []
    assert create_configs.main(["--create-model-configs"]) == 0
    assert fake.model_configs["Mistral.mistral-small-latest"]["id"] == "mistral-small-latest"


@pytest.mark.parametrize("served_in", ["custom", "parameters"])
def test_custom_parameters_served_in_either_place_pass_the_read_back(
        monkeypatch, tmp_path: Path, capsys, served_in: str) -> None:
    with FakeLaunchDarkly(api_key=API_KEY, custom_served_in=served_in) as server:
        _serve(monkeypatch, server, tmp_path)
        assert create_configs.main([]) == 0
    assert "verified: security-agent serves 3 variation(s)" in capsys.readouterr().out


def test_custom_parameters_lost_on_the_way_fail_loudly(monkeypatch, tmp_path: Path,
                                                       capsys) -> None:
    with FakeLaunchDarkly(api_key=API_KEY, custom_served_in="dropped") as server:
        _serve(monkeypatch, server, tmp_path)
        assert create_configs.main([]) == 1
    err = capsys.readouterr().err
    assert "supervisor-agent is not what the app needs" in err
    assert "supervisor-basic: serves custom {}, the manifest says {'max_tool_calls': 0, " \
           "'pii_policy': 'basic'" in err


def test_a_provider_the_sdk_is_not_served_fails_loudly(fake, capsys) -> None:
    fake.model_configs["Anthropic.claude-haiku-4-5"]["provider"] = ""
    assert create_configs.main([]) == 1
    assert "have no provider" in capsys.readouterr().err


@pytest.mark.parametrize(("change", "message"), [
    ({"analysisType": "percentile", "percentileValue": None}, "percentileValue is required"),
    ({"percentileValue": 95.5}, "percentileValue must be an integer"),
    ({"successCriteria": "Higher"}, "invalid successCriteria"),
    ({"isNumeric": None}, "require eventKey and isNumeric"),
    ({"eventDefault": {"disabled": False, "value": 0}}, "cannot include units without events"),
])
def test_the_fake_refuses_malformed_metrics(fake, change, message) -> None:
    body = {k: v for k, v in {**metric_payload(METRICS["p95_total_user_latency"]),
                              **change}.items() if v is not None}
    with LaunchDarklyClient(fake.base_url, API_KEY, max_retries=0) as client, \
            pytest.raises(LaunchDarklyError, match=message):
        client.request("POST", "/api/v2/metrics/multi-agent-chatbot", body=body)
