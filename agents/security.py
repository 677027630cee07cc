"""The security agent: redacts PII with the served policy before support sees the request.

The deterministic redaction of the variation's `pii_policy` is the floor. The security model
receives that redaction and may redact more; its output is used only if every entity the
detector found is still gone and every placeholder is still there. On any error the floor
goes on (or, with PII_ON_ERROR=refuse, the request is refused): raw PII never goes on.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.runtime import Runtime

from agents.context import RequestContext
from agents.state import ChatState, Turn
from utils.flags.client import SECURITY_CONFIG
from utils.privacy.placeholders import PLACEHOLDER_PATTERN
from utils.telemetry.instrumentation import ModelUsage, RunTimer

log = logging.getLogger(__name__)

FALLBACK_POLICY = "strict"
_PLACEHOLDER = PLACEHOLDER_PATTERN
_WORD = re.compile(r"\w+")
REFUSAL = ("I could not safely remove the personal data from your message, so I did not send "
           "it on. Please remove names, contact details and account numbers and ask again.")


async def security_node(state: ChatState, runtime: Runtime[RequestContext]) -> dict:
    ctx = runtime.context
    config = ctx.configs.get(SECURITY_CONFIG)
    timer, usage = RunTimer(), ModelUsage()
    policy = str(config.custom_param("pii_policy", "basic"))
    message = state["message"]
    history = state.get("history", [])

    try:
        floor, safe_history = _redact_request(ctx, message, history, policy)
    except Exception as exc:
        log.error("redaction with policy %r failed (%s) in request %s; using %r",
                  policy, type(exc).__name__, ctx.request_id, FALLBACK_POLICY)
        try:
            floor, safe_history = _redact_request(ctx, message, history, FALLBACK_POLICY)
        except Exception:
            return _refuse(ctx, config, timer, usage, "redaction failed")

    safe_message, error = floor.text, None
    if config.enabled:
        try:
            model = ctx.models.get(config.provider, config.model, config.parameters)
            reply = await model.ainvoke(
                [SystemMessage(config.instructions), HumanMessage(floor.text)],
                timer.config_for(model, config))
            usage.add(reply)
            candidate = reply.text if hasattr(reply, "text") else str(reply.content)
            if candidate == floor.text:
                pass  # the model agreed with the floor
            elif _keeps_floor(ctx, message, floor, candidate):
                safe_message = candidate
            else:
                log.warning("security model output in request %s dropped a redaction; "
                            "using the deterministic redaction", ctx.request_id)
        except Exception as exc:
            error = f"{type(exc).__name__}: security model failed"
            log.warning("security model failed in request %s (%s)", ctx.request_id,
                        type(exc).__name__)
            if ctx.settings.PII_ON_ERROR == "refuse":
                return _refuse(ctx, config, timer, usage, error)

    pii_types = sorted({entity.type for entity in floor.entities})
    sent = [config.instructions, floor.text] if error is not None else None
    ctx.recorder.finish_run(config, "security", timer, usage, error=error, sent=sent,
                            pii_types=pii_types, redacted_text=safe_message)
    return {"safe_message": safe_message, "safe_history": safe_history}


def _redact_request(ctx: RequestContext, message: str, history: list[Turn],
                    policy: str) -> tuple[Any, list[Turn]]:
    """The deterministic redaction of the message and of every history turn, scanned as one
    conversation so a value typed across two turns is redacted in both."""
    *turns, floor = ctx.pii.redact_turns([*(t["content"] for t in history), message], policy)
    return floor, [Turn(role=t["role"], content=r.text)
                   for t, r in zip(history, turns, strict=True)]


def _keeps_floor(ctx: RequestContext, original: str, floor, candidate: str) -> bool:
    """A model's output is usable only if it is the floor with, at most, more redacted.

    So: no entity the detector found survives, no placeholder is lost, and the rest is the
    floor's own text (at most a tenth of its words new, at least half of them kept).
    """
    if not candidate or not candidate.strip():
        return False
    if ctx.pii.surviving(original, floor.entities, candidate):
        return False
    if len(_PLACEHOLDER.findall(candidate)) < len(_PLACEHOLDER.findall(floor.text)):
        return False
    floor_words = _words(floor.text)
    kept = _words(candidate)
    novel = [word for word in kept if word not in set(floor_words)]
    return len(novel) <= 0.1 * max(1, len(kept)) and len(kept) >= 0.5 * len(floor_words)


def _words(text: str) -> list[str]:
    return _WORD.findall(_PLACEHOLDER.sub(" ", text).casefold())


def _refuse(ctx: RequestContext, config, timer: RunTimer, usage: ModelUsage, why: str) -> dict:
    ctx.recorder.finish_run(config, "security", timer, usage, error=why)
    return {"refused": True, "response": REFUSAL, "safe_message": ""}
