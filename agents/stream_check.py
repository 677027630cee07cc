"""A live model's reply that ended without a finish reason is an error, not a short answer.

A streamed reply cut off mid-way (the connection dropped, a proxy timed out) still reaches
LangChain as a message: the text so far, no usage, no `finish_reason` (OpenAI, Mistral) or
`stop_reason` (Anthropic). `CompleteReplyCheck`, attached to every live model, raises
`IncompleteReply` for it, so the run is recorded as failed instead of answered.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

_FINISH_KEYS = ("finish_reason", "stop_reason")


class IncompleteReply(RuntimeError):
    """The provider's stream ended before it said why it stopped."""


class CompleteReplyCheck(BaseCallbackHandler):
    """Raises `IncompleteReply` at the end of a model call whose reply has no finish reason."""

    raise_error = True  # LangChain re-raises a handler's error only when this is set
    run_inline = True

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        for generations in response.generations:
            for generation in generations:
                message = getattr(generation, "message", None)
                meta = {**(getattr(message, "response_metadata", None) or {}),
                        **(generation.generation_info or {})}
                if not any(meta.get(key) for key in _FINISH_KEYS):
                    provider = meta.get("model_provider") or "the provider"
                    raise IncompleteReply(
                        f"{provider}'s reply ended without a finish reason (stream cut off "
                        f"after {len(getattr(message, 'text', '') or '')} characters)")


COMPLETE_REPLY_CHECK = CompleteReplyCheck()
