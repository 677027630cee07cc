"""A local fake of Anthropic's Messages API (POST /v1/messages), streamed as the API streams.

A streamed answer is the documented event flow: `message_start` (a Message with empty content
and the input tokens), per content block a `content_block_start`, its deltas (`text_delta`;
`input_json_delta` pieces of a `tool_use` block's input) and `content_block_stop`, a `ping`,
then `message_delta` with the `stop_reason` and the cumulative usage, and `message_stop`.
Failures as the API sends them: an HTTP error with `{"type": "error", "error": {...}}`, an
`event: error` inside a 200 stream (e.g. `overloaded_error`), or a stream cut off before its
`message_delta`.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.local_server import Answer, ModelServer, QuietHandler

# HTTP status → the error type Anthropic's API names in its error body.
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large",
               429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the request's last user message (string or text blocks)."""
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if block.get("type") == "text")


def has_tool_result(body: dict[str, Any]) -> bool:
    return any(isinstance(m.get("content"), list) and
               any(block.get("type") == "tool_result" for block in m["content"])
               for m in body.get("messages", []))


class FakeAnthropic(ModelServer):
    """Answers POST /v1/messages; records requests; can fail, error mid-stream or cut off.

    With `tool_call` set, a request that offers tools gets that call (after `preamble` text,
    if any) until the conversation carries a tool result; then, or without tools, the answer.
    """

    def __init__(self, answer: Answer = "Q-learning is off-policy TD control.",
                 usage: tuple[int, int] = (42, 7),
                 tool_call: tuple[str, dict[str, Any]] | None = None,
                 preamble: str = "") -> None:
        self.preamble = preamble
        self.stream_error: str | None = None  # an error event's type, sent after the first delta
        fake = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.read_json()
                fake.requests.append({"path": self.path, "body": body,
                                      # The key as x-api-key, or (this SDK) as a bearer token.
                                      "auth": self.headers.get("x-api-key")
                                      or self.headers.get("authorization"),
                                      "version": self.headers.get("anthropic-version")})
                if self.path != "/v1/messages":
                    self.send_json(404, fake.error_body(404, f"no route {self.path}"))
                elif fake.fail_status:
                    # retry-after-ms keeps the SDK's retries of 429/5xx fast in tests.
                    self.send_json(fake.fail_status, fake.error_body(
                        fake.fail_status, "upstream exploded"), {"retry-after-ms": "5",
                                                                 "request-id": "req_fake"})
                elif body.get("stream"):
                    self.start_events()
                    for i, (name, data) in enumerate(fake.events(body)):
                        if fake.cut_after is not None and i >= fake.cut_after:
                            return  # the connection closes mid-stream
                        self.send_event(data, name)
                else:
                    self.send_json(200, fake.message(body))

        super().__init__(Handler, answer=answer, usage=usage, tool_call=tool_call)

    @property
    def base_url(self) -> str:
        return self.root_url  # the SDK appends /v1/messages

    @staticmethod
    def error_body(status: int, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"),
                                           "message": message}}

    def _blocks(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """The reply's content blocks and its stop reason."""
        if self.tool_call is not None and body.get("tools") and not has_tool_result(body):
            name, arguments = self.tool_call
            blocks = [{"type": "text", "text": self.preamble}] if self.preamble else []
            blocks.append({"type": "tool_use", "id": "toolu_01FakeFakeFake", "name": name,
                           "input": arguments})
            return blocks, "tool_use"
        return [{"type": "text", "text": self.answer_text(body)}], "end_turn"

    def message(self, body: dict[str, Any]) -> dict[str, Any]:
        blocks, stop = self._blocks(body)
        prompt, completion = self.usage
        return {"id": "msg_fake", "type": "message", "role": "assistant",
                "model": body.get("model", "claude-haiku-4-5"), "content": blocks,
                "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": prompt, "output_tokens": completion}}

    def events(self, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The streamed form of `message(body)`, as (event name, data) pairs."""
        blocks, stop = self._blocks(body)
        prompt, completion = self.usage
        start = {**self.message(body), "content": [], "stop_reason": None,
                 "usage": {"input_tokens": prompt, "output_tokens": 1}}
        out: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": start}),
            ("ping", {"type": "ping"})]
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                out.append(("content_block_start", {"type": "content_block_start",
                                                    "index": index,
                                                    "content_block": {"type": "text",
                                                                      "text": ""}}))
                words = block["text"].split(" ")
                out += [("content_block_delta", {
                    "type": "content_block_delta", "index": index,
                    "delta": {"type": "text_delta", "text": w if i == 0 else " " + w}})
                    for i, w in enumerate(words)]
            else:
                out.append(("content_block_start", {"type": "content_block_start",
                                                    "index": index, "content_block": {
                                                        **block, "input": {}}}))
                encoded = json.dumps(block["input"])
                cut = max(1, len(encoded) // 2)  # the API sends the input JSON in pieces
                out += [("content_block_delta", {
                    "type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": piece}})
                    for piece in ("", encoded[:cut], encoded[cut:])]
            out.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        if self.stream_error is not None:
            first_delta = next(i for i, (name, _) in enumerate(out)
                               if name == "content_block_delta")
            return out[:first_delta + 1] + [("error", {"type": "error", "error": {
                "type": self.stream_error, "message": "Overloaded"}})]
        out.append(("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
            # Cumulative counts, input tokens included, as the API reports them.
            "usage": {"input_tokens": prompt, "output_tokens": completion}}))
        out.append(("message_stop", {"type": "message_stop"}))
        return out
