"""Per-user metric values from a hand-built store: who is in which arm, and what counts."""

from __future__ import annotations

import math
import random
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.fakes.event_store import EVENT_COLUMNS, EXPOSURE_COLUMNS
from tools.copy_store import copy_store
from utils.experiments import user_metrics
from utils.experiments.definitions import find_experiment, load_experiments
from utils.experiments.user_metrics import connect_event_store, load_all_arm_data
from utils.telemetry import metrics as mk
from utils.telemetry.event_store import connect

CONFIG, CONTROL, TREATMENT = "security-agent", "basic-security", "strict-security"


def _exposure(ts: float, user: str, variation: str, in_experiment: int = 1, request: str = ""):
    return (ts, request or f"{user}-{ts}", user, CONFIG, variation, in_experiment, "{}")


def _event(ts: float, user: str, key: str, value: float, request: str = ""):
    return (ts, request or f"{user}-{ts}", user, key, value, CONFIG, CONTROL, "support", "m",
            "p", 0)


@pytest.fixture
def arm_data(tmp_path: Path):
    path = tmp_path / "events.db"
    exposures = [
        _exposure(10, "alice", CONTROL, request="alice-r1"),
        _exposure(20, "alice", CONTROL),  # a second exposure in the same arm changes nothing
        _exposure(10, "bob", TREATMENT),
        _exposure(10, "carol", CONTROL),
        _exposure(12, "carol", TREATMENT),  # seen in both arms: left out
        _exposure(10, "dave", CONTROL, in_experiment=0),  # served, but not in the experiment
        _exposure(30, "erin", TREATMENT),
    ]
    events = [
        _event(11, "alice", mk.COST_PER_REQUEST, 0.10),
        _event(21, "alice", mk.COST_PER_REQUEST, 0.20),
        _event(9.5, "alice", mk.DURATION_TOTAL, 900.0, request="alice-r1"),  # same request
        _event(25, "alice", mk.FEEDBACK_POSITIVE, 1.0),
        _event(26, "alice", mk.FEEDBACK_POSITIVE, 1.0),  # "any": still one conversion
        _event(11, "dave", mk.COST_PER_REQUEST, 5.0),
        _event(5, "erin", mk.COST_PER_REQUEST, 7.0),  # before erin's first exposure
        _event(31, "erin", mk.PII_EXPOSED_ENTITIES, 2.0),
        _event(32, "erin", mk.PII_EXPOSED_ENTITIES, 1.0),
    ]
    conn = connect(path)
    with conn:
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO exposures ({EXPOSURE_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                         exposures)
        conn.executemany(f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                         events)
    conn.close()
    experiment = find_experiment(load_experiments(), "security-level")
    reader = connect_event_store(path)
    try:
        yield load_all_arm_data(reader, [experiment])["security-level"]
    finally:
        reader.close()


def value(data, metric: str, user: str) -> float:
    return float(data.values[metric][data.users.index(user)])


def test_users_are_assigned_by_first_in_experiment_exposure(arm_data) -> None:
    assert arm_data.users == ["alice", "bob", "erin"]
    assert list(arm_data.arm) == [0, 1, 1]
    assert arm_data.excluded_users == 1  # carol, in both arms; dave never entered


def test_sums_count_events_after_the_first_exposure_only(arm_data) -> None:
    assert value(arm_data, "ai_cost_per_request", "alice") == pytest.approx(0.30)
    assert value(arm_data, "ai_cost_per_request", "erin") == 0.0  # its only cost came earlier
    assert value(arm_data, "pii_exposed_entities", "erin") == 3.0


def test_users_without_events_count_as_zero_for_means_and_conversions(arm_data) -> None:
    assert value(arm_data, "ai_cost_per_request", "bob") == 0.0
    assert value(arm_data, "positive_feedback_rate", "bob") == 0.0
    assert value(arm_data, "positive_feedback_rate", "alice") == 1.0


def test_percentile_metrics_leave_out_users_without_events(arm_data) -> None:
    # alice's latency event was tracked a moment before her first exposure, in that request.
    assert value(arm_data, "p95_total_user_latency", "alice") == 900.0
    assert math.isnan(value(arm_data, "p95_total_user_latency", "bob"))
    assert list(arm_data.arm_values("p95_total_user_latency", 1)) == []


def test_a_file_without_the_tables_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).close()
    from utils.experiments.user_metrics import EventStoreError

    with pytest.raises(EventStoreError, match="no table events, exposures"):
        connect_event_store(path)


