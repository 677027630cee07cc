"""Traces captured in memory with the SDK's own exporter, and helpers to read span trees."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from utils.telemetry import tracing


@contextmanager
def captured_spans(settings: Any = None) -> Iterator[InMemorySpanExporter]:
    """Tracing on, every span exported synchronously into the yielded exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider, settings)
    try:
        yield exporter
    finally:
        tracing.stop_using()
        provider.shutdown()


def tree(spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> list[tuple[int, str]]:
    """(depth, name) of each span, depth-first in start order: the shape of the trace."""
    by_id = {s.context.span_id: s for s in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent and span.parent.span_id in by_id else None
        children.setdefault(parent, []).append(span)
    shape: list[tuple[int, str]] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time):
            shape.append((depth, span.name))
            walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return shape


def named(spans: Any, name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def dump(spans: Any) -> str:
    """Every span as JSON (names, attributes, events, links, status): for leak checks."""
    return "\n".join(span.to_json() for span in spans)
