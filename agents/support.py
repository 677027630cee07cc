"""The support agent: a tool-calling agent over the sanitized request.

It runs LangChain's `create_agent` with the tools its variation lists, bounded by the
variation's `max_tool_calls` through `ToolCallLimitMiddleware`. Agents are compiled once per
distinct (model, tools, instructions, limit) and reused across requests.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import ToolCallLimitMiddleware
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.runtime import Runtime

from agents.context import RequestContext
from agents.state import ChatState
from utils.flags.client import SUPPORT_CONFIG
from utils.telemetry import metrics, tracing
from utils.telemetry.instrumentation import ModelUsage, RunTimer

log = logging.getLogger(__name__)

DEFAULT_MAX_TOOL_CALLS = 5
DISABLED_REPLY = "The support assistant is switched off for your account right now."
_AGENT_CACHE_LIMIT = 128


class SupportAgentError(RuntimeError):
    """The support model failed; the API answers 502 after the run is recorded."""


class _AgentCache:
    def __init__(self) -> None:
        self._agents: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def get(self, model: Any, tools: list, instructions: str, max_tool_calls: int) -> Any:
        key = (id(model), tuple(t.name for t in tools), instructions, max_tool_calls)
        with self._lock:
            agent = self._agents.get(key)
            if agent is None:
                if len(self._agents) >= _AGENT_CACHE_LIMIT:
                    self._agents.pop(next(iter(self._agents)))
                middleware = [ToolCallLimitMiddleware(run_limit=max_tool_calls,
                                                      exit_behavior="end")]
                agent = create_agent(model, tools, system_prompt=instructions,
                                     middleware=middleware)
                self._agents[key] = agent
            return agent


_agents = _AgentCache()


def _history_messages(state: ChatState) -> list[AnyMessage]:
    messages: list[AnyMessage] = []
    for turn in state.get("safe_history", state.get("history", [])):
        cls = HumanMessage if turn["role"] == "user" else AIMessage
        messages.append(cls(turn["content"]))
    return messages


async def support_node(state: ChatState, runtime: Runtime[RequestContext]) -> dict:
    ctx = runtime.context
    config = ctx.configs.get(SUPPORT_CONFIG)
    timer, usage = RunTimer(), ModelUsage()
    # Clean requests skip security, so the message itself is the safe text.
    text = state.get("safe_message") or state["message"]
    if not config.enabled:
        ctx.recorder.finish_run(config, "support", timer, usage)
        return {"response": DISABLED_REPLY}

    max_calls = int(config.custom_param("max_tool_calls", DEFAULT_MAX_TOOL_CALLS))
    tools = ctx.tools.build(config.tools)
    inputs = [*_history_messages(state), HumanMessage(text)]
    tracing.record_support_input(
        ("user" if isinstance(m, HumanMessage) else "assistant", m.text) for m in inputs)
    try:
        model = ctx.models.get(config.provider, config.model, config.parameters)
        agent = _agents.get(model, tools, config.instructions, max(1, max_calls))
        result = await agent.ainvoke({"messages": inputs}, timer.config_for(model, config))
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
        ctx.recorder.finish_run(config, "support", timer, usage, error=error,
                                sent=[config.instructions, *inputs])
        raise SupportAgentError(f"{config.provider} model {config.model!r} failed: "
                                f"{type(exc).__name__}") from exc

    produced = result["messages"][len(inputs):]
    usage.extend(produced)
    requested = sum(len(m.tool_calls) for m in produced if isinstance(m, AIMessage))
    # Calls the limit blocked come back as error ToolMessages: only executed calls count.
    tools_used = [m.name for m in produced
                  if isinstance(m, ToolMessage) and m.status != "error" and m.name]
    response = _final_text(produced, max_calls, limited=requested > max_calls)
    run = ctx.recorder.finish_run(config, "support", timer, usage, tools_used=tools_used,
                                  sources=_sources(produced))
    try:
        ctx.recorder.track_metric(metrics.PII_EXPOSED_ENTITIES, ctx.pii.count_exposed(text), run)
    except Exception:
        log.exception("pii_exposed_entities failed in request %s", ctx.request_id)
    return {"response": response}


def _final_text(messages: list[AnyMessage], max_calls: int, *, limited: bool) -> str:
    last = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
    text = last.text if last is not None else ""
    if limited or last is None or last.tool_calls or not text.strip():
        return (f"I stopped before finishing: answering this needed more than the "
                f"{max_calls} tool call(s) your plan allows per question. Please ask a "
                "narrower question.")
    return text


def _sources(messages: list[AnyMessage]) -> list[str]:
    """Documents the tools returned, in first-seen order (for the per-agent details)."""
    seen: list[str] = []
    for message in messages:
        if isinstance(message, ToolMessage) and isinstance(message.artifact, list):
            for hit in message.artifact:
                label = hit.get("doc_id") if isinstance(hit, dict) else None
                if label and label not in seen:
                    seen.append(label)
    return seen
