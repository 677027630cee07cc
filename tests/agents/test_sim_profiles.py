"""Per-model profiles of the simulated providers (agents/sim_profiles.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.sim_profiles import (
    DEFAULT_PROFILE,
    PROFILES_PATH,
    SimProfile,
    SimProfileError,
    get_profile,
    load_profiles,
)

TUTORIAL_MODELS = {
    "gpt-4o": "gpt-4o",
    "gpt-4o-mini": "gpt-4o-mini",
    "claude-sonnet-4": "claude-sonnet-4-5",
    "claude-sonnet-4-5": "claude-sonnet-4-5",
    "claude-haiku-4-5": "claude-haiku-4-5",
    "claude-opus-4": "claude-opus-4-1",
    "claude-opus-4-1": "claude-opus-4-1",
    "mistral-small-latest": "mistral-small",
}


@pytest.mark.parametrize(("model", "row"), TUTORIAL_MODELS.items())
def test_every_tutorial_model_has_its_own_profile_row(model: str, row: str) -> None:
    profile = get_profile(model)
    assert profile.family == row != DEFAULT_PROFILE


@pytest.mark.parametrize(
    ("model", "row"),
    [
        ("anthropic:claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("bedrock/us.anthropic.claude-opus-4-1-20250805-v1:0", "claude-opus-4-1"),
        ("openai/GPT-4o-2024-08-06", "gpt-4o"),
        ("claude-opus-4-0", "claude-opus-4-1"),
        ("mistral-small-2506", "mistral-small"),
    ],
)
def test_profiles_match_through_prefixes_and_snapshots(model: str, row: str) -> None:
    assert get_profile(model).family == row


def test_unknown_model_falls_back_to_the_default_row() -> None:
    assert get_profile("acme-llm-9000").family == DEFAULT_PROFILE


def test_every_row_is_within_documented_ranges_and_cites_a_source() -> None:
    for name, profile in load_profiles().items():
        assert isinstance(profile, SimProfile)
        assert 0.0 <= profile.precision <= 1.0, name
        assert 0.0 <= profile.jitter < 1.0, name
        assert 1 <= profile.retrieval_depth <= 10, name
        assert profile.ttft_ms > 0 and profile.output_tokens_per_s > 0, name
        assert profile.source.strip(), name


def test_profiles_hold_only_model_traits() -> None:
    data = json.loads(PROFILES_PATH.read_text())
    allowed = {"aliases", "ttft_ms", "output_tokens_per_s", "verbosity", "retrieval_depth",
               "precision", "jitter", "source"}
    for row in data["profiles"].values():
        assert set(row) <= allowed


def test_expected_latency_is_ttft_plus_streaming_time() -> None:
    profile = SimProfile(family="x", ttft_ms=500, output_tokens_per_s=50, verbosity=100,
                         retrieval_depth=3, precision=0.5, jitter=0.1, source="test")
    assert profile.expected_latency_ms(100) == 2500.0  # 500 ms + 100 tokens / 50 per s


def test_profile_is_frozen() -> None:
    with pytest.raises(AttributeError):
        get_profile("gpt-4o").precision = 1.0  # type: ignore[misc]


def test_explicit_profile_table_is_honoured(tmp_path: Path) -> None:
    row = {"ttft_ms": 1, "output_tokens_per_s": 2, "verbosity": 3, "retrieval_depth": 4,
           "precision": 0.5, "jitter": 0.1, "source": "test"}
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps({"profiles": {"default": row, "acme-llm": {**row, "ttft_ms": 9}}}))
    table = load_profiles(path)
    assert get_profile("acme/acme-llm-latest", table).ttft_ms == 9.0
    assert get_profile("gpt-4o", table).family == DEFAULT_PROFILE


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"precision": 1.5}, "precision must be within 0..1"),
        ({"retrieval_depth": 2.5}, "retrieval_depth must be an integer"),
        ({"source": ""}, "source must say where"),
        ({"speed": 3}, "unknown"),
    ],
)
def test_bad_profile_row_raises_naming_file_and_row(tmp_path: Path, patch: dict,
                                                    message: str) -> None:
    row = {"ttft_ms": 1, "output_tokens_per_s": 2, "verbosity": 3, "retrieval_depth": 4,
           "precision": 0.5, "jitter": 0.1, "source": "test"}
    path = tmp_path / "bad-profiles.json"
    path.write_text(json.dumps({"profiles": {"default": row, "acme-llm": {**row, **patch}}}))
    with pytest.raises(SimProfileError, match=message) as excinfo:
        load_profiles(path)
    assert "bad-profiles.json" in str(excinfo.value) and "acme-llm" in str(excinfo.value)
