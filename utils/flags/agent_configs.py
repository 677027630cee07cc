"""The three agents' AI Configs: their keys, the typed config an agent runs with, and the
built-in defaults served when no valid flag says otherwise."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from utils.privacy.placeholders import placeholder

if TYPE_CHECKING:
    from ldai.tracker import LDAIConfigTracker

SUPERVISOR_CONFIG = "supervisor-agent"
SECURITY_CONFIG = "security-agent"
SUPPORT_CONFIG = "support-agent"
AGENT_CONFIG_KEYS = (SUPERVISOR_CONFIG, SECURITY_CONFIG, SUPPORT_CONFIG)

DEFAULT_VARIATION_KEY = "built-in-default"
STRICTEST_PII_POLICY = "strict"  # what the security agent runs when no valid config says

# Where an agent's config came from: the flag layer, the built-in default, or the last good one.
ConfigOrigin = Literal["flags", "default", "fallback"]


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """What one agent runs with for one request: model, parameters, prompt and tools."""

    config_key: str
    variation_key: str
    enabled: bool
    model: str
    provider: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    custom: Mapping[str, Any] = field(default_factory=dict)
    instructions: str = ""
    tools: tuple[str, ...] = ()
    in_experiment: bool = False
    version: int = 1
    source: ConfigOrigin = "flags"
    tracker_factory: Callable[[], LDAIConfigTracker] | None = field(
        default=None, compare=False, repr=False
    )

    def custom_param(self, name: str, default: Any = None) -> Any:
        return self.custom.get(name, default)


# Built-in defaults: served when the flag file is missing or a variation is malformed.
_DEFAULT_INSTRUCTIONS = {
    SUPERVISOR_CONFIG: (
        "You route support requests. Send any message that may contain personal data "
        "to the security agent first; send everything else straight to the support agent. "
        "Answer only by calling the RouteDecision tool: needs_security true for the "
        "security agent, false for support, with a one-sentence reason."
    ),
    SECURITY_CONFIG: (
        "You remove personal data from a support request before anyone else reads it. "
        "Keep every placeholder already in it as written; replace each identifier left with "
        f"its type in brackets, such as {placeholder('EMAIL')} or {placeholder('PERSON')}, "
        "and change nothing else. Return only the rewritten message."
    ),
    SUPPORT_CONFIG: (
        "You are a support assistant for a reinforcement learning course. Answer from the "
        "knowledge base: search it, then answer concisely and name the documents you used."
    ),
}

DEFAULT_CONFIGS: dict[str, AgentConfig] = {
    SUPERVISOR_CONFIG: AgentConfig(
        config_key=SUPERVISOR_CONFIG, variation_key=DEFAULT_VARIATION_KEY, enabled=True,
        model="gpt-4o-mini", provider="openai", parameters={"temperature": 0.0},
        instructions=_DEFAULT_INSTRUCTIONS[SUPERVISOR_CONFIG], source="default",
    ),
    SECURITY_CONFIG: AgentConfig(
        config_key=SECURITY_CONFIG, variation_key=DEFAULT_VARIATION_KEY, enabled=True,
        model="claude-haiku-4-5", provider="anthropic", parameters={"temperature": 0.0},
        # Fail closed: without a valid flag, every user gets the strictest redaction.
        custom={"pii_policy": STRICTEST_PII_POLICY},
        instructions=_DEFAULT_INSTRUCTIONS[SECURITY_CONFIG],
        source="default",
    ),
    SUPPORT_CONFIG: AgentConfig(
        config_key=SUPPORT_CONFIG, variation_key=DEFAULT_VARIATION_KEY, enabled=True,
        model="gpt-4o-mini", provider="openai",
        parameters={"temperature": 0.3, "max_tokens": 800},
        custom={"max_tool_calls": 3}, instructions=_DEFAULT_INSTRUCTIONS[SUPPORT_CONFIG],
        tools=("search_v1",), source="default",
    ),
}
