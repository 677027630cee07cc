"""The LaunchDarkly backend against a local fake of the REST API v2."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bootstrap import create_configs, experiment_variations, promote
from bootstrap.launchdarkly_backend import LaunchDarklySync
from bootstrap.launchdarkly_client import LaunchDarklyClient, LaunchDarklyError
from bootstrap.manifest import DEFAULT_PATH, load_manifest, parse_manifest
from tests.fakes.launchdarkly import FakeLaunchDarkly
from utils.telemetry.metrics import METRICS

API_KEY = "api-test-key"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLaunchDarkly]:
    with FakeLaunchDarkly(api_key=API_KEY) as server:
        monkeypatch.setenv("LD_API_KEY", API_KEY)
        monkeypatch.setenv("LD_API_BASE_URL", server.base_url)
        from utils.settings import get_settings

        get_settings.cache_clear()
        yield server


def sync(fake: FakeLaunchDarkly, sleeps: list[float] | None = None, manifest=None,
         out=lambda line: None) -> list[str]:
    with LaunchDarklyClient(fake.base_url, API_KEY, backoff_s=0.01,
                            sleep=(sleeps.append if sleeps is not None else lambda s: None)) as c:
        return LaunchDarklySync(c, fake.project, fake.environment, out=out).sync_manifest(
            manifest or load_manifest())


def served(fake: FakeLaunchDarkly, config: str) -> dict[str, str | None]:
    """segment -> variation key served by its rule, plus `default` (indices are targeting's)."""
    keys = fake.targeting_keys(config)
    env = fake.targeting[config]
    result = {}
    for rule in env["rules"]:
        (segment,) = rule["clauses"][0]["values"]
        if "variation" in rule:
            result[segment] = keys[rule["variation"]]
        else:
            (weight,) = rule["rollout"]["variations"]
            result[segment] = keys[weight["variation"]]
    result["default"] = keys[env["fallthrough"]["variation"]]
    return result


def test_creates_tools_segments_configs_variations_and_targeting(fake, capsys) -> None:
    assert create_configs.main([]) == 0  # LD_API_KEY set: LaunchDarkly is the default backend
    assert set(fake.tools) == {"search_v1", "search_v2", "reranking", "arxiv_search",
                               "semantic_scholar"}
    assert set(fake.segments) == {"eu-free", "eu-paid", "other-free", "other-paid"}
    assert len(fake.segments["eu-free"]["rules"]) == 1
    support = fake.configs["support-agent"]
    other_paid = next(v for v in support["variations"] if v["key"] == "other-paid")
    assert other_paid["model"]["modelName"] == "gpt-4o"
    assert other_paid["model"]["custom"]["max_tool_calls"] == 6  # custom parameters are sent
    assert other_paid["modelConfigKey"] == "OpenAI.gpt-4o"
    assert [t["key"] for t in other_paid["tools"]] == [
        "search_v1", "search_v2", "reranking", "arxiv_search", "semantic_scholar"]
    assert served(fake, "support-agent") == {
        "eu-free": "eu-free", "eu-paid": "eu-paid", "other-free": "other-free",
        "other-paid": "other-paid", "default": "international-standard"}
    assert served(fake, "security-agent")["eu-paid"] == "strict-security"
    patches = [r for r in fake.requests if r.method == "PATCH"]
    assert patches and all("semanticpatch" in r.content_type for r in patches)
    out = capsys.readouterr()
    assert API_KEY not in out.out + out.err


def test_requests_use_the_documented_shapes(fake) -> None:
    sync(fake)
    (tool,) = [r.body for r in fake.writes() if r.path.endswith("/ai-tools")
               and r.body["key"] == "search_v2"]
    assert tool["schema"]["type"] == "object" and "query" in tool["schema"]["properties"]
    (variation,) = [r.body for r in fake.writes() if r.path.endswith("/variations")
                    and r.body["key"] == "other-paid"]
    assert variation["messages"] == [] and variation["instructions"]
    assert variation["model"]["modelName"] == "gpt-4o"
    assert "tools" not in variation["model"]["parameters"]  # attached by key instead
    assert variation["toolKeys"][0] == "search_v1"
    # the beta header goes to AI Configs and AI tools endpoints only
    assert all(r.api_version == "beta" for r in fake.requests if "/projects/" in r.path)
    assert all(r.api_version is None for r in fake.requests if "/segments/" in r.path)


def test_targeting_references_targeting_variation_ids(fake) -> None:
    sync(fake)
    (patch,) = [r.body for r in fake.writes()
                if r.path.endswith("/ai-configs/support-agent/targeting")]
    config_ids = {v["_id"] for v in fake.configs["support-agent"]["variations"]}
    kinds = [ins["kind"] for ins in patch["instructions"]]
    assert kinds == ["addRule"] * 4 + ["updateFallthroughVariationOrRollout"]
    assert patch["environmentKey"] == fake.environment
    for ins in patch["instructions"]:
        assert ins["variationId"].startswith("tv-") and ins["variationId"] not in config_ids
        assert "rolloutWeights" not in ins
    assert fake.targeting["support-agent"]["rules"][0]["clauses"][0]["op"] == "segmentMatch"


def test_targeting_turned_off_is_reported_not_patched(fake) -> None:
    sync(fake)
    fake.targeting["support-agent"]["enabled"] = False
    lines: list[str] = []
    assert sync(fake, out=lines.append) == []
    assert any("targeting of support-agent is off" in line for line in lines)


def test_second_run_writes_nothing_and_never_duplicates_rules(fake, capsys) -> None:
    assert create_configs.main([]) == 0
    writes = len(fake.writes())
    rules = {k: len(v["rules"]) for k, v in fake.targeting.items()}
    capsys.readouterr()
    assert create_configs.main([]) == 0
    assert "no changes" in capsys.readouterr().out
    assert len(fake.writes()) == writes
    assert {k: len(v["rules"]) for k, v in fake.targeting.items()} == rules


def test_changed_variation_is_updated_in_place(fake) -> None:
    sync(fake)
    data = yaml.safe_load(DEFAULT_PATH.read_text())
    changed = copy.deepcopy(data)
    changed["configs"][2]["variations"][1]["custom"]["max_tool_calls"] = 1
    before = len(fake.writes())
    changes = sync(fake, manifest=parse_manifest(changed))
    assert changes == ["update variation support-agent/eu-free"]
    (patch,) = fake.writes()[before:]
    assert patch.method == "PATCH" and patch.path.endswith("/variations/eu-free")
    assert "key" not in patch.body and "messages" not in patch.body
    assert patch.content_type == "application/json"
    eu_free = next(v for v in fake.configs["support-agent"]["variations"] if v["key"] == "eu-free")
    assert eu_free["model"]["custom"]["max_tool_calls"] == 1


def test_rate_limited_request_is_retried_after_retry_after(fake) -> None:
    fake.fail("POST", "/ai-tools", 429, times=2, headers={"Retry-After": "2"})
    fake.fail("GET", "/segments/", 503, times=1)
    sleeps: list[float] = []
    sync(fake, sleeps=sleeps)
    assert sleeps[:2] == [2.0, 2.0]
    assert len(sleeps) == 3
    assert len(fake.tools) == 5


def test_persistent_server_errors_give_up_with_a_clear_message(fake) -> None:
    fake.fail("GET", "/ai-tools", 500, times=99)
    with pytest.raises(LaunchDarklyError, match=r"GET /api/v2/.*/ai-tools\?limit=50&offset=0 failed with 500 after"):
        sync(fake)


def test_bad_request_is_reported_with_non_zero_exit(fake, capsys) -> None:
    fake.fail("POST", "/ai-configs/support-agent/variations", 400)
    assert create_configs.main([]) == 1
    err = capsys.readouterr().err
    assert "POST /api/v2/projects/multi-agent-chatbot/ai-configs/support-agent/variations" in err
    assert "400" in err and "injected failure" in err
    assert API_KEY not in err


def test_wrong_api_key_is_explained(fake, monkeypatch, capsys) -> None:
    monkeypatch.setenv("LD_API_KEY", "api-wrong")
    from utils.settings import get_settings

    get_settings.cache_clear()
    assert create_configs.main([]) == 1
    err = capsys.readouterr().err
    assert "401" in err and "LD_API_KEY" in err and "api-wrong" not in err


def test_dry_run_reads_but_never_writes(fake, capsys) -> None:
    assert create_configs.main(["--dry-run"]) == 0
    assert fake.writes() == []
    assert "would create AI config support-agent" in capsys.readouterr().out


def test_experiment_variations_creates_the_treatment_metrics_and_experiments(fake, capsys) -> None:
    assert create_configs.main([]) == 0
    assert experiment_variations.main([]) == 0
    out = capsys.readouterr().out
    keys = [v["key"] for v in fake.configs["support-agent"]["variations"]]
    assert "claude-opus-treatment" in keys
    assert set(fake.metrics) == set(METRICS)
    assert set(fake.experiments) == {"security-level", "premium-model-value"}
    assert "create metric positive_feedback_rate ($ld:ai:feedback:user:positive)" in out
    assert "run again with --start" in out
    assert experiment_variations.main([]) == 0
    assert "no changes" in capsys.readouterr().out


def test_promotion_stops_the_iteration_then_serves_the_winner(fake, tmp_path: Path,
                                                              monkeypatch) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    from utils.settings import get_settings

    get_settings.cache_clear()
    assert create_configs.main([]) == 0
    assert experiment_variations.main(["--start"]) == 0
    rule = next(r for r in fake.targeting["support-agent"]["rules"]
                if r["clauses"][0]["values"] == ["other-paid"])
    assert "experimentAllocation" in rule["rollout"]  # LaunchDarkly runs it on the rule
    writes = len(fake.writes())
    assert create_configs.main([]) == 0  # leaves the running experiment alone
    assert len(fake.writes()) == writes
    assert promote.main(["premium-model-value", "claude-opus-treatment"]) == 0
    assert served(fake, "support-agent")["other-paid"] == "claude-opus-treatment"
    assert (tmp_path / "launchdarkly.state.json").exists()


def test_promotion_to_everyone_changes_the_fallthrough(fake, tmp_path: Path,
                                                       monkeypatch) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    from utils.settings import get_settings

    get_settings.cache_clear()
    text = Path("bootstrap/experiments.yaml").read_text()
    marker = "  - key: premium-model-value\n"
    start = text.index(marker)
    audience = text.index("    audience: other-paid\n", start)
    experiments = tmp_path / "experiments.yaml"
    experiments.write_text(text[:audience] + "    promote_to: everyone\n" + text[audience:])
    assert create_configs.main([]) == 0
    assert experiment_variations.main(["--start", "--experiments", str(experiments)]) == 0
    keys = fake.targeting_keys("support-agent")
    before = keys[fake.targeting["support-agent"]["fallthrough"]["variation"]]
    assert before != "claude-opus-treatment"
    assert promote.main(["premium-model-value", "claude-opus-treatment",
                         "--experiments", str(experiments)]) == 0
    after = served(fake, "support-agent")
    assert after["other-paid"] == "claude-opus-treatment"
    assert after["default"] == "claude-opus-treatment"  # everyone, not only the audience
