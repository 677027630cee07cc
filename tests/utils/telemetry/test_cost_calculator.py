"""Prices, model-name normalisation and cost arithmetic (utils/telemetry/cost_calculator.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from utils.settings import get_settings
from utils.telemetry import cost_calculator
from utils.telemetry.cost_calculator import (
    PricingError,
    calculate_cost,
    get_price,
    get_pricing_table,
    load_pricing_table,
    normalize_model_name,
    reload_pricing,
)

# Every model the tutorial, the manifest and the embeddings backend use.
REQUIRED_MODELS = [
    "gpt-4o",
    "gpt-4o-mini",
    "claude-sonnet-4-5",
    "claude-sonnet-4",
    "claude-3-7-sonnet-latest",
    "claude-haiku-4-5",
    "claude-opus-4-1",
    "claude-opus-4",
    "claude-opus-4-5",
    "mistral-small-latest",
    "mistral-large-latest",
    "text-embedding-3-small",
]


@pytest.fixture(autouse=True)
def _fresh_pricing(monkeypatch: pytest.MonkeyPatch):
    """Each test starts from the shipped table with no override file."""
    monkeypatch.delenv("PRICING_OVERRIDES_PATH", raising=False)
    get_settings.cache_clear()
    reload_pricing()
    yield
    get_settings.cache_clear()
    reload_pricing()


def _use_override(path: Path):
    """The table a service with PRICING_OVERRIDES_PATH=path prices its runs with."""
    reload_pricing()
    return get_pricing_table(path)


# --- coverage -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", REQUIRED_MODELS)
def test_every_required_model_is_priced_with_date_and_source(model: str) -> None:
    price = get_price(model)
    assert price is not None, model
    assert price.input_per_mtok > 0
    assert price.checked and len(price.checked) == 10  # YYYY-MM-DD
    assert price.source


def test_published_list_prices_are_used_not_the_stale_reference_code() -> None:
    assert (get_price("gpt-4o").input_per_mtok, get_price("gpt-4o").output_per_mtok) == (2.5, 10.0)
    haiku = get_price("claude-haiku-4-5-20251001")
    assert (haiku.input_per_mtok, haiku.output_per_mtok) == (1.0, 5.0)
    opus = get_price("claude-opus-4")
    assert (opus.input_per_mtok, opus.output_per_mtok) == (15.0, 75.0)
    sonnet = get_price("claude-sonnet-4-5")
    assert (sonnet.input_per_mtok, sonnet.output_per_mtok) == (3.0, 15.0)


def test_mistral_small_is_charged_its_list_price_not_the_free_tier() -> None:
    assert calculate_cost("mistral-small-latest", 1_000, 1_000) > 0
    data = json.loads(cost_calculator.PRICING_PATH.read_text())
    assert "free" in " ".join(data["_meta"]["decisions"]).lower()


def test_opus_4_5_has_its_own_price_not_the_opus_4_family() -> None:
    assert get_price("claude-opus-4-5-20251101").input_per_mtok == 5.0
    assert get_price("claude-opus-4-1-20250805").input_per_mtok == 15.0


def test_pinned_snapshot_row_wins_over_its_family() -> None:
    assert get_price("mistral-small-2506").output_per_mtok == 0.3
    assert get_price("mistral-small-latest").output_per_mtok == 0.6
    assert get_price("gpt-4o-2024-05-13").input_per_mtok == 5.0
    assert get_price("gpt-4o-2024-08-06").input_per_mtok == 2.5


# --- normalisation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "family"),
    [
        ("gpt-4o", "gpt-4o"),
        ("openai/gpt-4o", "gpt-4o"),
        ("openai:gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("GPT-4o-Mini-2024-07-18", "gpt-4o-mini"),
        ("  claude-haiku-4-5  ", "claude-haiku-4-5"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("anthropic:claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("openrouter/anthropic/claude-opus-4.1", "claude-opus-4-1"),
        ("bedrock/us.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5"),
        ("anthropic.claude-opus-4-1-20250805-v1:0", "claude-opus-4-1"),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-0", "claude-opus-4"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("mistral-small-latest", "mistral-small"),
        ("mistralai/mistral-small-2506", "mistral-small"),
        ("MISTRAL-LARGE-LATEST", "mistral-large"),
        ("text-embedding-3-small", "text-embedding-3-small"),
    ],
)
def test_normalize_model_name_reduces_ids_to_their_family(raw: str, family: str) -> None:
    assert normalize_model_name(raw) == family


def test_local_and_fine_tuned_models_are_not_mistaken_for_a_priced_family() -> None:
    assert normalize_model_name("llama3:8b") == "llama3:8b"
    assert get_price("ft:gpt-4o-mini-2024-07-18:acme::abc123") is None


# --- arithmetic ---------------------------------------------------------------------------


def test_cost_arithmetic_on_hand_checkable_numbers() -> None:
    # gpt-4o: 1M in at $2.50 + 1M out at $10 = $12.50
    assert calculate_cost("gpt-4o", 1_000_000, 1_000_000) == 12.5
    # 1,000 in * $2.50/1M = $0.0025; 500 out * $10/1M = $0.005
    assert calculate_cost("gpt-4o", 1_000, 500) == 0.0075
    # haiku 4.5: 2,000 * $1/1M + 300 * $5/1M = 0.002 + 0.0015
    assert calculate_cost("claude-haiku-4-5-20251001", 2_000, 300) == 0.0035
    # opus 4: 1,000 * $15/1M + 1,000 * $75/1M = 0.015 + 0.075
    assert calculate_cost("anthropic:claude-opus-4-20250514", 1_000, 1_000) == 0.09
    # mistral small (list price $0.15 / $0.60)
    assert calculate_cost("mistral-small-latest", 10_000, 1_000) == 0.0021
    assert calculate_cost("gpt-4o", 0, 0) == 0.0


def test_cached_input_tokens_bill_at_the_cached_rate() -> None:
    # 1,000 prompt tokens of which 800 cached: 200 * 2.50 + 800 * 1.25 = 500 + 1000 -> $0.0015
    assert calculate_cost("gpt-4o", 1_000, 0, cached_input_tokens=800) == 0.0015
    # no published cache discount (mistral): cached tokens bill at the input price
    assert calculate_cost("mistral-small", 1_000, 0, cached_input_tokens=1_000) == \
        calculate_cost("mistral-small", 1_000, 0)


def test_bad_token_counts_raise_with_the_offending_value() -> None:
    with pytest.raises(ValueError, match="output_tokens must be >= 0, got -1"):
        calculate_cost("gpt-4o", 10, -1)
    with pytest.raises(ValueError, match="exceeds input_tokens"):
        calculate_cost("gpt-4o", 10, 0, cached_input_tokens=11)


def test_calculate_cost_accepts_an_explicit_table() -> None:
    table = load_pricing_table(cost_calculator.PRICING_PATH)
    assert calculate_cost("gpt-4o", 1_000, 500, table=table) == 0.0075
    assert calculate_cost("gpt-4o", 1_000, 500, table={}) is None


# --- unpriced models ----------------------------------------------------------------------


def test_unpriced_model_costs_none_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="utils.telemetry.cost_calculator"):
        first = calculate_cost("acme-llm-9000", 100, 100)
        second = calculate_cost("openai/acme-llm-9000-2025-01-01", 5, 5)  # same family
    assert first is None and second is None
    warnings = [r for r in caplog.records if "acme-llm-9000" in r.getMessage()]
    assert len(warnings) == 1
    assert "unpriced" in warnings[0].getMessage()
    assert get_price("acme-llm-9000") is None


# --- user overrides -----------------------------------------------------------------------


def test_override_file_is_merged_over_the_table(monkeypatch, tmp_path: Path) -> None:
    override = tmp_path / "prices.json"
    override.write_text(json.dumps({"models": {
        "gpt-4o": {"input": 2.0},  # partial: output and cached_input stay as shipped
        "openai/acme-llm": {"input": 1.0, "output": 2.0, "source": "our contract"},
    }}))
    table = _use_override(override)

    gpt = get_price("gpt-4o", table)
    assert (gpt.input_per_mtok, gpt.output_per_mtok, gpt.cached_input_per_mtok) == (2.0, 10.0, 1.25)
    assert calculate_cost("acme-llm-2025-01-01", 1_000_000, 1_000_000, table=table) == 3.0
    assert get_price("claude-haiku-4-5", table).output_per_mtok == 5.0  # untouched rows survive
    assert "acme-llm" in table
    assert get_price("acme-llm") is None  # the shipped table alone is unchanged


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('["gpt-4o"]', "must be a JSON object with a 'models' object"),
        ('{"models": {"gpt-4o": {"output": "ten"}}}', r"models\.gpt-4o\.output"),
        ('{"models": {"gpt-4o": {"input": -1}}}', r"models\.gpt-4o\.input"),
        ('{"models": {"gpt-4o": {"ouput": 1}}}', r"models\.gpt-4o has unknown field"),
        ('{"models": {"new-model": {"input": 1}}}', r"models\.new-model is missing 'output'"),
    ],
)
def test_bad_override_file_raises_naming_file_and_key(
        monkeypatch, tmp_path: Path, content: str, message: str) -> None:
    override = tmp_path / "bad-prices.json"
    override.write_text(content)
    with pytest.raises(PricingError, match=message) as excinfo:
        _use_override(override)
    assert "bad-prices.json" in str(excinfo.value)


def test_missing_override_file_raises_naming_the_path(monkeypatch, tmp_path: Path) -> None:
    with pytest.raises(PricingError, match="nowhere.json does not exist"):
        _use_override(tmp_path / "nowhere.json")


def test_shipped_table_loads_and_every_row_has_date_and_source() -> None:
    table = load_pricing_table(cost_calculator.PRICING_PATH)
    assert len(table) >= 12
    for key, price in table.items():
        assert price.checked and price.source, key
        assert key == key.lower()
