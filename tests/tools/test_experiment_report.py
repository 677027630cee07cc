"""python -m tools.experiment_report: terminal, JSON and HTML views agree."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.fakes.event_store import make_store
from tools.experiment_report import main
from utils.experiments.definitions import find_experiment, load_experiments


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "events.db"
    # Feedback high enough that 600 users per arm show strict security non-inferior (within
    # 5%) while the premium model lifts it by ~19%.
    return make_store(path, users=1200, feedback=(0.80, 0.95), cost=(0.012, 0.008),
                      pii=(0.8, 0.1))


def run_json(capsys, *args: str) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_lists_both_experiments_with_verdicts(store, capsys):
    data = run_json(capsys, "--db", str(store))
    assert data["simulated"] is True
    assert [e["key"] for e in data["experiments"]] == ["security-level", "premium-model-value",
                                                       "security-routing"]
    routing = data["experiments"][2]  # no planted effect: a verdict, but no ship
    assert routing["verdict"]["outcome"] in ("NEED_MORE_DATA", "KEEP"), routing["verdict"]
    assert sum(routing["users"].values()) == 1200
    for e in data["experiments"][:2]:  # the planted effects
        # The store plants a premium win (more thumbs-up, cheaper) and strict security's PII drop.
        assert e["verdict"]["outcome"] == "SHIP", e["verdict"]
        assert e["verdict"]["variation"] == e["treatment"]
        assert sum(e["users"].values()) == 1200
        assert len(e["criteria"]) == len(
            find_experiment(load_experiments(), e["key"]).decision.ship_if_all)
        assert all(c["probability_met"] is not None for c in e["criteria"])
    assert "interaction" in data


def test_terminal_view_shows_the_same_verdicts_as_json(store, capsys):
    data = run_json(capsys, "--db", str(store))
    assert main(["--db", str(store)]) == 0
    out = capsys.readouterr().out
    assert "SIMULATED PROVIDERS" in out
    flat = re.sub(r"\s+", " ", out)
    for e in data["experiments"]:
        assert e["verdict"]["summary"][:40] in flat
        for m in e["metrics"]:  # shown by the name a product analyst knows
            assert f'{m["name"]} {"↑" if m["higher_is_better"] else "↓"}' in out
        for variation, n in e["users"].items():
            assert f"{variation}: {n:,}" in out
    assert "PASS" in out


def test_html_is_self_contained_with_charts(store, tmp_path, capsys):
    target = tmp_path / "out" / "report.html"
    assert main(["--db", str(store), "--html", str(target)]) == 0
    html = target.read_text()
    assert html.count("<svg") >= 8  # four charts per experiment
    assert "SIMULATED PROVIDERS" in html
    assert not re.search(r"""(src|href)=["']?https?:""", html)  # opens offline
    assert "<script" not in html
    data = run_json(capsys, "--db", str(store))
    for e in data["experiments"]:
        assert e["verdict"]["summary"].split(":")[0] in html


def test_one_experiment_only(store, capsys):
    data = run_json(capsys, "--db", str(store), "--experiment", "premium-model-value")
    assert [e["key"] for e in data["experiments"]] == ["premium-model-value"]
    assert "interaction" not in data


def test_unknown_experiment_exits_2_and_names_the_known_keys(store, capsys):
    assert main(["--db", str(store), "--experiment", "nope"]) == 2
    assert "security-level" in capsys.readouterr().err


def test_missing_store_reports_zero_users(tmp_path, capsys):
    data = run_json(capsys, "--db", str(tmp_path / "missing.db"))
    assert data["simulated"] is False
    for e in data["experiments"]:
        assert e["verdict"]["outcome"] == "NEED_MORE_DATA"
        assert sum(e["users"].values()) == 0


def test_default_store_comes_from_settings(tmp_path, monkeypatch, capsys):
    from utils.settings import get_settings

    monkeypatch.setenv("EVENTS_DB", str(tmp_path / "nothing.db"))
    get_settings.cache_clear()
    try:
        data = run_json(capsys)
    finally:
        get_settings.cache_clear()
    assert data["db_path"] == str(tmp_path / "nothing.db")


def test_unpriced_model_and_failed_runs_are_named_in_every_view(tmp_path, capsys):
    path = make_store(tmp_path / "e.db", users=400, unpriced_model=(None, "claude-opus-9"),
                      failure_rate=(0.0, 0.2))
    data = run_json(capsys, "--db", str(path))  # exits 0: a report was produced
    prem = data["experiments"][1]
    assert prem["unpriced_models"][0]["model"] == "claude-opus-9"
    assert prem["failed_runs"]["claude-opus-treatment"] > 0 == prem["failed_runs"]["other-paid"]
    assert main(["--db", str(path)]) == 0
    flat = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert "Unpriced: claude-opus-9" in flat and "PRICING_OVERRIDES_PATH" in flat
    assert "Failed runs" in flat and "per-user total" in flat
    html_path = tmp_path / "r.html"
    assert main(["--db", str(path), "--html", str(html_path)]) == 0
    html = html_path.read_text()
    assert "claude-opus-9" in html and "Failed agent runs" in html


def test_terminal_view_at_80_columns_cuts_no_number(store, capsys, monkeypatch):
    # Rich reads COLUMNS; names and intervals may wrap onto more lines, but nothing is cut.
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["--db", str(store)]) == 0
    out = capsys.readouterr().out
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert re.search(r"\[[+-]\d+\.\d%,", out)  # the intervals are all there, whole
    # The per-agent split keeps all four columns: both arms' names and the difference.
    lines = out.splitlines()
    assert any("basic-security" in line and "strict-security" in line and "difference" in line
               for line in lines)


def test_expected_loss_of_a_rate_is_in_percentage_points(store, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    data = run_json(capsys, "--db", str(store))
    assert main(["--db", str(store)]) == 0
    out = capsys.readouterr().out
    loss = next(m["expected_loss"] for m in data["experiments"][0]["metrics"]
                if m["key"] == "positive_feedback_rate")
    row = next(line for line in out.splitlines() if "Positive feedback rate ↑" in line)
    assert row.rstrip(" │").endswith(f"{loss * 100:.1f} pp")
