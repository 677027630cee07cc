"""What every span of ours shares: the project's attribute prefix and how an error is marked."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.trace import Span

PREFIX = "mae."  # this project's own span attributes (config key, variation key, cost, ...)


def mark_error(span: Span | None, error_type: str) -> None:
    """Set `error.type` and an ERROR status on a recording span (the type only, never a message,
    which could quote the user)."""
    if span is None or not span.is_recording():
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, error_type))
