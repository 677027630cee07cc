"""Fault injection against a running server: the flags file emptied, truncated and made
incomplete while serving; invalid Unicode and oversized bodies at the HTTP edge.

Against a real server (uvicorn in a subprocess): within 2 s of a bad write /health is
degraded with the reason, EU users keep the strict policy of the last valid file, /configs
still answers; with no valid file ever loaded, security runs the strict policy.
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT
from tests.fakes.flagfile import standard_flags, write_flags
from tools.api_process import KEEP_ALIVE_S, ApiProcess, start_api

MARIA = ("Hi, I'm Maria Gonzalez from Acme GmbH in Munich, card 4111 1111 1111 1111, mail "
         "maria.g@acme.de — how does Q-learning work?")
_SECRETS = ("LD_SDK_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY",
            "MISTRAL_API_KEY", "ADMIN_TOKEN", "PRICING_OVERRIDES_PATH")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           shared_data_dir: Path) -> Iterator[tuple[ApiProcess, Path]]:
    state = tmp_path_factory.mktemp("flag-faults")
    flags = state / "flags.json"
    write_flags(flags, standard_flags())
    env = {k: v for k, v in os.environ.items() if k not in _SECRETS}
    env.update(DATA_DIR=str(shared_data_dir), LOCAL_FLAGS_PATH=str(flags),
               EVENTS_DB=str(state / "events.db"), LLM_MODE="simulated", SIM_TIME_SCALE="0",
               KB_DIR=str(ROOT / "kb"), TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS="")
    api = start_api(env=env)
    try:
        yield api, flags
    finally:
        api.stop()


def _wait_for_health(url: str, status: str, timeout: float = 2.0) -> tuple[dict, float]:
    started = time.monotonic()
    while True:
        response = httpx.get(f"{url}/health", timeout=5)
        assert response.status_code == 200  # always 200 while serving
        body = response.json()
        if body["status"] == status or time.monotonic() - started > timeout:
            return body, time.monotonic() - started
        time.sleep(0.05)


def _security_of(url: str, country: str) -> dict[str, Any]:
    response = httpx.post(f"{url}/chat", timeout=30, json={
        "user_id": f"maria-{country}", "message": MARIA,
        "user_context": {"country": country, "plan": "paid"}})
    assert response.status_code == 200, response.text
    return next(run for run in response.json()["agents"] if run["agent"] == "security")


def _without(key: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        data = standard_flags()
        del data["flags"][key]
        write_flags(path, data)
    return write


def _without_segment(path: Path) -> None:
    data = standard_flags()
    del data["segments"]["eu-paid"]  # EU paid users would silently fall through to basic
    write_flags(path, data)


def _index_out_of_range(path: Path) -> None:
    data = copy.deepcopy(standard_flags())
    data["flags"]["security-agent"]["rules"][1]["variation"] = 7
    write_flags(path, data)


def _truncated(path: Path) -> None:
    text = json.dumps(standard_flags(), indent=1)
    path.write_text(text[: len(text) // 2])  # in place: what a reader sees mid-write


BAD_WRITES = {
    "emptied": lambda path: path.write_text(""),
    "empty-object": lambda path: write_flags(path, {}),
    "truncated": _truncated,
    "no-security-agent": _without("security-agent"),
    "missing-segment": _without_segment,
    "index-out-of-range": _index_out_of_range,
    "deleted": lambda path: path.unlink(),
}
REASON_WORDS = {"emptied": "not valid JSON", "empty-object": "security-agent",
                "truncated": "not valid JSON", "no-security-agent": "security-agent",
                "missing-segment": "eu-paid", "index-out-of-range": "variation 7",
                "deleted": "missing"}


@pytest.mark.parametrize("fault", list(BAD_WRITES))
def test_a_bad_flags_file_keeps_the_last_good_one_and_degrades_health(
        server: tuple[ApiProcess, Path], fault: str) -> None:
    api, flags = server
    assert _security_of(api.url, "DE")["variation_key"] == "strict-security"
    BAD_WRITES[fault](flags)
    try:
        health, elapsed = _wait_for_health(api.url, "degraded")
        assert health["status"] == "degraded" and elapsed < 2.0
        assert any(REASON_WORDS[fault] in r and "last valid version" in r
                   for r in health["reasons"]), health["reasons"]
        time.sleep(0.6)  # longer than both polls: a bad version would be served by now
        security = _security_of(api.url, "DE")
        assert security["variation_key"] == "strict-security"
        assert "Munich" not in security["redacted_text"]
        configs = httpx.get(f"{api.url}/configs", timeout=10)
        assert configs.status_code == 200
        assert configs.json()["problems"] and len(configs.json()["flags"]) == 3
        assert configs.json()["served"]["eu-paid"]["security-agent"]["variation"] == \
            "strict-security"
    finally:
        write_flags(flags, standard_flags())
    health, _ = _wait_for_health(api.url, "ok")
    assert health["status"] == "ok", health["reasons"]
    assert not [k for k in _keys(health) if k == "status"][1:]  # one "status" in the body


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


def test_with_no_valid_file_ever_loaded_security_is_strict_for_everyone(
        flags_file: Path) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app

    write_flags(flags_file, {"flags": {}, "segments": {}})
    with TestClient(create_app()) as client:
        health = client.get("/health").json()
        data = client.post("/chat", json={"user_id": "maria-us", "message": MARIA,
                                          "user_context": {"country": "US", "plan": "paid"}})
        configs = client.get("/configs")
    assert health["status"] == "degraded"
    assert any("no valid configuration was ever loaded" in r for r in health["reasons"])
    security = next(r for r in data.json()["agents"] if r["agent"] == "security")
    assert security["variation_key"] == "built-in-default"
    # A US user would get basic (company and city kept); without flags, strict removes them.
    assert "Munich" not in security["redacted_text"]
    assert "Acme GmbH" not in security["redacted_text"]
    assert configs.status_code == 200 and configs.json()["flags"] == []


# -- the HTTP edge, on the same running server ------------------------------------------------

def _connection(url: str) -> http.client.HTTPConnection:
    host, port = url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=30)


def test_a_lone_surrogate_is_a_422_and_the_connection_lives_on(
        server: tuple[ApiProcess, Path]) -> None:
    api, _ = server
    conn = _connection(api.url)
    body = b'{"user_id": "u1", "message": "hi \\ud800", "user_context": {"country": "US"}}'
    conn.request("POST", "/chat", body=body, headers={"content-type": "application/json"})
    response = conn.getresponse()
    detail = json.loads(response.read())["detail"]
    assert response.status == 422
    assert detail[0]["loc"] == ["body", "message"] and "unicode" in detail[0]["msg"].lower()
    conn.request("GET", "/health")  # the same keep-alive connection
    again = conn.getresponse()
    assert again.status == 200 and json.loads(again.read())["status"] in ("ok", "degraded")
    conn.close()


def test_an_idle_connection_outlives_the_clients_keep_alive(
        server: tuple[ApiProcess, Path]) -> None:
    """The server keeps an idle connection longer than httpx's 5 s (uvicorn's own default):
    the client closes it first, so the server never drops one just as a request is sent."""
    api, _ = server
    conn = _connection(api.url)
    conn.request("GET", "/health")
    first = conn.getresponse()
    assert first.status == 200 and first.read()
    time.sleep(6.0)  # idle past uvicorn's default keep-alive of 5 s
    conn.request("GET", "/health")  # the same connection: still open on the server's side
    again = conn.getresponse()
    assert again.status == 200 and again.read()
    conn.close()


def test_the_production_commands_keep_idle_connections_as_long() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert f"KEEP_ALIVE_S ?= {KEEP_ALIVE_S}\n" in makefile
    assert makefile.count("--timeout-keep-alive $(KEEP_ALIVE_S)") == 2  # serve-prod, serve-pg
    readme = (ROOT / "README.md").read_text()
    assert f"--workers 4 --no-access-log --timeout-keep-alive {KEEP_ALIVE_S}\n" in readme


@pytest.mark.parametrize("chunked", [False, True])
def test_an_oversized_body_is_answered_413_not_a_reset(server: tuple[ApiProcess, Path],
                                                       chunked: bool) -> None:
    api, _ = server
    attribute = "x" * 3_000_000  # 3 MB, over the 1 MB default
    body = json.dumps({"user_id": "big", "message": "hello",
                       "user_context": {"blob": attribute}}).encode()
    conn = _connection(api.url)
    if chunked:
        parts = (body[i:i + 65_536] for i in range(0, len(body), 65_536))
        conn.request("POST", "/chat", body=parts, encode_chunked=True,
                     headers={"content-type": "application/json",
                              "transfer-encoding": "chunked"})
    else:
        conn.request("POST", "/chat", body=body, headers={"content-type": "application/json"})
    response = conn.getresponse()
    text = response.read().decode()
    conn.close()
    assert response.status == 413
    assert "MAX_BODY_BYTES" in text and len(text) < 500


def test_the_ui_is_served_with_security_headers_and_answers_head(
        server: tuple[ApiProcess, Path]) -> None:
    api, _ = server
    index = httpx.get(f"{api.url}/", timeout=10)
    head = httpx.head(f"{api.url}/", timeout=10)
    script = httpx.get(f"{api.url}/static/app.js", timeout=10)
    assert index.status_code == head.status_code == script.status_code == 200
    assert head.content == b""
    for response in (index, head, script):
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(f"{api.url}/health", timeout=10).headers["x-content-type-options"] == \
        "nosniff"
