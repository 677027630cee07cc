"""Stable entry point for PII detection: `from utils.pii import redact_pii`.

The detector lives in `utils.privacy.detector`; this module only re-exports it for outside
tools, and nothing inside `utils/` imports it.
"""

from utils.privacy.detector import (
    Entity,
    PiiDetectionError,
    Redaction,
    count_exposed,
    detect_pii,
    redact_pii,
    surviving_entities,
)

__all__ = ["Entity", "PiiDetectionError", "Redaction", "count_exposed", "detect_pii",
           "redact_pii", "surviving_entities"]
