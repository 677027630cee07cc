"""The override layer: parameters, parsing, where each acts, and config snapshots."""

from __future__ import annotations

import re

import pytest

from utils.flags.client import DEFAULT_CONFIGS, SECURITY_CONFIG, SUPERVISOR_CONFIG, SUPPORT_CONFIG
from utils.flags.overrides import (
    ConfigOverrides,
    OverrideError,
    apply_overrides,
    check_overrides,
    check_step_parameter,
    config_from_snapshot,
    parse_value,
    snapshot_config,
    step_parameters,
)
from utils.providers import MODEL_PROVIDERS

SUPPORT = DEFAULT_CONFIGS[SUPPORT_CONFIG]


@pytest.mark.parametrize(("param", "raw", "value"), [
    ("temperature", "0.7", 0.7), ("top_p", "1", 1.0), ("max_tokens", "120", 120),
    ("max_tool_calls", "0", 0), ("verbosity", "low", "low"), ("pii_policy", "strict", "strict"),
    ("tools", "search_v1, reranking", ["search_v1", "reranking"]), ("tools", "", []),
    ("instructions", "Be brief.", "Be brief."),
])
def test_values_are_parsed_to_their_types(param, raw, value):
    assert parse_value(param, raw) == value


@pytest.mark.parametrize(("param", "raw", "named"), [
    ("temperature", "hot", "must be a number"), ("temperature", "2.5", "within [0, 2]"),
    ("top_p", "0", "within (0, 1]"), ("max_tokens", "0", ">= 1"), ("max_tokens", "1.5", "integer"),
    ("max_tool_calls", "-1", ">= 0"), ("verbosity", "loud", "low, medium, high"),
    ("pii_policy", "none", "basic, strict"), ("instructions", "  ", "non-empty"),
    ("tools", "search_v1,search_v1", "twice"), ("seed", "1", "unknown parameter 'seed'"),
    ("model", "gpt-99", "not in the model table"), ("model", "acme:x", "unknown provider"),
    ("model", "openai:", "no model name"),
])
def test_bad_values_are_refused_naming_the_rule(param, raw, named):
    with pytest.raises(OverrideError, match=re.escape(named)):
        parse_value(param, raw)


def test_model_takes_its_provider_from_the_model_table_or_explicitly():
    for model, provider in MODEL_PROVIDERS.items():
        assert parse_value("model", model) == f"{provider}:{model}"
    assert parse_value("model", "Anthropic:claude-new") == "anthropic:claude-new"


def test_unknown_tools_are_refused_when_the_toolbox_is_known():
    with pytest.raises(OverrideError, match="unknown tool"):
        parse_value("tools", "search_v1,web", known_tools=("search_v1", "search_v2"))


def test_parameters_are_refused_on_steps_that_never_read_them():
    check_step_parameter(SUPPORT_CONFIG, "max_tool_calls")
    with pytest.raises(OverrideError, match="read only by security-agent"):
        check_step_parameter(SUPPORT_CONFIG, "pii_policy")
    with pytest.raises(OverrideError, match="read only by support-agent"):
        check_step_parameter(SUPERVISOR_CONFIG, "tools")
    with pytest.raises(OverrideError, match="unknown step"):
        check_step_parameter("billing-agent", "model")


def test_apply_changes_only_the_named_parameters_and_leaves_the_experiment():
    served = DEFAULT_CONFIGS[SUPPORT_CONFIG]
    changed = apply_overrides(served, {"model": "anthropic:claude-haiku-4-5", "max_tokens": 50,
                                       "max_tool_calls": 1, "tools": ["search_v2"]}, "exp/v1")
    assert (changed.provider, changed.model) == ("anthropic", "claude-haiku-4-5")
    assert changed.parameters["max_tokens"] == 50
    assert changed.parameters["temperature"] == served.parameters["temperature"]
    assert changed.custom["max_tool_calls"] == 1 and changed.tools == ("search_v2",)
    assert changed.instructions == served.instructions
    assert changed.variation_key == f"{served.variation_key}@exp/v1"
    assert changed.in_experiment is False and changed.tracker_factory is None
    assert served.parameters["max_tokens"] == 800  # the served config is untouched
    assert apply_overrides(served, {}, "x") is served


def test_config_overrides_apply_per_step():
    overrides = ConfigOverrides("e/v", {SECURITY_CONFIG: {"pii_policy": "strict"}})
    assert overrides.apply(DEFAULT_CONFIGS[SECURITY_CONFIG]).custom["pii_policy"] == "strict"
    assert overrides.apply(SUPPORT) is SUPPORT


@pytest.mark.parametrize("payload", [
    [], {"support-agent": "fast"}, {"support-agent": {"temperature": "x"}},
    {"nobody": {"model": "gpt-4o"}}, {"security-agent": {"tools": "search_v1"}},
])
def test_hostile_payloads_are_refused(payload):
    with pytest.raises(OverrideError):
        check_overrides(payload)


def test_checked_payload_is_typed():
    assert check_overrides({"support-agent": {"max_tokens": "64", "model": "gpt-4o"}}) == {
        "support-agent": {"max_tokens": 64, "model": "openai:gpt-4o"}}


def test_snapshot_round_trip_and_step_parameters():
    for config in DEFAULT_CONFIGS.values():
        again = config_from_snapshot(snapshot_config(config))
        assert step_parameters(again) == step_parameters(config)
        assert again.variation_key == config.variation_key and not again.in_experiment
    assert "pii_policy" in step_parameters(DEFAULT_CONFIGS[SECURITY_CONFIG])
    assert "pii_policy" not in step_parameters(SUPPORT)
    with pytest.raises(OverrideError, match="malformed"):
        config_from_snapshot({"config_key": "support-agent"})
