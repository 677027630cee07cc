""".env.example copied to .env, as the README says, leaves a working app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHAT = """
from fastapi.testclient import TestClient
from api.main import create_app
with TestClient(create_app()) as client:
    reply = client.post("/chat", json={"user_id": "env-user", "message": "What is Q-learning?",
                                       "user_context": {"country": "US", "plan": "paid"}})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["totals"]["cost_usd"] is not None, body["totals"]
    feedback = client.post("/feedback", json={"request_id": body["request_id"],
                                              "user_id": "env-user", "kind": "positive"})
    assert feedback.status_code == 200, feedback.text
print("chat ok")
"""


def _settings_names() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if "=" in line and not line.startswith("#")}


def test_copied_env_example_runs_bootstrap_chat_and_report(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    (tmp_path / "kb").symlink_to(ROOT / "kb")  # KB_DIR=kb, relative to where the app runs
    # Only .env speaks: none of its settings may come from this test session's environment.
    env = {k: v for k, v in os.environ.items() if k not in _settings_names()}
    env.update(PYTHONPATH=str(ROOT), TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS="")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, text=True,
                              capture_output=True, timeout=300)
        assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        return done

    run("-m", "bootstrap.create_configs")
    run("-m", "bootstrap.experiment_variations")
    assert (tmp_path / "data" / "flags.json").is_file()
    assert "chat ok" in run("-c", CHAT).stdout
    assert (tmp_path / "data" / "events.db").is_file()
    report = run("-m", "tools.experiment_report", "--json").stdout
    assert '"security-level"' in report and '"premium-model-value"' in report
