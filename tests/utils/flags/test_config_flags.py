"""The config-flag layer over the real SDK and a fixture flag file."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from tests.fakes.flagfile import ai_variation, standard_flags, write_flags
from utils.flags.client import (
    DEFAULT_VARIATION_KEY,
    SECURITY_CONFIG,
    SUPERVISOR_CONFIG,
    SUPPORT_CONFIG,
    ConfigFlags,
    build_context,
)
from utils.settings import get_settings


@pytest.fixture
def flags(flags_file: Path):
    layer = ConfigFlags(get_settings())
    yield layer
    layer.close()


def test_eu_paid_user_gets_eu_paid_support_and_strict_security(flags: ConfigFlags) -> None:
    context = build_context("eu-user", {"country": "DE", "plan": "paid"})
    support = flags.agent_config(SUPPORT_CONFIG, context)
    security = flags.agent_config(SECURITY_CONFIG, context)
    assert support.variation_key == "eu-paid"
    assert support.model == "claude-sonnet-4-5" and support.provider == "anthropic"
    assert support.tools == ("search_v1", "search_v2", "reranking")
    assert "tools" not in support.parameters
    assert support.custom_param("max_tool_calls") == 5
    assert security.variation_key == "strict-security"
    assert security.custom_param("pii_policy") == "strict"


def test_us_paid_user_gets_other_paid_support_and_basic_security(flags: ConfigFlags) -> None:
    context = build_context("us-user", {"country": "US", "plan": "paid"})
    assert flags.agent_config(SUPPORT_CONFIG, context).variation_key == "other-paid"
    assert flags.agent_config(SECURITY_CONFIG, context).variation_key == "basic-security"


def test_user_in_no_segment_gets_the_defaults(flags: ConfigFlags) -> None:
    context = build_context("anonymous-ish", {})
    assert flags.agent_config(SUPPORT_CONFIG, context).variation_key == "international-standard"
    assert flags.agent_config(SECURITY_CONFIG, context).variation_key == "basic-security"
    assert flags.agent_config(SUPERVISOR_CONFIG, context).variation_key == "supervisor-basic"


def test_edit_of_flag_file_is_served_without_restart(flags: ConfigFlags, flags_file: Path) -> None:
    context = build_context("us-user", {"country": "US", "plan": "paid"})
    assert flags.agent_config(SUPPORT_CONFIG, context).model == "gpt-4o"
    data = standard_flags()
    data["flags"][SUPPORT_CONFIG]["variations"][4]["model"]["name"] = "gpt-4o-mini"
    write_flags(flags_file, data)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        if flags.agent_config(SUPPORT_CONFIG, context).model == "gpt-4o-mini":
            break
        time.sleep(0.05)
    assert flags.agent_config(SUPPORT_CONFIG, context).model == "gpt-4o-mini"


@pytest.mark.parametrize("bad_value, problem", [
    ("just a string", "not an object"),
    ({"_ldMeta": {"enabled": True, "variationKey": "no-model"}, "provider": {"name": "openai"},
      "model": {"parameters": {}}}, "no model name"),
    (ai_variation("weird-provider", "gpt-4o", "acme-llm"), "unknown provider"),
])
def test_malformed_variation_falls_back_to_default_and_names_it(
        flags_file: Path, caplog: pytest.LogCaptureFixture, bad_value, problem) -> None:
    data = standard_flags()
    data["flags"][SUPPORT_CONFIG]["variations"][4] = bad_value
    write_flags(flags_file, data)
    layer = ConfigFlags(get_settings())
    try:
        with caplog.at_level(logging.ERROR):
            config = layer.agent_config(SUPPORT_CONFIG, build_context("u", {"country": "US",
                                                                             "plan": "paid"}))
    finally:
        layer.close()
    assert config.variation_key == DEFAULT_VARIATION_KEY
    assert config.source == "fallback"
    assert problem in caplog.text and SUPPORT_CONFIG in caplog.text


def test_missing_flag_file_serves_defaults_and_says_how_to_create_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_FLAGS_PATH", str(tmp_path / "nowhere" / "flags.json"))
    get_settings.cache_clear()
    layer = ConfigFlags(get_settings(), start_wait=0.1)
    try:
        config = layer.agent_config(SUPPORT_CONFIG, build_context("u", {"plan": "paid"}))
        status = layer.status()
    finally:
        layer.close()
    assert config.variation_key == DEFAULT_VARIATION_KEY and config.source == "default"
    assert status["flags_file_exists"] is False
    assert "bootstrap.create_configs" in status["hint"]


def test_experiment_rollout_reports_in_experiment(flags_file: Path) -> None:
    data = standard_flags()
    rule = data["flags"][SUPPORT_CONFIG]["rules"][3]  # other-paid
    del rule["variation"]
    rule["rollout"] = {"kind": "experiment", "seed": 7,
                       "variations": [{"variation": 4, "weight": 50000},
                                      {"variation": 0, "weight": 50000}]}
    flags_file.write_text(json.dumps(data))
    layer = ConfigFlags(get_settings())
    try:
        arms = {layer.agent_config(SUPPORT_CONFIG, build_context(
            f"user-{i}", {"country": "US", "plan": "paid"})).variation_key for i in range(40)}
        config = layer.agent_config(SUPPORT_CONFIG, build_context(
            "user-1", {"country": "US", "plan": "paid"}))
    finally:
        layer.close()
    assert arms == {"other-paid", "international-standard"}
    assert config.in_experiment is True
