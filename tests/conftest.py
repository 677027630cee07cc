"""Shared fixtures: an offline, key-less environment and an app on a temporary flag file."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""

_KEYS = ("LD_SDK_KEY", "LD_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY",
         "ANTHROPIC_BASE_URL", "MISTRAL_API_KEY", "MISTRAL_BASE_URL", "ADMIN_TOKEN",
         "LOCAL_FLAGS_PATH", "EVENTS_DB", "PRICING_OVERRIDES_PATH",
         # a developer's own OTLP set-up must not make the tests export traces
         "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
         "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
         "OTEL_SDK_DISABLED", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
         "OTEL_SEMCONV_STABILITY_OPT_IN", "OTEL_TRACES_SAMPLER", "OTEL_PROPAGATORS")


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One DATA_DIR per test session, so the search indexes are built once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(autouse=True)
def offline_env(monkeypatch: pytest.MonkeyPatch, shared_data_dir: Path) -> Iterator[None]:
    """No keys, simulated providers, nothing slept, state under a temporary folder."""
    for key in _KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DATA_DIR", str(shared_data_dir))
    monkeypatch.setenv("LLM_MODE", "simulated")
    monkeypatch.setenv("SIM_TIME_SCALE", "0")
    monkeypatch.setenv("KB_DIR", str(ROOT / "kb"))
    monkeypatch.chdir(ROOT)
    from utils.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def flags_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A per-test flag file with the standard segments and targeting, and a per-test store."""
    from tests.fakes.flagfile import standard_flags, write_flags
    from utils.settings import get_settings

    path = tmp_path / "flags.json"
    write_flags(path, standard_flags())
    monkeypatch.setenv("LOCAL_FLAGS_PATH", str(path))
    monkeypatch.setenv("EVENTS_DB", str(tmp_path / "events.db"))
    get_settings.cache_clear()
    return path


@pytest.fixture
def client(flags_file: Path):
    """A TestClient on a fresh app (lifespan run) over `flags_file`."""
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def postgres_server():
    """A real local PostgreSQL for the session (fails under CI without the binaries)."""
    from tests.fakes.postgres import require_postgres
    from tools.local_postgres import throwaway_server as server

    with server(require_postgres()) as admin_url:
        yield admin_url


@pytest.fixture
def pg_url(postgres_server: str):
    """The URL of a fresh, empty database on the session's PostgreSQL."""
    from tools.local_postgres import fresh_database

    with fresh_database(postgres_server) as url:
        yield url
