"""Synthetic event stores with planted effects, written through the store's own schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from utils.telemetry import metrics as mk
from utils.telemetry.event_store import connect
from utils.telemetry.store_schema import EVENT_COLUMNS

EXPOSURE_COLUMNS = "ts, request_id, user_key, config_key, variation_key, in_experiment, context_json"

SEC = ("security-agent", "basic-security", "strict-security")
SUP = ("support-agent", "other-paid", "claude-opus-treatment")
GRAPH = ("support-assistant-graph", "detector-routed", "always-security")


def make_store(
    path: Path,
    *,
    users: int = 2000,
    seed: int = 1,
    feedback: tuple[float, float] = (0.30, 0.30),  # P(positive) for premium control/treatment
    cost: tuple[float, float] = (0.010, 0.010),  # mean support cost per request
    pii: tuple[float, float] = (0.5, 0.5),  # mean exposed entities for security control/treat.
    latency_ms: tuple[float, float] = (2000.0, 2000.0),  # security agent duration
    split: float = 0.5,
    simulated: int = 1,
    requests_per_user: int = 2,
    security_feedback: tuple[float, float] = (1.0, 1.0),  # P(positive) factor by security arm
    security_cost: tuple[float, float] = (0.001, 0.001),  # security agent cost per request
    unpriced_model: tuple[str | None, str | None] = (None, None),  # support model, NULL cost
    failure_rate: tuple[float, float] = (0.0, 0.0),  # share of failed support runs per arm
) -> Path:
    """A store with the documented tables (docs/CONTRACTS.md): every user is in every
    experiment (security-routing with no planted effect), arms drawn independently. The defaults draw the same random numbers as ever,
    so planted results stay put.
    """
    rng = np.random.default_rng(seed)
    graph_rng = np.random.default_rng([seed, 24])  # its own stream: planted draws stay put
    ex, ev = [], []
    for u in range(users):
        user = f"user-{u:05d}"
        a_sec = int(rng.random() >= split)
        a_sup = int(rng.random() >= split)
        a_graph = int(graph_rng.random() >= split)
        t = 1000.0 + u
        for r in range(requests_per_user):
            rid = f"{user}-r{r}"
            ts = t + r * 0.1
            ex.append((ts, rid, user, SEC[0], SEC[1 + a_sec], 1, "{}"))
            ex.append((ts + 0.01, rid, user, SUP[0], SUP[1 + a_sup], 1, "{}"))
            ex.append((ts, rid, user, GRAPH[0], GRAPH[1 + a_graph], 1, "{}"))

            def event(key, value, agent, cfg, var, ts=ts, rid=rid, user=user):
                ev.append((ts + 0.02, rid, user, key, value, cfg, var, agent, "m", "p",
                           simulated))

            event(mk.DURATION_TOTAL, rng.gamma(4, latency_ms[a_sec] / 4), "security", SEC[0],
                  SEC[1 + a_sec])
            event(mk.DURATION_TOTAL, rng.gamma(4, 500), "support", SUP[0], SUP[1 + a_sup])
            event(mk.TOKENS_TOTAL, float(rng.poisson(800)), "support", SUP[0], SUP[1 + a_sup])
            event(mk.COST_PER_REQUEST, security_cost[a_sec], "security", SEC[0],
                  SEC[1 + a_sec])
            support_cost = rng.gamma(4, cost[a_sup] / 4)
            model = unpriced_model[a_sup]
            if model is None:
                event(mk.COST_PER_REQUEST, support_cost, "support", SUP[0], SUP[1 + a_sup])
            else:  # what instrumentation writes for a model without a price row
                ev.append((ts + 0.02, rid, user, mk.COST_PER_REQUEST, None, SUP[0],
                           SUP[1 + a_sup], "support", model, "p", simulated))
            if failure_rate[a_sup] and rng.random() < failure_rate[a_sup]:
                event(mk.GENERATION_ERROR, 1.0, "support", SUP[0], SUP[1 + a_sup])
            event(mk.PII_EXPOSED_ENTITIES, float(rng.poisson(pii[a_sec])), "support", SUP[0],
                  SUP[1 + a_sup])
        if rng.random() < feedback[a_sup] * security_feedback[a_sec]:
            for cfg, var in ((SEC[0], SEC[1 + a_sec]), (SUP[0], SUP[1 + a_sup])):
                ev.append((t + 5, f"{user}-r0", user, mk.FEEDBACK_POSITIVE, 1.0, cfg, var,
                           "feedback", None, None, 0))
    conn = connect(path)  # the store's own schema and migrations
    with conn:
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO exposures ({EXPOSURE_COLUMNS}) VALUES (?,?,?,?,?,?,?)", ex)
        conn.executemany(f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                         ev)
    conn.close()
    return path


def comparable_report(report: Any) -> dict:
    """A report's JSON without what names the store or times the run (to compare stores)."""
    from utils.experiments.verdicts import report_to_dict

    data = report_to_dict(report)
    for key in ("db_path", "generated_at", "timings"):
        data.pop(key, None)
    return json.loads(json.dumps(data, sort_keys=True))
