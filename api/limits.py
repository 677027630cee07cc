"""Edges of the HTTP layer: the body-size limit, 422s without the input, security headers.

- Bodies over `MAX_BODY_BYTES` are answered 413 once they have been read to the end (an
  early answer makes most clients see a reset connection instead of the status).
- A 422 names the field and the problem but never echoes the input back: each error's input
  is replaced by its type and size (inputs can be megabytes, and may hold personal data).
- The web UI is served with a CSP that allows no inline script, `nosniff` and no framing.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_MAX_LOC_CHARS = 64

# The UI (/ and /static) loads only its own files; /docs keeps FastAPI's defaults.
UI_SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
NOSNIFF = {"x-content-type-options": "nosniff"}


class BodyLimitMiddleware:
    """413 for request bodies over `max_bytes`, declared or streamed, after draining them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(receive, send, more=message.get("more_body", False))
                return
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, receive: Receive, send: Send, more: bool = True) -> None:
        while more:  # read the rest, discarding it, so the client reads our answer
            message = await receive()
            more = message["type"] == "http.request" and message.get("more_body", False)
        response = JSONResponse(status_code=413, content={"detail": (
            f"the request body is larger than the limit of {self.max_bytes} bytes "
            "(MAX_BODY_BYTES)")})
        await response({"type": "http"}, receive, send)


class SecurityHeadersMiddleware:
    """`nosniff` and `X-Worker-Pid` (which `--workers N` process answered) on every response;
    the UI's CSP and framing headers on / and /static."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        extra = {**NOSNIFF, "x-worker-pid": str(os.getpid()),
                 **(UI_SECURITY_HEADERS if path == "/" or path.startswith("/static/") else {})}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.decode("latin-1").lower() not in extra]
                headers += [(k.encode(), v.encode()) for k, v in extra.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def summarise_input(value: Any) -> str:
    """What a rejected input was, without any of its content."""
    if isinstance(value, str):
        return f"<string of {len(value)} characters>"
    if isinstance(value, dict):
        return f"<object with {len(value)} keys>"
    if isinstance(value, list | tuple):
        return f"<array of {len(value)} items>"
    return f"<{type(value).__name__}>" if value is not None else "<null>"


def _safe_text(text: str, limit: int) -> str:
    # Lone surrogates cannot be encoded as UTF-8: show them escaped, never fail the answer.
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + "…"


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """422 with the location, type and message of each error; the input only summarised."""
    assert isinstance(exc, RequestValidationError)
    detail = [{"type": error.get("type"),
               "loc": [_safe_text(p, _MAX_LOC_CHARS) if isinstance(p, str) else p
                       for p in error.get("loc", ())],
               "msg": _safe_text(str(error.get("msg", "")), 300),
               "input": summarise_input(error.get("input"))}
              for error in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": detail})
