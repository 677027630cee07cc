"""The supervisor: prescreens for PII and routes to security or straight to support.

The deterministic detector always runs on the message and its history; its verdict can only
be widened by the supervisor model, never narrowed. Any doubt or error routes to security.
"""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field, ValidationError

from agents.context import RequestContext
from agents.state import ChatState
from utils.flags.client import SUPERVISOR_CONFIG
from utils.telemetry.instrumentation import ModelUsage, RunTimer

log = logging.getLogger(__name__)

ROUTING_POLICY = "strict"  # route on the widest entity set, whatever security then redacts


class RouteDecision(BaseModel):
    """The supervisor model's classification of a request."""

    needs_security: bool = Field(
        default=False,
        description="True if the text may still contain personal data (names, contact "
        "details, addresses, account numbers...) that must be redacted.",
    )
    reason: str = Field(default="", description="One short sentence.")


_classifiers: dict[int, tuple[Any, Runnable]] = {}


def _classifier(model: BaseChatModel) -> Runnable:
    """The model bound to RouteDecision as its one, required tool (built once per model).

    This is what `with_structured_output(..., include_raw=True)` does under the hood, minus a
    parallel raw/parsed runnable and a JSON-schema rebuild on every call, which together cost
    more CPU than the rest of the supervisor. `tool_choice="any"` with a single tool is the
    forced choice every provider here accepts (OpenAI "required", Anthropic and Mistral "any").
    """
    cached = _classifiers.get(id(model))
    if cached is None or cached[0] is not model:
        cached = (model, model.bind_tools([RouteDecision], tool_choice="any"))
        _classifiers[id(model)] = cached
    return cached[1]


def parse_decision(message: AIMessage) -> RouteDecision | None:
    """The RouteDecision in the model's tool call, or None if it sent none or an invalid one."""
    for call in message.tool_calls:
        if call["name"] == RouteDecision.__name__:
            try:
                return RouteDecision.model_validate(call["args"])
            except ValidationError:
                return None
    return None


async def supervisor_node(state: ChatState, runtime: Runtime[RequestContext]) -> dict:
    ctx = runtime.context
    config = ctx.configs.get(SUPERVISOR_CONFIG)
    timer, usage = RunTimer(), ModelUsage()
    texts = [*(turn["content"] for turn in state.get("history", [])), state["message"]]

    try:  # one conversation, so a value split across turns still routes to security
        redactions = ctx.pii.redact_turns(texts, ROUTING_POLICY)
        found = any(r.entities for r in redactions)
        reason = "personal data detected" if found else "no personal data detected"
        screened = "\n".join(r.text for r in [redactions[-1], *redactions[:-1]])
    except Exception as exc:
        log.error("PII detector failed (%s); routing request %s to security",
                  type(exc).__name__, ctx.request_id)
        found, reason, screened = True, "detector error", ""

    error = None
    if config.enabled and screened:
        # The model only sees what the detector left, so it can add a route, never remove one.
        try:
            model = ctx.models.get(config.provider, config.model, config.parameters)
            reply = await _classifier(model).ainvoke(
                [SystemMessage(config.instructions), HumanMessage(screened)],
                timer.config_for(model, config),
            )
            usage.add(reply)
            decision = parse_decision(reply)
            if decision is None or decision.needs_security:
                found, reason = True, "supervisor model flagged the request"
        except Exception as exc:
            error = f"{type(exc).__name__}: routing model failed"
            log.warning("supervisor model failed in request %s (%s); routing to security",
                        ctx.request_id, type(exc).__name__)
            found, reason = True, "supervisor model error"

    ctx.recorder.finish_run(config, "supervisor", timer, usage, error=error,
                            sent=[config.instructions, screened])
    route = "security" if found else "support"
    log.debug("request %s routed to %s: %s", ctx.request_id, route, reason)
    return {"route": route}
