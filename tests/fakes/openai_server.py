"""A local fake of OpenAI's Chat Completions wire protocol, for live-provider tests.

Answers plain requests with one JSON completion and `"stream": true` requests with
server-sent events (`chat.completion.chunk` objects, a usage chunk when
`stream_options.include_usage` is set, then `data: [DONE]`), as the API does.

Faults, for the fault-injection tests: `fail_status` (every request, or only the first
`fail_times`), `hang_s` (sleep before answering), `cut_after` (send that many stream chunks,
counting the role chunk and the first-token pause, then close the connection: no finish
reason, no usage, no `[DONE]`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.fakes.local_server import LocalServer, QuietHandler


class FakeOpenAI(LocalServer):
    """Answers POST /v1/chat/completions; records requests; can be told to fail."""

    def __init__(self, answer: str = "Q-learning is off-policy TD control.",
                 usage: tuple[int, int] = (42, 7),
                 tool_call: tuple[str, dict[str, Any]] | None = None,
                 first_token_delay_s: float = 0.0) -> None:
        self.answer = answer
        self.usage = usage
        self.tool_call = tool_call  # (function name, arguments): answer with this call
        self.first_token_delay_s = first_token_delay_s  # streams: pause after the role chunk
        self.fail_status: int | None = None
        self.cut_after: int | None = None  # stream chunks sent before the connection drops
        self.fail_times: int | None = None  # None: every request fails while fail_status is set
        self.hang_s = 0.0
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append({"path": self.path, "body": body,
                                      "auth": self.headers.get("authorization")})
                if fake.hang_s:
                    time.sleep(fake.hang_s)
                if fake.fail_status and (fake.fail_times is None
                                         or len(fake.requests) <= fake.fail_times):
                    self.send_json(fake.fail_status, {"error": {
                        "message": "upstream exploded", "type": "server_error"}})
                    return
                if body.get("stream"):
                    self._stream(fake.chunks(body))
                else:
                    self.send_json(200, fake.completion(body))

            def _stream(self, chunks: list[dict[str, Any] | None]) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                for i, chunk in enumerate(chunks):
                    if fake.cut_after is not None and i >= fake.cut_after:
                        return  # the connection closes mid-stream, no [DONE]
                    if chunk is None:  # the pause before the first token
                        time.sleep(fake.first_token_delay_s)
                        continue
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()


        super().__init__(Handler)

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt, completion = self.usage
        message: dict[str, Any] = {"role": "assistant", "content": self.answer}
        finish = "stop"
        if self.tool_call is not None:
            name, arguments = self.tool_call
            message = {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_fake1", "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)}}]}
            finish = "tool_calls"
        return {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000,
            "model": body.get("model", "gpt-4o"),
            "choices": [{"index": 0, "finish_reason": finish, "message": message}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion},
        }

    def chunks(self, body: dict[str, Any]) -> list[dict[str, Any] | None]:
        """The streamed form of `completion(body)`; None marks the pause before the 1st token."""
        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                    "created": 1_700_000_000, "model": body.get("model", "gpt-4o"),
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        out: list[dict[str, Any] | None] = [chunk({"role": "assistant", "content": ""}), None]
        if self.tool_call is not None:
            name, arguments = self.tool_call
            out.append(chunk({"tool_calls": [{
                "index": 0, "id": "call_fake1", "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)}}]}))
            out.append(chunk({}, "tool_calls"))
        else:
            words = self.answer.split(" ")
            out += [chunk({"content": word if i == 0 else " " + word})
                    for i, word in enumerate(words)]
            out.append(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            prompt, completion = self.usage
            out.append({**chunk({}), "choices": [], "usage": {
                "prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion}})
        return out
