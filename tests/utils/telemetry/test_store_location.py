"""Which store a process uses: EVENTS_URL wins over EVENTS_DB; the report's --url over --db."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tools import experiment_report
from utils.settings import Settings


def test_events_url_wins_over_events_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EVENTS_DB", str(tmp_path / "a.db"))
    assert Settings().events_location.path == tmp_path / "a.db"
    monkeypatch.setenv("EVENTS_URL", "postgresql://u:pw@db:5432/ev")
    location = Settings().events_location
    assert location.is_postgres and str(location) == "postgresql://u:***@db:5432/ev"
    monkeypatch.setenv("EVENTS_URL", f"sqlite:///{tmp_path / 'b.db'}")
    assert Settings().events_location.path == tmp_path / "b.db"


def test_a_malformed_events_url_fails_at_start_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTS_URL", "mysql://x/events")
    with pytest.raises(ValidationError, match="unknown scheme 'mysql'"):
        Settings()


def test_report_url_wins_over_db_and_bad_urls_exit_2(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nothing.db"
    assert experiment_report.main(["--json", "--db", str(missing)]) == 0
    assert str(missing) in capsys.readouterr().out
    url_store = tmp_path / "other.db"
    assert experiment_report.main(["--json", "--db", str(missing),
                                   "--url", f"sqlite:///{url_store}"]) == 0
    assert str(url_store) in capsys.readouterr().out
    assert experiment_report.main(["--url", "ftp://x/y"]) == 2
    assert "unknown scheme 'ftp'" in capsys.readouterr().err
