"""OpenTelemetry traces of each request, in the GenAI semantic conventions (off by default).

On when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and
`OTEL_SDK_DISABLED` is not true): the SDK's OTLP/HTTP exporter behind a batch processor, so
every standard `OTEL_*` variable (headers, timeout, compression, `OTEL_BSP_*`, resource
attributes, propagators) works as the SDK documents. Off, every helper here returns at its
first line: no tracer, no span objects, no callbacks attached.

Spans: a server span per HTTP request, `invoke_workflow support-assistant` per graph run,
`invoke_agent {agent}` per graph node, `chat {model}` per model call, `execute_tool {tool}`
per tool call. No message text is ever put on a span, except with content capture on, and
then only the redacted text the support agent received. Exceptions are recorded by type,
never by message (a message could quote the user's text).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

    from utils.settings import Settings

from utils.telemetry.span_attributes import PREFIX, mark_error

log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "multi-agent-experiments"
WORKFLOW_NAME = "support-assistant"
LATEST_OPT_IN = "gen_ai_latest_experimental"
# Our provider keys → the GenAI `gen_ai.provider.name` values (the rest are the same).
_GENAI_PROVIDER = {"mistral": "mistral_ai"}
_CAPTURE_ON = {"true", "span_only", "span_and_event"}
_CAPTURE_OFF = {"", "false", "no_content", "event_only"}  # we emit no GenAI events


@dataclass
class _State:
    tracer: Tracer | None = None
    provider: TracerProvider | None = None
    owned: bool = False  # built by setup_tracing, so shut down by shutdown()
    capture_content: bool = False
    legacy_system: bool = True  # also emit the pre-1.37 `gen_ai.system`


_state = _State()


def active() -> bool:
    return _state.tracer is not None


# -- set-up ---------------------------------------------------------------------------------

def tracing_requested(settings: Settings) -> bool:
    """Whether the OTLP variables ask for traces (and the SDK is not disabled)."""
    if str(settings.OTEL_SDK_DISABLED or "").strip().lower() == "true":
        return False
    return bool((settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or "").strip()
                or (settings.OTEL_EXPORTER_OTLP_ENDPOINT or "").strip())


def capture_content_from(value: str | None) -> bool:
    """`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` (a boolean, or the newer enum)."""
    normalized = (value or "").strip().lower()
    if normalized in _CAPTURE_ON:
        return True
    if normalized in _CAPTURE_OFF:
        return False
    raise ValueError(
        f"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT={value!r} is not one of true, "
        "false, NO_CONTENT, SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT")


def latest_only_from(value: str | None) -> bool:
    """Whether `OTEL_SEMCONV_STABILITY_OPT_IN` asks for the latest GenAI conventions only."""
    return LATEST_OPT_IN in {part.strip() for part in (value or "").split(",")}


def _export_settings_to_environ(settings: Settings) -> None:
    """OTEL_* values read from `.env` become visible to the SDK, which reads os.environ."""
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if name.startswith("OTEL_") and value not in (None, ""):
            os.environ.setdefault(name, str(value))


def setup_tracing(settings: Settings) -> TracerProvider | None:
    """Start exporting traces if the OTLP variables ask for it; else leave tracing as it is."""
    if not tracing_requested(settings):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    _export_settings_to_environ(settings)
    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # OTEL_TRACES_SAMPLER honoured here
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    # Deliberately not the global provider: FastAPI's native telemetry would then add a second
    # server span per request; a user who sets a global one gets ours nested under FastAPI's.
    use_provider(provider, settings, owned=True)
    log.info("tracing on: OTLP/HTTP export as %s", resource.attributes.get(SERVICE_NAME))
    return provider


def use_provider(provider: TracerProvider, settings: Settings | None = None, *,
                 owned: bool = False) -> None:
    """Trace through `provider` (tests pass one with an in-memory exporter)."""
    _state.provider, _state.owned = provider, owned
    _state.tracer = provider.get_tracer("multi_agent_experiments")
    _state.capture_content = capture_content_from(
        getattr(settings, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", None))
    _state.legacy_system = not latest_only_from(
        getattr(settings, "OTEL_SEMCONV_STABILITY_OPT_IN", None))


def shutdown() -> None:
    """Flush and stop what setup_tracing started (server shutdown); tracing is then off."""
    provider, owned = _state.provider, _state.owned
    _state.tracer = _state.provider = None
    _state.owned = False
    if provider is not None and owned:
        provider.shutdown()


def stop_using() -> None:
    """Tracing off again without shutting the provider down (tests own theirs)."""
    _state.tracer = _state.provider = None
    _state.owned = False


# -- spans ----------------------------------------------------------------------------------

class _NoSpan:
    """What the span helpers return with tracing off: enters and leaves at no cost."""

    span = None

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_SPAN = _NoSpan()


class _SpanScope:
    """A current span that records an exception by type only, never by message."""

    def __init__(self, span: Span) -> None:
        from opentelemetry import trace

        self.span = span
        self._manager = trace.use_span(span, end_on_exit=True, record_exception=False,
                                       set_status_on_exception=False)

    def __enter__(self) -> Span:
        return self._manager.__enter__()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # An error.type set inside (an HTTP status, the provider's exception) is the better one.
        if exc_type is not None and "error.type" not in (self.span.attributes or {}):
            mark_error(self.span, exc_type.__qualname__)
        self._manager.__exit__(exc_type, exc, tb)


def mark_current_error(error_type: str) -> None:
    """Mark the current span failed with `error_type` (an exception's type, never its text)."""
    if _state.tracer is None:
        return
    from opentelemetry import trace

    mark_error(trace.get_current_span(), error_type)


def server_span(method: str, route: str, headers: Mapping[str, str] | None = None,
                links: Iterable[tuple[str, str]] = ()) -> _SpanScope | _NoSpan:
    """The SERVER span of an HTTP request, continuing the caller's `traceparent` if any.

    `links` are (trace id, span id) pairs in hex, e.g. the request a feedback is about.
    """
    if _state.tracer is None:
        return _NO_SPAN
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags

    span_links = []
    for trace_id, span_id in links:
        try:
            context = SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True,
                                  trace_flags=TraceFlags(TraceFlags.SAMPLED))
        except (TypeError, ValueError):
            continue  # a malformed stored id links nothing rather than failing the request
        if context.is_valid:
            span_links.append(Link(context))
    # Inside another instrumentation's request span (a globally configured provider turns on
    # FastAPI's own), nest under it; else continue the caller's trace context, if any.
    current = otel_context.get_current()
    parent = current if trace.get_current_span(current).get_span_context().is_valid else \
        propagate.extract(dict(headers or {}))
    span = _state.tracer.start_span(
        f"{method} {route}", context=parent,
        kind=SpanKind.SERVER, links=span_links,
        attributes={"http.request.method": method, "http.route": route, "url.path": route})
    return _SpanScope(span)


