"""Done-when of the topology experiment: promoting always-security sends a clean question
through the security agent; promoting detector-routed again stops it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from api.composition import build_service
from api.schemas import ChatRequest
from bootstrap import create_configs, experiment_variations, promote
from utils.settings import get_settings

CLEAN = "What is the Bellman optimality equation?"


def agents_for(service, country: str, plan: str, n: int = 0) -> list[str]:
    request = ChatRequest(user_id=f"u-{country}-{plan}-{n}", message=CLEAN,
                          user_context={"country": country, "plan": plan})
    return [run.agent for run in asyncio.run(service.chat(request)).agents]


def settle(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not check():
        time.sleep(0.05)
    return check()


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "flags.json"
    args = ["--backend", "local", "--flags-path", str(path)]
    assert create_configs.main(args) == 0
    assert experiment_variations.main([*args, "--start"]) == 0
    monkeypatch.setenv("LOCAL_FLAGS_PATH", str(path))
    monkeypatch.setenv("EVENTS_DB", str(tmp_path / "events.db"))
    get_settings.cache_clear()
    made = build_service(get_settings())
    made.promote_args = args
    yield made
    made.close()


def test_promotion_switches_the_topology_for_everyone(service) -> None:
    args = service.promote_args
    assert promote.main(["security-routing", "always-security", *args]) == 0
    via_security = ["supervisor", "security", "support"]
    # Twelve users, so a user the running 50/50 experiment happened to put in always-security
    # cannot pass for the promotion (all twelve by chance: 1 in 4096).
    assert settle(lambda: all(agents_for(service, "US", "paid", n) == via_security
                              for n in range(12)))
    # promote_to: everyone -- users outside other-paid go through security as well
    for country, plan in (("CA", "paid"), ("US", "free"), ("DE", "free"), ("FR", "paid")):
        assert agents_for(service, country, plan) == via_security, (country, plan)
    assert promote.main(["security-routing", "detector-routed", *args]) == 0
    direct = ["supervisor", "support"]
    assert settle(lambda: all(agents_for(service, "US", "paid", n) == direct
                              for n in range(12)))
    for country, plan in (("CA", "paid"), ("US", "free"), ("DE", "free"), ("FR", "paid")):
        assert agents_for(service, country, plan) == direct, (country, plan)


def test_promote_to_must_be_audience_or_everyone(tmp_path: Path) -> None:
    from utils.experiments.definitions import ExperimentConfigError, load_experiments
    text = Path("bootstrap/experiments.yaml").read_text().replace(
        "promote_to: everyone", "promote_to: all-users")
    bad = tmp_path / "experiments.yaml"
    bad.write_text(text)
    with pytest.raises(ExperimentConfigError, match="promote_to"):
        load_experiments(bad)


def test_promoting_a_graph_experiment_on_launchdarkly_is_refused(monkeypatch, capsys) -> None:
    monkeypatch.setenv("LD_API_KEY", "api-unused")
    get_settings.cache_clear()
    assert promote.main(["security-routing", "always-security",
                         "--backend", "launchdarkly"]) != 0
    err = " ".join(capsys.readouterr().err.split())
    assert "without variations" in err and "no targeting for agent graphs" in err
    # exactly what to do instead: the manifest default + create_configs, or the edges by hand
    assert "`targeting: default: always-security` of graph support-assistant-graph" in err
    assert "python -m bootstrap.create_configs --backend launchdarkly" in err
    assert ('edges supervisor-agent -> security-agent (handoff {"when": "always"}); '
            'security-agent -> support-agent (handoff {"when": "always"})') in err
    assert "python -m bootstrap.promote security-routing always-security --backend local" in err
