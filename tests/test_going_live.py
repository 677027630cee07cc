"""README "Going live", step by step, against fakes of every service it talks to.

LaunchDarkly's REST API (tests.fakes.launchdarkly), its SDK stream and event endpoints serving
what the REST fake holds (tests.fakes.launchdarkly_sdk), and OpenAI's API (live OpenAI models;
Anthropic and Mistral stay simulated, as with only an OpenAI key). The commands run in the
README's order; nothing is set up in between except what the README says (keys, settings).
"""

from __future__ import annotations

import pytest

from bootstrap import create_configs, experiment_variations, promote
from tests.fakes.launchdarkly import FakeLaunchDarkly
from tests.fakes.launchdarkly_sdk import FakeLaunchDarklySDK
from tests.fakes.openai_server import FakeOpenAI
from tests.tools.traffic.test_run import LoopbackServer
from tools import experiment_report
from tools.traffic.run import ApiUnreachableError, TrafficOptions, run_traffic
from utils.telemetry import metrics

API_KEY = "api-going-live"


def _set(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    from utils.settings import get_settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


@pytest.mark.slow
def test_the_readme_going_live_steps_in_order(tmp_path, monkeypatch, capsys) -> None:
    traffic = TrafficOptions(queries=12, concurrency=3, api_url="http://127.0.0.1:9",
                             seed=4, users=6, pii_percentage=40, judge="simulated",
                             log_dir=tmp_path / "logs", show_progress=False)
    with FakeLaunchDarkly(api_key=API_KEY, page_size=5) as rest, FakeOpenAI() as openai:
        del rest.model_configs["Anthropic.claude-opus-4-1"]  # a project lacking one
        # 1. provider keys (here: OpenAI, served by its fake)
        _set(monkeypatch, DATA_DIR=str(tmp_path), LLM_MODE="auto",
             OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=openai.base_url, SIM_TIME_SCALE="0",
             EMBEDDING_BACKEND="lsa")
        # 2. LD_API_KEY, then the bootstrap commands
        _set(monkeypatch, LD_API_KEY=API_KEY, LD_API_BASE_URL=rest.base_url)
        assert create_configs.main(["--dry-run"]) == 0 and rest.writes() == []
        assert create_configs.main(["--create-model-configs"]) == 0
        assert experiment_variations.main(["--start", "--create-model-configs"]) == 0
        assert "Anthropic.claude-opus-4-1" in rest.model_configs
        assert {k: e["currentIteration"]["status"] for k, e in rest.experiments.items()} == {
            "security-level": "running", "premium-model-value": "running"}
        # 3. LD_SDK_KEY: the app evaluates what LaunchDarkly holds
        with FakeLaunchDarklySDK(rest.sdk_flag_data()) as sdk:
            _set(monkeypatch, LD_SDK_KEY="sdk-going-live", LD_BASE_URI=sdk.uri,
                 LD_STREAM_URI=sdk.uri, LD_EVENTS_URI=sdk.uri, ADMIN_TOKEN="admin")
            # 4. the API must be running before the traffic generator
            with pytest.raises(ApiUnreachableError, match="cannot reach the API"):
                run_traffic(traffic)
            from api.main import create_app

            with LoopbackServer(create_app()) as url:
                summary = run_traffic(TrafficOptions(**{**traffic.__dict__, "api_url": url}))
                import httpx

                httpx.post(f"{url}/admin/flush", headers={"X-Admin-Token": "admin"})
                assert summary.sent == 12 and summary.successes == 12, summary.failures
                events = sdk.wait_for(lambda evs: any(
                    e["key"] == metrics.DURATION_TOTAL for e in evs))
        tracked = [e for e in events if isinstance(e.get("data"), dict)
                   and e["data"].get("configKey")]
        # the served provider name ("OpenAI" from the model config); simulated runs stay out
        assert {e["data"]["providerName"].lower() for e in tracked
                if e["key"] == metrics.DURATION_TOTAL} == {"openai"}
        assert any(e["data"].get("variationKey") == "claude-opus-treatment" or
                   e["data"].get("variationKey") == "other-paid" for e in tracked)
        capsys.readouterr()
        assert experiment_report.main([]) == 0
        report = capsys.readouterr().out
        assert "Security Level" in report and "Premium Model Value" in report
        # 5. promote
        assert promote.main(["premium-model-value", "other-paid"]) == 0
        iteration = rest.experiments["premium-model-value"]["currentIteration"]
        assert iteration["status"] == "stopped"
