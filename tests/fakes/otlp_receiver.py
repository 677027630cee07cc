"""A local OTLP/HTTP trace receiver: decodes each protobuf `ExportTraceServiceRequest`.

In tests: `with OtlpReceiver() as receiver:` then point `OTEL_EXPORTER_OTLP_ENDPOINT` at
`receiver.root_url`; `receiver.spans()` are the decoded spans, flattened. As a process
(`python -m tests.fakes.otlp_receiver`, which prints its URL), so the bench can export to it without its
decoding being counted in the measured process's CPU.
"""

from __future__ import annotations

import argparse
import gzip
import signal
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.fakes.local_server import LocalServer, QuietHandler

TRACES_PATH = "/v1/traces"


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int  # the protobuf enum: 1 internal, 2 server, 3 client
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_code: int  # 0 unset, 1 ok, 2 error
    links: list[tuple[str, str]]
    start_ns: int
    end_ns: int


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


def decode(body: bytes, encoding: str = "") -> list[ReceivedSpan]:
    """The spans of one export request body (gzip/deflate as the exporter may send it)."""
    if encoding == "gzip":
        body = gzip.decompress(body)
    elif encoding == "deflate":
        body = zlib.decompress(body)
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)  # raises DecodeError on anything that is not one
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(ReceivedSpan(
                    name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(), kind=span.kind,
                    attributes=_attributes(span.attributes), resource=resource,
                    status_code=span.status.code,
                    links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                    start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano))
    return spans


class _Handler(QuietHandler):
    receiver: OtlpReceiver

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != TRACES_PATH:
            self.send_json(404, {"error": f"no such path {self.path}"})
            return
        if self.headers.get("Content-Type") != "application/x-protobuf":
            self.send_json(415, {"error": "expected application/x-protobuf"})
            return
        try:
            spans = decode(body, self.headers.get("Content-Encoding", ""))
        except Exception as exc:
            self.receiver.errors.append(f"{type(exc).__name__}: {exc}")
            self.send_json(400, {"error": "not an ExportTraceServiceRequest"})
            return
        self.receiver.record(spans, dict(self.headers))
        data = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class OtlpReceiver(LocalServer):
    """The receiver on 127.0.0.1 at a free port (or `port`), keeping what it was sent."""

    def __init__(self) -> None:
        handler = type("Handler", (_Handler,), {"receiver": self})
        super().__init__(handler, poll_interval_s=0.05)
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self.requests = 0
        self.headers: list[dict[str, str]] = []
        self.errors: list[str] = []

    def record(self, spans: list[ReceivedSpan], headers: dict[str, str]) -> None:
        with self._lock:
            self._spans += spans
            self.requests += 1
            self.headers.append(headers)

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[ReceivedSpan]:
        """The spans once at least `count` arrived (or whatever came within the timeout)."""
        deadline = time.monotonic() + timeout_s
        while len(self.spans()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.spans()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="stop after this long")
    args = parser.parse_args()
    # terminate() (the bench's way to stop it) then still prints what arrived
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    with OtlpReceiver() as receiver:
        print(receiver.root_url, flush=True)  # the bench reads the address from here
        deadline = time.monotonic() + args.seconds
        try:
            while time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        print(f"received {len(receiver.spans())} spans in {receiver.requests} requests",
              flush=True)


if __name__ == "__main__":
    main()
