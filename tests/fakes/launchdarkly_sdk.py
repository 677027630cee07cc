"""A fake of LaunchDarkly's SDK endpoints: the flag stream (`GET /all`) and events (`/bulk`).

Answers the stream with one SSE `put` event holding the given flag data, so the real client
initialises and evaluates, and records what the event processor POSTs to `/bulk`.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from tests.fakes.local_server import LocalServer, QuietHandler


class FakeLaunchDarklySDK(LocalServer):
    """Serves the flag stream and collects analytics events, on one local port."""

    def __init__(self, flag_data: dict[str, Any]) -> None:
        self.events: list[dict[str, Any]] = []
        self.stream_connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        fake = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"  # chunked SSE: the SDK reads each event as it lands

            def do_GET(self) -> None:
                if self.path != "/all":
                    self.send_error(404)
                    return
                with fake._lock:
                    fake.stream_connections += 1
                put = json.dumps({"path": "/", "data": flag_data})
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                self._chunk(f"event: put\ndata: {put}\n\n".encode())
                # Keep the stream open (as LaunchDarkly does) until the test ends.
                while not fake._stop.wait(0.2):
                    try:
                        self._chunk(b":\n")
                    except OSError:
                        return
                self.close_connection = True

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path == "/bulk":
                    with fake._lock:
                        fake.events.extend(json.loads(body))
                self.send_response(202)
                self.send_header("content-length", "0")
                self.end_headers()

        super().__init__(Handler)

    @property
    def uri(self) -> str:
        return self.root_url

    def custom_events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e.get("kind") == "custom"]

    def wait_for(self, predicate, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The custom events received, once `predicate(events)` holds (or at the timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.custom_events()
            if predicate(events) or time.monotonic() > deadline:
                return events
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # ends the open flag streams first
        super().__exit__(*exc)
