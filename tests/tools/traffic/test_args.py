"""Command-line validation of the traffic generators and the users they simulate."""

from __future__ import annotations

import random

import pytest

from tools import concurrent_traffic_generator, traffic_generator
from tools.traffic.run import (
    EU_COUNTRIES,
    SEGMENTS,
    build_parser,
    make_users,
    options_from_args,
)


@pytest.mark.parametrize("value", ["0", "201", "-3", "ten"])
def test_concurrency_outside_1_to_200_is_a_clear_argparse_error(value, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser("concurrent").parse_args(["--concurrency", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--concurrency must be" in err and value in err


@pytest.mark.parametrize("flag, value", [("--pii-percentage", "101"), ("--pii-percentage", "-1"),
                                         ("--queries", "-1"), ("--users", "0"),
                                         ("--delay", "-0.5"), ("--timeout", "0")])
def test_out_of_range_values_are_rejected_with_the_flag_named(flag, value, capsys):
    with pytest.raises(SystemExit):
        build_parser("concurrent").parse_args([flag, value])
    assert flag in capsys.readouterr().err


def test_unknown_segment_is_rejected(capsys):
    with pytest.raises(SystemExit):
        build_parser("sequential").parse_args(["--segment", "moon-free"])
    assert "invalid choice" in capsys.readouterr().err


def test_defaults_match_the_documented_contract():
    concurrent = options_from_args(build_parser("concurrent").parse_args([]), "concurrent")
    assert (concurrent.queries, concurrent.concurrency, concurrent.pii_percentage,
            concurrent.timeout, concurrent.api_url, concurrent.segment, concurrent.judge) == (
        50, 10, 15.0, 2000.0, "http://localhost:8000", "other-paid", "auto")
    assert concurrent.feedback and concurrent.users is None
    sequential = options_from_args(build_parser("sequential").parse_args([]), "sequential")
    assert sequential.delay == 2.0 and sequential.concurrency == 1


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit):
        build_parser("concurrent").parse_args(["--help"])
    out = capsys.readouterr().out
    for flag in ("--queries", "--concurrency", "--delay", "--pii-percentage", "--timeout",
                 "--api-url", "--seed", "--segment", "--users", "--log-dir", "--no-feedback",
                 "--judge"):
        assert flag in out


@pytest.mark.parametrize("entry", [concurrent_traffic_generator.main, traffic_generator.main])
def test_zero_queries_says_nothing_to_do_and_exits_0(entry, tmp_path, capsys):
    assert entry(["--queries", "0", "--log-dir", str(tmp_path)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())


def test_unreachable_api_is_reported_once_with_the_url(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    from utils.settings import get_settings

    get_settings.cache_clear()
    url = "http://127.0.0.1:9"  # discard port: nothing listens
    code = concurrent_traffic_generator.main(
        ["--queries", "5", "--api-url", url, "--judge", "simulated", "--log-dir",
         str(tmp_path), "--no-progress"])
    get_settings.cache_clear()
    out = capsys.readouterr().out
    assert code == 3
    assert out.count("cannot reach the API") == 1 and url in out


def test_users_of_one_segment_match_its_country_and_plan():
    users = make_users(20, "eu-free", random.Random(1))
    assert len({u.user_id for u in users}) == 20
    assert all(u.context["country"] in EU_COUNTRIES and u.context["plan"] == "free"
               for u in users)


def test_mix_spreads_users_evenly_over_the_four_segments():
    users = make_users(40, "mix", random.Random(2))
    counts = {s: sum(u.segment == s for u in users) for s in SEGMENTS}
    assert counts == dict.fromkeys(SEGMENTS, 10)
    for user in users:
        eu = user.context["country"] in EU_COUNTRIES
        assert eu == user.segment.startswith("eu-")
        assert user.context["plan"] == user.segment.split("-")[1]


def test_user_keys_are_stable_for_a_seed_and_differ_between_seeds():
    first = [u.user_id for u in make_users(3, "other-paid", random.Random(7))]
    again = [u.user_id for u in make_users(3, "other-paid", random.Random(7))]
    other = [u.user_id for u in make_users(3, "other-paid", random.Random(8))]
    assert first == again and first != other
