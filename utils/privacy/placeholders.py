"""The one format of a redaction placeholder, `[TYPE]` (e.g. `[EMAIL]`, `[PERSON]`).

The detector writes it, the security agent checks a model kept it, and every prompt that
names placeholders (manifest, built-in defaults, the judge's rubric) is written with it or
tested against it.
"""

from __future__ import annotations

import re

# Any token of the form: brackets around an upper-case type name.
PLACEHOLDER_PATTERN = re.compile(r"\[[A-Z][A-Z_]*\]")


def placeholder(entity_type: str) -> str:
    """The text that replaces a redacted entity of `entity_type`."""
    return f"[{entity_type}]"
