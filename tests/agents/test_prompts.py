"""Every served prompt asks of its model what the code expects from it (manifest and defaults).

- supervisor: the code forces its RouteDecision tool, so the prompt asks for that tool call;
- security: the code keeps a model's rewrite only if it keeps every `[TYPE]` placeholder, so
  the prompt names the placeholders in that format, of the types its policy redacts;
- support: placeholders it is told about are written as the detector writes them.
"""

from __future__ import annotations

import re

import pytest

from agents.supervisor import RouteDecision
from bootstrap.manifest import load_manifest
from utils.flags.client import DEFAULT_CONFIGS, SECURITY_CONFIG, SUPERVISOR_CONFIG, SUPPORT_CONFIG
from utils.privacy.detector import ALL_TYPES, POLICIES, redact_pii
from utils.privacy.placeholders import PLACEHOLDER_PATTERN, placeholder

# Anything shaped like a placeholder in another format: <PERSON>, {EMAIL}, [[NAME]].
_OTHER_FORMATS = re.compile(r"<[A-Z_]+>|\{[A-Z_]+\}|\[\[[A-Z_]+\]\]")


def _served(config_key: str) -> list[tuple[str, str, str]]:
    """(variation key, pii policy, instructions) of the manifest and the built-in default."""
    config = next(c for c in load_manifest().configs if c.key == config_key)
    default = DEFAULT_CONFIGS[config_key]
    return [(v.key, v.custom.pii_policy, v.instructions) for v in config.variations] + \
        [("built-in-default", str(default.custom_param("pii_policy", "basic")),
          default.instructions)]


def _placeholders(text: str) -> set[str]:
    return {token[1:-1] for token in PLACEHOLDER_PATTERN.findall(text)}


def test_the_placeholder_format_is_what_the_detector_writes():
    redacted = redact_pii("Mail jana.novak@example.com about PPO.", "basic").text
    assert placeholder("EMAIL") in redacted
    assert PLACEHOLDER_PATTERN.fullmatch(placeholder("REFERENCE_NUMBER"))


@pytest.mark.parametrize("key, policy, text", _served(SUPERVISOR_CONFIG))
def test_supervisor_prompts_ask_for_the_forced_route_tool(key, policy, text):
    assert RouteDecision.__name__ in text, key
    for field in RouteDecision.model_fields:
        assert field in text, (key, field)
    assert "one word" not in text.lower(), key


@pytest.mark.parametrize("key, policy, text", _served(SECURITY_CONFIG))
def test_security_prompts_use_the_placeholder_format_of_their_policy(key, policy, text):
    named = _placeholders(text)
    assert named, key
    assert named <= ALL_TYPES, (key, named - ALL_TYPES)
    assert not _OTHER_FORMATS.search(text), (key, _OTHER_FORMATS.findall(text))
    assert "keep every" in text.lower() and "placeholder" in text.lower(), key
    assert "return only" in text.lower(), key  # the reply is used as the rewritten message
    if key != "built-in-default":  # the short default names examples, not the whole list
        assert named == POLICIES[policy], (key, POLICIES[policy] ^ named)


@pytest.mark.parametrize("key, policy, text", _served(SUPPORT_CONFIG))
def test_support_prompts_name_placeholders_as_the_detector_writes_them(key, policy, text):
    assert _placeholders(text) <= ALL_TYPES, key
    assert not _OTHER_FORMATS.search(text), (key, _OTHER_FORMATS.findall(text))


def test_the_judge_rubric_names_placeholders_in_the_same_format():
    from tools.traffic.judge import RUBRIC

    assert _placeholders(RUBRIC) and _placeholders(RUBRIC) <= ALL_TYPES
    assert not _OTHER_FORMATS.search(RUBRIC)
