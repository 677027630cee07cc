"""A small client for LaunchDarkly's REST API v2: auth, JSON, semantic patch, retries.

429 and 5xx answers are retried with exponential backoff, honouring `Retry-After` and
`X-Ratelimit-Reset`; any other error stops with the method, path, status, LaunchDarkly's message
and a hint. AI Configs, AI tools and agent graphs endpoints get the `LD-API-Version: beta` header they
need.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

log = logging.getLogger(__name__)

SEMANTIC_PATCH = "application/json; domain-model=launchdarkly.semanticpatch"
BETA_HEADER = {"LD-API-Version": "beta"}

_HINTS = {
    401: "check LD_API_KEY: it must be an API access token (api-...), not an SDK key",
    403: "the access token lacks permission: give it a writer role on the project",
    404: "check LD_PROJECT_KEY and LD_ENVIRONMENT",
}


class LaunchDarklyError(RuntimeError):
    """A LaunchDarkly API call failed for good (after retries, or with a 4xx)."""


class LaunchDarklyClient:
    """A small REST client: auth header, JSON, semantic patch, retries with backoff."""

    def __init__(self, base_url: str, api_key: str, *, max_retries: int = 5,
                 backoff_s: float = 0.5, max_backoff_s: float = 30.0, timeout_s: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout_s,
            headers={"Authorization": api_key,
                     "User-Agent": "multi-agent-experiments-bootstrap"})
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> LaunchDarklyClient:
        key = settings.LD_API_KEY.get_secret_value() if settings.LD_API_KEY else ""
        if not key:
            raise LaunchDarklyError("LD_API_KEY is not set; set it to a LaunchDarkly API access "
                                    "token, or use --backend local")
        return cls(settings.LD_API_BASE_URL, key, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LaunchDarklyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _retry_delay(self, response: httpx.Response | None, attempt: int) -> float:
        delay = self._backoff_s * 2**attempt
        if response is not None:
            retry_after = response.headers.get("Retry-After")
            if retry_after:
                try:
                    delay = float(retry_after)
                except ValueError:
                    when = email.utils.parsedate_to_datetime(retry_after)
                    delay = when.timestamp() - time.time() if when else delay
            elif reset := response.headers.get("X-Ratelimit-Reset"):  # epoch milliseconds
                delay = int(reset) / 1000 - time.time()
        return min(max(delay, 0.0), self._max_backoff_s)

    def request(self, method: str, path: str, *, body: Any = None,
                semantic_patch: bool = False, not_found_ok: bool = False) -> Any:
        """Send one request; the parsed JSON answer, or None for 404 when `not_found_ok`."""
        headers = {"Content-Type": SEMANTIC_PATCH if semantic_patch else "application/json"}
        if _is_ai_endpoint(path):  # AI Configs and AI tools are beta endpoints
            headers.update(BETA_HEADER)
        content = json.dumps(body).encode() if body is not None else None
        for attempt in range(self._max_retries + 1):
            last = attempt == self._max_retries
            try:
                response = self._http.request(method, path, content=content, headers=headers)
            except httpx.TransportError as err:
                if last:
                    raise LaunchDarklyError(f"{method} {path}: cannot reach LaunchDarkly at "
                                            f"{self._http.base_url} ({err})") from None
                self._sleep(self._retry_delay(None, attempt))
                continue
            status = response.status_code
            if status == 429 or status >= 500:
                if last:
                    raise LaunchDarklyError(f"{method} {path} failed with {status} after "
                                            f"{self._max_retries + 1} attempts: "
                                            f"{_message(response)}")
                delay = self._retry_delay(response, attempt)
                log.warning("%s %s: %s, retrying in %.1f s", method, path, status, delay)
                self._sleep(delay)
                continue
            if status == 404 and not_found_ok:
                return None
            if status >= 400:
                hint = _HINTS.get(status, "fix the request described above")
                raise LaunchDarklyError(f"{method} {path} failed with {status}: "
                                        f"{_message(response)} ({hint})")
            return response.json() if response.content else None
        raise AssertionError("unreachable")


    def paginate(self, path: str, *, limit: int = 50, max_pages: int = 200) -> list[Any]:
        """Every item of a list endpoint, page by page.

        Pages are requested with `limit`/`offset` and followed through `_links.next.href` when
        the answer gives one (LaunchDarkly's paginated collections), until a page comes back
        short or `totalCount` items have been read. An endpoint that answers a bare JSON list
        (model configs) is returned as it is.
        """
        items: list[Any] = []
        separator = "&" if "?" in path else "?"
        next_path: str | None = f"{path}{separator}limit={limit}&offset=0"
        for _ in range(max_pages):
            if next_path is None:
                return items
            page = self.request("GET", next_path)
            if isinstance(page, list):
                return items + page
            page = page or {}
            batch = page.get("items") or []
            items += batch
            total = page.get("totalCount")
            href = ((page.get("_links") or {}).get("next") or {}).get("href")
            if not batch or (total is not None and len(items) >= total):
                return items
            if href:
                next_path = href[href.index("/api/"):] if "/api/" in href else href
            elif len(batch) < limit:
                return items
            else:
                next_path = f"{path}{separator}limit={limit}&offset={len(items)}"
        raise LaunchDarklyError(f"GET {path}: more than {max_pages} pages; stopped paginating")


def _is_ai_endpoint(path: str) -> bool:
    return "/ai-configs" in path or "/ai-tools" in path or "/agent-graphs" in path


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(data, dict):
        return str(data.get("message") or data.get("code") or data)[:300]
    return str(data)[:300]
