"""The LangChain callback handler behind `tracing.model_callbacks`: model and tool spans."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from utils.telemetry.span_attributes import PREFIX, mark_error

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger(__name__)


class ModelCallSpans(BaseCallbackHandler):
    """`chat {model}` and `execute_tool {tool}` spans, children of the current agent span."""

    run_inline = True  # called on the event loop, in order
    ignore_chain = ignore_retriever = True

    def __init__(self, tracer: Tracer, model: str, request: dict[str, Any]) -> None:
        from opentelemetry import context

        self._tracer = tracer
        self._parent = context.get_current()  # the agent span, current when this is built
        self._model = model
        self._request = request  # provider, model and parameters, as on the agent span
        self._spans: dict[UUID, Span] = {}
        self._started: dict[UUID, float] = {}  # model calls still waiting for a first token

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID,
                            **kwargs: Any) -> None:
        from opentelemetry.trace import SpanKind

        self._spans[run_id] = self._tracer.start_span(
            f"chat {self._model}", context=self._parent, kind=SpanKind.CLIENT,
            attributes={"gen_ai.operation.name": "chat", **self._request})
        self._started[run_id] = time.perf_counter()

    def on_llm_new_token(self, token: str, *, run_id: UUID, chunk: Any = None,
                         **kwargs: Any) -> None:
        started = self._started.get(run_id)
        message = getattr(chunk, "message", None)
        # As RunTimer: the first chunk often only names the role; wait for text or a tool call.
        if started is not None and (token or getattr(message, "tool_call_chunks", None)):
            del self._started[run_id]
            self._spans[run_id].set_attribute(
                PREFIX + "time_to_first_token_ms",
                round((time.perf_counter() - started) * 1000.0, 3))

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.pop(run_id, None)
        self._started.pop(run_id, None)
        if span is None:
            return
        try:
            message = response.generations[0][0].message
            usage = message.usage_metadata or {}
            meta = message.response_metadata or {}
            attributes = {"gen_ai.usage.input_tokens": int(usage.get("input_tokens") or 0),
                          "gen_ai.usage.output_tokens": int(usage.get("output_tokens") or 0),
                          "gen_ai.response.model": str(meta.get("model_name")
                                                       or meta.get("model") or self._model),
                          PREFIX + "simulated": bool(meta.get("simulated"))}
            finish = meta.get("finish_reason") or meta.get("stop_reason")
            if finish:
                attributes["gen_ai.response.finish_reasons"] = [str(finish)]
            if meta.get("id"):
                attributes["gen_ai.response.id"] = str(meta["id"])
            if meta.get("time_to_first_token_ms") is not None:
                attributes[PREFIX + "time_to_first_token_ms"] = float(
                    meta["time_to_first_token_ms"])
            span.set_attributes(attributes)
        except (AttributeError, IndexError, TypeError, ValueError):
            log.debug("model call %s ended without a readable message", run_id)
        span.end()

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_with_error(run_id, error)

    def on_tool_start(self, serialized: Any, input_str: str, *, run_id: UUID,
                      **kwargs: Any) -> None:
        name = str((serialized or {}).get("name") or kwargs.get("name") or "tool")
        attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
                      "gen_ai.tool.type": "function"}
        if kwargs.get("tool_call_id"):
            attributes["gen_ai.tool.call.id"] = str(kwargs["tool_call_id"])
        if (serialized or {}).get("description"):
            attributes["gen_ai.tool.description"] = str(serialized["description"])[:500]
        self._spans[run_id] = self._tracer.start_span(f"execute_tool {name}",
                                                      context=self._parent,
                                                      attributes=attributes)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.pop(run_id, None)
        if span is not None:
            if getattr(output, "status", None) == "error":
                mark_error(span, "tool_error")
            span.end()

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_with_error(run_id, error)

    def _end_with_error(self, run_id: UUID, error: BaseException) -> None:
        self._started.pop(run_id, None)
        span = self._spans.pop(run_id, None)
        if span is not None:
            mark_error(span, type(error).__qualname__)
            span.end()
