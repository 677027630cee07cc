"""bootstrap/manifest.yaml: content follows docs/CONTRACTS.md; bad input is named."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from bootstrap.manifest import (
    DEFAULT_PATH,
    ManifestError,
    load_manifest,
    parse_manifest,
    variation_value,
)
from utils.providers import MODEL_PROVIDERS

EU = {"DE", "FR", "ES", "IT", "NL", "BE", "AT", "PL", "PT", "GR", "CZ", "HU", "SE", "DK", "FI"}


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(DEFAULT_PATH.read_text())


def test_manifest_defines_the_configs_and_variations_of_the_design() -> None:
    m = load_manifest()
    keys = {c.key: [v.key for v in c.variations] for c in m.configs}
    assert keys["supervisor-agent"] == ["supervisor-basic"]
    assert set(keys["security-agent"]) == {"basic-security", "strict-security", "pii-detector"}
    assert set(keys["support-agent"]) == {"eu-free", "eu-paid", "other-free", "other-paid",
                                          "international-standard", "rag-search-enhanced"}
    security = m.config("security-agent")
    assert security.variation("basic-security").model == "claude-haiku-4-5"
    assert security.variation("basic-security").custom.pii_policy == "basic"
    assert security.variation("strict-security").model == "mistral-small-latest"
    assert security.variation("strict-security").custom.pii_policy == "strict"
    other_paid = m.config("support-agent").variation("other-paid")
    assert other_paid.model == "gpt-4o"
    assert set(other_paid.tools) == {t.name for t in m.tools}


def test_every_model_is_priced_and_served_by_its_provider() -> None:
    m = load_manifest()
    variations = [v for c in m.configs for v in c.variations]
    variations += m.experiment_variations_for("support-agent")
    for v in variations:
        assert MODEL_PROVIDERS[v.model] == v.provider, v.key


def test_premium_treatment_copies_other_paid_tools_with_an_opus_model() -> None:
    m = load_manifest()
    (opus,) = m.experiment_variations_for("support-agent")
    other_paid = m.config("support-agent").variation("other-paid")
    assert opus.key == "claude-opus-treatment"
    assert (opus.model, opus.provider) == ("claude-opus-4-1", "anthropic")
    assert opus.tools == other_paid.tools
    assert opus.custom == other_paid.custom


def test_eu_segments_use_the_fifteen_countries_and_plans() -> None:
    m = load_manifest()
    for segment in m.segments:
        country, plan = segment.rules[0].clauses
        assert set(country.values) == EU
        assert country.negate == segment.key.startswith("other")
        assert plan.values == [segment.key.split("-")[1]]


def test_free_tiers_get_fewer_tools_and_tool_calls_than_paid() -> None:
    support = load_manifest().config("support-agent")
    for region in ("eu", "other"):
        free, paid = support.variation(f"{region}-free"), support.variation(f"{region}-paid")
        assert len(free.tools) < len(paid.tools)
        assert free.custom.max_tool_calls < paid.custom.max_tool_calls
        assert free.custom.privacy_mode == paid.custom.privacy_mode == (region == "eu")


def test_variation_value_follows_the_contract() -> None:
    m = load_manifest()
    value = variation_value(m.config("support-agent").variation("other-paid"), m)
    assert value["_ldMeta"] == {"enabled": True, "variationKey": "other-paid", "version": 1,
                                "mode": "agent"}
    assert value["provider"] == {"name": "openai"}
    assert set(value["model"]["custom"]) == {"max_tool_calls", "pii_policy",
                                             "max_cost_per_session", "privacy_mode"}
    params = value["model"]["parameters"]
    assert {"temperature", "max_tokens", "tools"} <= set(params)
    tool = params["tools"][0]
    assert tool["type"] == "function" and tool["description"]
    top_k = tool["parameters"]["properties"]["top_k"]
    assert (top_k["type"], top_k["minimum"], top_k["maximum"]) == ("integer", 1, 10)
    assert tool["parameters"]["required"] == ["query"]
    assert "reinforcement" in value["instructions"].lower()


def _error(data: dict) -> str:
    with pytest.raises(ManifestError) as info:
        parse_manifest(data, "bootstrap/manifest.yaml")
    return str(info.value)


def test_unknown_provider_names_file_key_path_and_choices(raw: dict) -> None:
    data = copy.deepcopy(raw)
    data["configs"][1]["variations"][0]["provider"] = "cohere"
    msg = _error(data)
    assert "bootstrap/manifest.yaml" in msg
    assert "configs[1](security-agent).variations[0](basic-security).provider" in msg
    assert "'openai'" in msg and "'cohere'" in msg


def test_model_not_served_by_provider_is_rejected(raw: dict) -> None:
    data = copy.deepcopy(raw)
    data["configs"][0]["variations"][0]["provider"] = "anthropic"
    assert "served by provider 'openai'" in _error(data)


def test_targeting_rule_naming_a_missing_variation_is_rejected(raw: dict) -> None:
    data = copy.deepcopy(raw)
    data["configs"][2]["targeting"]["rules"][0]["variation"] = "eu-premium"
    msg = _error(data)
    assert "configs[2](support-agent).targeting.rules[0].variation" in msg
    assert "'eu-premium'" in msg


def test_targeting_rule_naming_a_missing_segment_is_rejected(raw: dict) -> None:
    data = copy.deepcopy(raw)
    data["configs"][1]["targeting"]["rules"][0]["segment"] = "apac-free"
    msg = _error(data)
    assert "targeting.rules[0].segment: unknown segment 'apac-free'" in msg


def test_variation_naming_an_unknown_tool_is_rejected(raw: dict) -> None:
    data = copy.deepcopy(raw)
    data["configs"][2]["variations"][0]["tools"] = ["web_search"]
    assert "unknown tool 'web_search'" in _error(data)


def test_malformed_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text("configs: [\n  - key: x\n")
    with pytest.raises(ManifestError, match=r"manifest.yaml: not valid YAML"):
        load_manifest(path)