def finish_server_span(span: Span | None, status: int, request_id: str | None = None,
                       **attributes: Any) -> None:
    """The response status (5xx marks the span failed) and what the request was about."""
    if span is None or not span.is_recording():
        return
    span.set_attribute("http.response.status_code", status)
    if request_id is not None:
        span.set_attribute(PREFIX + "request.id", request_id)
    span.set_attributes({PREFIX + key: value for key, value in attributes.items()
                         if value is not None})
    if status >= 500:
        mark_error(span, str(status))


def workflow_span(request_id: str) -> _SpanScope | _NoSpan:
    """The span of one run of the graph (the trace's root when no HTTP request started it)."""
    if _state.tracer is None:
        return _NO_SPAN
    span = _state.tracer.start_span(f"invoke_workflow {WORKFLOW_NAME}", attributes={
        "gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": WORKFLOW_NAME,
        PREFIX + "request.id": request_id})
    return _SpanScope(span)


def agent_span(agent: str) -> _SpanScope | _NoSpan:
    """`invoke_agent {agent}` (INTERNAL: the agent runs in this process)."""
    if _state.tracer is None:
        return _NO_SPAN
    span = _state.tracer.start_span(f"invoke_agent {agent}", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent})
    return _SpanScope(span)


def current_ids() -> tuple[str, str] | tuple[None, None]:
    """(trace id, span id) in hex of the current span, or (None, None) with tracing off."""
    if _state.tracer is None:
        return None, None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def annotate(**attributes: Any) -> None:
    """Project attributes (`mae.*`) on the current span; None values are left out."""
    if _state.tracer is None:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({PREFIX + key: value for key, value in attributes.items()
                             if value is not None})


def _provider_attributes(provider: str) -> dict[str, str]:
    name = _GENAI_PROVIDER.get(provider, provider)
    attributes = {"gen_ai.provider.name": name}
    if _state.legacy_system:
        attributes["gen_ai.system"] = name
    return attributes


def request_attributes(provider: str, model: str,
                        parameters: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {**_provider_attributes(provider),
                                  "gen_ai.request.model": model}
    if isinstance(parameters.get("temperature"), int | float):
        attributes["gen_ai.request.temperature"] = float(parameters["temperature"])
    if isinstance(parameters.get("max_tokens"), int):
        attributes["gen_ai.request.max_tokens"] = parameters["max_tokens"]
    return attributes


def record_agent_run(run: Any, parameters: Mapping[str, Any]) -> None:
    """An agent run's config, usage, cost and outcome on its `invoke_agent` span."""
    if _state.tracer is None:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    if not span.is_recording():
        return
    attributes = {
        **request_attributes(run.provider, run.model, parameters),
        "gen_ai.usage.input_tokens": run.input_tokens,
        "gen_ai.usage.output_tokens": run.output_tokens,
        PREFIX + "config.key": run.config_key, PREFIX + "variation.key": run.variation_key,
        PREFIX + "in_experiment": run.in_experiment, PREFIX + "simulated": run.simulated,
        PREFIX + "duration_ms": run.duration_ms,
    }
    optional = {"cost_usd": run.cost_usd, "time_to_first_token_ms": run.time_to_first_token_ms,
                "tools_used": run.tools_used or None, "pii.types": run.pii_types or None}
    attributes.update({PREFIX + k: v for k, v in optional.items() if v is not None})
    span.set_attributes(attributes)
    if run.error:
        mark_error(span, _error_type(run.error))


def _error_type(error: str) -> str:
    """The exception type that opens a run's error text ("TypeError: ..."), or `_OTHER`."""
    head = error.split(":", 1)[0].strip()
    return head if head.isidentifier() else "_OTHER"


def record_support_input(turns: Iterable[tuple[str, str]]) -> None:
    """With content capture on: the redacted turns the support agent received, as
    `gen_ai.input.messages`. Never called with the user's raw message."""
    if _state.tracer is None or not _state.capture_content:
        return
    from opentelemetry import trace

    messages = [{"role": role, "parts": [{"type": "text", "content": text}]}
                for role, text in turns]
    trace.get_current_span().set_attribute("gen_ai.input.messages", json.dumps(messages))


def model_callbacks(provider: str, model: str, parameters: Mapping[str, Any]) -> Any:
    """The callback handler that traces a run's model and tool calls (None with tracing off).

    Built inside the agent's span, whose children its spans become.
    """
    if _state.tracer is None:
        return None
    from utils.telemetry.tracing_callbacks import ModelCallSpans

    return ModelCallSpans(_state.tracer, model, request_attributes(provider, model, parameters))