def _reference(exposures: list[tuple], events: list[tuple], experiment) -> dict:
    """What the documented rules give, computed row by row: the arm from the first
    in-experiment exposure, events counted from it on (or in its request)."""
    arms = {experiment.control: 0, experiment.treatment: 1}
    seen: dict[str, list[tuple]] = {}
    for ts, request, user, config, variation, in_experiment, _ in exposures:
        if config == experiment.config and in_experiment:
            seen.setdefault(user, []).append((ts, request, variation))
    out = {}
    for user, rows in sorted(seen.items()):
        variations = {v for _, _, v in rows}
        if len(variations) != 1 or next(iter(variations)) not in arms:
            continue
        first = min(ts for ts, _, _ in rows)
        request = min(r for ts, r, _ in rows if ts == first)
        counted = [e for e in events if e[2] == user and (e[0] >= first or e[1] == request)]
        values, agents = {}, {}
        for key in experiment.metrics:
            d = mk.METRICS[key]
            mine = [e for e in counted if e[3] == d.event_key]
            if d.aggregate == "any":
                values[key] = 1.0 if mine else 0.0
                continue
            if not mine:
                values[key] = math.nan if d.statistic == "percentile" else 0.0
            elif any(e[4] is None for e in mine):
                values[key] = math.nan
            else:
                values[key] = sum(e[4] for e in mine)
            for e in mine:
                cell = agents.setdefault((key, e[7] or "(no agent recorded)"), [0.0, 0])
                cell[0] += e[4] or 0.0
                cell[1] += e[4] is None
        errors = sum(e[3] == mk.GENERATION_ERROR for e in counted)
        out[user] = (arms[next(iter(variations))], first, values, agents, errors)
    return out


@pytest.mark.parametrize(("database", "seed"), [("sqlite", s) for s in range(6)]
                         + [("postgresql", s) for s in range(3)])
def test_random_stores_match_the_rules_row_by_row(tmp_path: Path, request, database: str,
                                                  seed: int, monkeypatch) -> None:
    """Users who used the app before their first exposure, events of the first request
    recorded before it, valueless runs, errors, several agents and two experiments on
    different configs: every per-user value, agent share and count is what the rules give,
    on either database."""

    rng = random.Random(seed)
    experiments = [find_experiment(load_experiments(), k)
                   for k in ("security-level", "premium-model-value")]
    keys = [mk.COST_PER_REQUEST, mk.DURATION_TOTAL, mk.TOKENS_TOTAL, mk.FEEDBACK_POSITIVE,
            mk.FEEDBACK_NEGATIVE, mk.PII_EXPOSED_ENTITIES, mk.GENERATION_ERROR]
    exposures, events = [], []
    for u in range(60):
        user = f"user-{u:02d}"
        for r in range(rng.randint(1, 6)):
            ts = float(rng.randint(0, 50))
            run = f"{user}-r{r}"
            for e in experiments:
                if rng.random() < 0.6:  # not every request reaches every agent
                    variation = rng.choice([e.control, e.treatment] if rng.random() < 0.9
                                           else [e.control, e.treatment, "other"])
                    variation = variation if rng.random() < 0.95 else e.treatment
                    exposures.append((ts + rng.choice([0.0, 0.5]), run, user, e.config,
                                      variation, int(rng.random() < 0.9), "{}"))
            for _ in range(rng.randint(0, 6)):
                key = rng.choice(keys)
                value = None if rng.random() < 0.05 else round(rng.uniform(0, 3), 3)
                events.append((ts + rng.choice([-0.2, 0.0, 0.3]), run, user, key, value,
                               CONFIG, CONTROL, rng.choice(["support", "security", None]),
                               "m", "p", 0))
    path = tmp_path / "events.db"
    conn = connect(path)
    with conn:
        conn.executemany(f"INSERT INTO exposures ({EXPOSURE_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                         exposures)
        conn.executemany(f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                         events)
    conn.close()
    location = str(path)
    if database == "postgresql":
        location = request.getfixturevalue("pg_url")
        copy_store(str(path), location)
    # On one connection, and with the events pass on a second one at the same time (as
    # build_report reads): the same values either way.
    reread = user_metrics._reread
    read: list[int] = []  # users per call of _reread: ahead of time, then the ones missed

    def counting(conn, experiments, out, positions, columns):
        read.append(sum(len(at) for at in positions.values()))
        return reread(conn, experiments, out, positions, columns)

    monkeypatch.setattr(user_metrics, "_reread", counting)
    with closing(connect_event_store(location)) as reader:
        got_one = load_all_arm_data(reader, experiments)
        assert read == [0, read[1]] and read[1] > 0  # nothing ahead on one connection
        read.clear()
        with closing(connect_event_store(location)) as second:
            got_two = load_all_arm_data(reader, experiments, second)
    # Users exposed to another config first were read ahead; users whose events of the
    # first request were recorded before its exposure were not, and were read after.
    assert read[0] > 0 and read[1] > 0, read
    for got in (got_one, got_two):
        _check_against_rules(got, exposures, events, experiments)


def _check_against_rules(got: dict, exposures: list, events: list, experiments: list) -> None:
    reread = 0
    for e in experiments:
        want, data = _reference(exposures, events, e), got[e.key]
        assert data.users == list(want)
        reread += data.reread_users
        for j, user in enumerate(data.users):
            arm, first, values, agents, errors = want[user]
            assert (int(data.arm[j]), float(data.first_ts[j])) == (arm, first), user
            assert data.failed_runs[j] == errors, user
            for key, v in values.items():
                assert data.values[key][j] == pytest.approx(v, nan_ok=True), (user, key)
            for (key, agent), (total, nulls) in agents.items():
                assert data.agent_sums[key][agent][j] == pytest.approx(total), (user, key, agent)
                runs = data.agent_unknown.get(key, {}).get(agent)
                assert (0 if runs is None else runs[j]) == nulls, (user, key, agent)
            for key, by_agent in data.agent_sums.items():
                for agent, sums in by_agent.items():
                    assert math.isnan(sums[j]) == ((key, agent) not in agents), (user, agent)
    assert reread > 0  # the exact path ran
