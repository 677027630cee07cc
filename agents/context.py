"""Per-request runtime context, built by the chat service and read through `Runtime[...]`.

Nodes never read settings or flags themselves: the config resolver evaluates each agent's
AI Config for this request's user (recording the exposure once), and the model cache,
PII detector and recorder come from here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

from agents.models import ModelCache
from agents.tools.registry import Toolbox
from utils.flags.client import AgentConfig, ConfigFlags
from utils.settings import Settings
from utils.telemetry.instrumentation import RunRecorder


class PiiDetector(Protocol):
    """What the graph needs from PII detection (utils.privacy.detector provides the real one)."""

    def detect(self, text: str, policy: str) -> list[Any]: ...
    def redact(self, text: str, policy: str) -> Any: ...
    def surviving(self, original: str, entities: list[Any], candidate: str) -> list[Any]: ...
    def count_exposed(self, text: str) -> int: ...
    def detect_turns(self, texts: list[str], policy: str) -> list[list[Any]]: ...
    def redact_turns(self, texts: list[str], policy: str) -> list[Any]: ...


class PresidioPiiDetector:
    """The deterministic detector of utils.privacy.detector (Presidio pattern recognizers plus our own)."""

    def detect(self, text: str, policy: str) -> list[Any]:
        from utils.privacy.detector import detect_pii

        return detect_pii(text, policy)

    def redact(self, text: str, policy: str) -> Any:
        from utils.privacy.detector import redact_pii

        return redact_pii(text, policy)

    def surviving(self, original: str, entities: list[Any], candidate: str) -> list[Any]:
        from utils.privacy.detector import surviving_entities

        return surviving_entities(original, entities, candidate)

    def count_exposed(self, text: str) -> int:
        from utils.privacy.detector import count_exposed

        return count_exposed(text)

    def detect_turns(self, texts: list[str], policy: str) -> list[list[Any]]:
        """Per-turn entities, with values split across turns found (through `self.detect`)."""
        from utils.privacy.conversation import detect_turns

        return detect_turns(texts, policy, self.detect)

    def redact_turns(self, texts: list[str], policy: str) -> list[Any]:
        """Each turn redacted, values split across turns included (through `self.detect`)."""
        from utils.privacy.conversation import redact_turns

        return redact_turns(texts, policy, self.detect)


class ConfigResolver:
    """Evaluates an agent's config once per request and records the exposure."""

    def __init__(self, flags: ConfigFlags, ld_context: Any, recorder: RunRecorder) -> None:
        self._flags = flags
        self._ld_context = ld_context
        self._recorder = recorder
        self._configs: dict[str, AgentConfig] = {}
        self._lock = threading.Lock()

    def get(self, config_key: str) -> AgentConfig:
        with self._lock:
            config = self._configs.get(config_key)
            if config is None:
                config = self._flags.agent_config(config_key, self._ld_context)
                self._configs[config_key] = config
                self._recorder.record_exposure(config)
            return config


@dataclass(kw_only=True)
class RequestContext:
    request_id: str
    user_key: str
    configs: ConfigResolver
    models: ModelCache
    recorder: RunRecorder
    pii: PiiDetector
    tools: Toolbox
    settings: Settings
