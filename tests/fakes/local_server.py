"""What every wire-protocol fake in the tests shares: a local threaded HTTP server, quiet."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

Answer = str | Callable[[dict[str, Any]], str]


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing (test output stays readable) and can answer JSON."""

    def log_message(self, *args: Any) -> None:
        pass

    def send_json(self, status: int, payload: Any,
                  headers: dict[str, str] | None = None) -> None:
        """`payload` as a JSON body (None: an empty one), with Content-Length."""
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def read_json(self) -> Any:
        length = int(self.headers.get("content-length", 0))
        return json.loads(self.rfile.read(length) or b"{}")

    def start_events(self) -> None:
        """Begin a server-sent event stream; it ends when the connection closes (HTTP/1.0)."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()

    def send_event(self, data: Any, event: str | None = None) -> None:
        """One SSE event: `event: <name>` if named, then `data: <JSON or text>`."""
        text = data if isinstance(data, str) else json.dumps(data)
        head = f"event: {event}\n" if event else ""
        self.wfile.write(f"{head}data: {text}\n\n".encode())
        self.wfile.flush()


class LocalServer:
    """`handler` on 127.0.0.1 at a free port, served from a daemon thread inside `with`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler],
                 poll_interval_s: float = 0.5) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        args=(poll_interval_s,), daemon=True)

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class ModelServer(LocalServer):
    """A fake model API: what every provider fake scripts, and the faults it can inject.

    `answer` is the reply's text (or a function of the request body), `usage` the (input,
    output) tokens it reports, `tool_call` a (name, arguments) call offered to requests that
    carry tools. `fail_status` answers every request with that HTTP error; `cut_after` drops
    the connection after that many streamed events. Every request is kept in `requests`.
    """

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, answer: Answer,
                 usage: tuple[int, int],
                 tool_call: tuple[str, dict[str, Any]] | None) -> None:
        self.answer = answer
        self.usage = usage
        self.tool_call = tool_call
        self.fail_status: int | None = None
        self.cut_after: int | None = None
        self.requests: list[dict[str, Any]] = []
        super().__init__(handler)

    def answer_text(self, body: dict[str, Any]) -> str:
        return self.answer(body) if callable(self.answer) else self.answer
