"""The app with some providers live, each served by its local wire fake."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from utils.settings import Settings, get_settings


def live_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    """Settings in LLM_MODE=auto with `env` set (keys and base URLs make providers live)."""
    monkeypatch.setenv("LLM_MODE", "auto")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return get_settings()


def fake_env(*, anthropic: Any = None, mistral: Any = None, openai: Any = None) -> dict[str, str]:
    """The settings that send a provider's calls to its fake (any of the three)."""
    env: dict[str, str] = {}
    if anthropic is not None:
        env |= {"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": anthropic.base_url}
    if mistral is not None:
        env |= {"MISTRAL_API_KEY": "m-test", "MISTRAL_BASE_URL": mistral.base_url}
    if openai is not None:
        env |= {"OPENAI_BASE_URL": openai.base_url}
    return env


@contextmanager
def live_app(monkeypatch: pytest.MonkeyPatch, **env: str) -> Iterator[Any]:
    """A TestClient of the app built with `live_settings(**env)` (uses the test's flag file)."""
    from fastapi.testclient import TestClient

    from api.main import create_app

    live_settings(monkeypatch, **env)
    with TestClient(create_app()) as client:
        yield client


def ask(client: Any, user_id: str, message: str, country: str, plan: str) -> Any:
    return client.post("/chat", json={"user_id": user_id, "message": message,
                                      "user_context": {"country": country, "plan": plan}})


def error_events(client: Any, request_id: str) -> list[str]:
    """The agents whose runs in `request_id` were recorded as generation errors."""
    rows = client.app.state.service.store.query(
        "SELECT agent FROM events WHERE request_id = ? AND event_key = "
        "'$ld:ai:generation:error' ORDER BY id", (request_id,))
    return [row["agent"] for row in rows]


ADMIN_TOKEN = "test-admin-token"


def ld_mode_app(fake_ld: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                **env: str) -> Any:
    """A TestClient of the app in LaunchDarkly mode, every SDK URI pointing at `fake_ld`
    (anything with a `.uri`), its store in `tmp_path`, with `env` set on top."""
    from fastapi.testclient import TestClient

    from api.main import create_app

    for name in ("LD_BASE_URI", "LD_STREAM_URI", "LD_EVENTS_URI"):
        monkeypatch.setenv(name, fake_ld.uri)
    monkeypatch.setenv("LD_SDK_KEY", "sdk-test-key")
    monkeypatch.setenv("ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("EVENTS_DB", str(tmp_path / "events.db"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return TestClient(create_app())
