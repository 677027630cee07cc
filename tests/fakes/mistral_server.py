"""A local fake of Mistral's chat completions API (POST /v1/chat/completions), streamed.

Mistral's stream looks like OpenAI's, with its own details: `data:` chunks of
`chat.completion.chunk` objects, the first naming the role; a tool call arrives whole in one
delta (id of nine letters and digits, complete `arguments`); the *last* chunk carries the
`finish_reason` ("stop", "length", "tool_calls", ...) and the `usage` (sent unasked, there
is no `stream_options`), then `data: [DONE]`. Errors are JSON bodies with `object: "error"`.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.local_server import Answer, ModelServer, QuietHandler


def last_user_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


class FakeMistral(ModelServer):
    """Answers POST /v1/chat/completions; records requests; can fail or cut its stream.

    With `tool_call` set, a request that offers tools gets that call until the conversation
    holds a `tool` message; then, or without tools, the answer.
    """

    def __init__(self, answer: Answer = "Q-learning is off-policy TD control.",
                 usage: tuple[int, int] = (42, 7),
                 tool_call: tuple[str, dict[str, Any]] | None = None) -> None:
        fake = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.read_json()
                fake.requests.append({"path": self.path, "body": body,
                                      "auth": self.headers.get("authorization")})
                if self.path != "/v1/chat/completions":
                    self.send_json(404, {"object": "error", "message": "Not Found",
                                         "type": "invalid_request_error", "code": None})
                elif fake.fail_status:
                    self.send_json(fake.fail_status, fake.error_body(fake.fail_status))
                elif body.get("stream"):
                    self.start_events()
                    for i, chunk in enumerate(fake.chunks(body)):
                        if fake.cut_after is not None and i >= fake.cut_after:
                            return  # the connection closes mid-stream, no [DONE]
                        self.send_event(chunk)
                    self.send_event("[DONE]")
                else:
                    self.send_json(200, fake.completion(body))

        super().__init__(Handler, answer=answer, usage=usage, tool_call=tool_call)

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @staticmethod
    def error_body(status: int) -> dict[str, Any]:
        if status == 429:
            return {"object": "error", "message": "Requests rate limit exceeded",
                    "type": "rate_limited", "param": None, "code": "1300"}
        return {"object": "error", "message": "Internal server error",
                "type": "internal_server_error", "param": None, "code": "3000"}

    def _reply(self, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The assistant message and its finish reason."""
        called = any(m.get("role") == "tool" for m in body.get("messages", []))
        if self.tool_call is not None and body.get("tools") and not called:
            name, arguments = self.tool_call
            return {"role": "assistant", "content": "", "tool_calls": [{
                "id": "D681PevKs", "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
                "index": 0}]}, "tool_calls"
        return {"role": "assistant", "content": self.answer_text(body),
                "tool_calls": None}, "stop"

    def _usage(self) -> dict[str, int]:
        prompt, completion = self.usage
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion}

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        message, finish = self._reply(body)
        return {"id": "cmpl-fake", "object": "chat.completion", "created": 1_700_000_000,
                "model": body.get("model", "mistral-small-latest"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": self._usage()}

    def chunks(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        message, finish = self._reply(body)

        def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
            return {"id": "cmpl-fake", "object": "chat.completion.chunk",
                    "created": 1_700_000_000, "model": body.get("model", "mistral-small-latest"),
                    "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}

        out = [chunk({"role": "assistant", "content": ""})]
        if message.get("tool_calls"):
            out.append(chunk({"tool_calls": message["tool_calls"]}))
        else:
            words = message["content"].split(" ")
            out += [chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
        return out + [{**chunk({"content": ""}, finish), "usage": self._usage()}]
