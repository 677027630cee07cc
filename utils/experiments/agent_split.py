"""Which agent moved it: the per-agent split of each metric summed across agents.

A user's cost, tokens or latency is the sum of every agent's runs, so the difference of the
per-user means, treatment − control, is exactly the sum over agents of each agent's own
difference: Σ_agent (S_t,agent / n_t − S_c,agent / n_c), with S the agent's summed values in
an arm and n the arm's users. A cheaper security model that makes support answers longer
shows as a negative security share and a larger positive support one. Percentile metrics do
not add up over agents; their split is of the per-user mean total, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from utils.experiments.definitions import Experiment
from utils.experiments.user_metrics import ArmData, unmarked
from utils.telemetry.metrics import METRICS
from utils.telemetry.store_url import dialect, insert_rows


@dataclass(frozen=True)
class AgentShare:
    """One agent's part of a summed metric: per-user means in each arm and their difference."""

    agent: str
    control: float
    treatment: float
    unknown_runs: int = 0  # runs without a value (unpriced): the agent's means are partial

    @property
    def difference(self) -> float:
        return self.treatment - self.control


@dataclass(frozen=True)
class MetricSplit:
    metric: str
    of_mean: bool  # True when the metric is a percentile: the split is of the per-user mean
    agents: tuple[AgentShare, ...]

    @property
    def difference(self) -> float:
        return sum(a.difference for a in self.agents)


def split_from_sums(metric: str, sums: dict[tuple[int, str], float], users: tuple[int, int],
                    unknown: dict[tuple[int, str], int] | None = None) -> MetricSplit:
    """Per-agent split from summed values per (arm, agent) and users per arm."""
    unknown = unknown or {}
    agents = sorted({agent for _, agent in sums} | {agent for _, agent in unknown})
    shares = []
    for agent in agents:
        means = [sums.get((arm, agent), 0.0) / users[arm] if users[arm] else float("nan")
                 for arm in (0, 1)]
        shares.append(AgentShare(agent, means[0], means[1],
                                 unknown.get((0, agent), 0) + unknown.get((1, agent), 0)))
    # Biggest mover first: that is the agent the reader is looking for.
    shares.sort(key=lambda s: -abs(s.difference) if np.isfinite(s.difference) else 0.0)
    return MetricSplit(metric, METRICS[metric].statistic == "percentile", tuple(shares))


def load_all_agent_splits(conn: Any, experiments: list[Experiment],
                          samples: dict[str, ArmData]) -> dict[str, list[MetricSplit]]:
    """Split every summed metric of each experiment over agents, for its users in `samples`.

    One scan of `events` for all experiments: run on the connection of `load_all_arm_data`,
    whose `assigned_all` table has each user's first exposure per experiment (column `t{i}`,
    `r{i}` for experiments[i]); a combined sample table gives each user's arm per experiment."""
    out: dict[str, list[MetricSplit]] = {e.key: [] for e in experiments}
    todo = [(i, e, [k for k in e.metrics if METRICS[k].aggregate == "sum"])
            for i, e in enumerate(experiments) if samples[e.key].users]
    todo = [(i, e, keys) for i, e, keys in todo if keys]
    if not todo:
        return out
    arms: dict[str, list[int | None]] = {}
    for j, (_, e, _) in enumerate(todo):
        for user, arm in zip(samples[e.key].users, samples[e.key].arm.tolist(), strict=True):
            arms.setdefault(user, [None] * len(todo))[j] = arm
    pg = dialect(conn) == "postgresql"
    conn.execute("DROP TABLE IF EXISTS split_sample")
    conn.execute("CREATE TEMP TABLE split_sample (user_key TEXT PRIMARY KEY, "
                 + ", ".join(f"s{j} INTEGER" for j in range(len(todo))) + ")"
                 + ("" if pg else " WITHOUT ROWID"))
    try:
        insert_rows(conn, "split_sample", ("user_key", *(f"s{j}" for j in range(len(todo)))),
                    ((user, *row) for user, row in arms.items()))
        if pg:
            conn.execute("ANALYZE split_sample")
        event_keys = sorted({METRICS[k].event_key for _, _, keys in todo for k in keys})
        columns = []
        for j, (i, _, _) in enumerate(todo):
            for arm in (0, 1):
                # The user's events after (or in the request of) the first exposure.
                cond = f"s.s{j} = {arm} AND (e.ts >= x.t{i} OR e.request_id = x.r{i})"
                columns += [f"COUNT(CASE WHEN {cond} THEN 1 END)",
                            f"SUM(CASE WHEN {cond} THEN e.value END)",
                            f"COUNT(CASE WHEN {cond} THEN e.value END)"]
        rows = conn.execute(
            "SELECT COALESCE(e.agent, '(no agent recorded)'), e.event_key, "
            + ", ".join(columns) + " FROM split_sample s "
            "JOIN assigned_all x ON x.user_key = s.user_key "
            "JOIN events e ON e.user_key = s.user_key "
            f"WHERE e.event_key IN ({', '.join('?' * len(event_keys))})"
            + unmarked(conn, "e.request_id") + " GROUP BY e.agent, e.event_key",
            event_keys).fetchall()
    finally:
        conn.execute("DROP TABLE IF EXISTS split_sample")
    for j, (_, e, keys) in enumerate(todo):
        data = samples[e.key]
        users = (int(np.count_nonzero(data.arm == 0)), int(np.count_nonzero(data.arm == 1)))
        for key in keys:
            sums: dict[tuple[int, str], float] = {}
            unknown: dict[tuple[int, str], int] = {}
            for row in rows:
                agent, event_key = row[0], row[1]
                if event_key != METRICS[key].event_key:
                    continue
                for arm in (0, 1):
                    n, total, valued = row[2 + 6 * j + 3 * arm: 5 + 6 * j + 3 * arm]
                    if not n:
                        continue  # no event of this agent in this arm
                    sums[(arm, agent)] = sums.get((arm, agent), 0.0) + float(total or 0.0)
                    if n - valued:
                        unknown[(arm, agent)] = unknown.get((arm, agent), 0) + int(n - valued)
            if sums:
                out[e.key].append(split_from_sums(key, sums, users, unknown))
    return out


def split_to_dict(split: MetricSplit) -> dict[str, Any]:
    """The split in the stable JSON schema (per-user means; NaN as null)."""
    def num(x: float) -> float | None:
        return round(float(x), 9) if np.isfinite(x) else None

    return {"metric": split.metric, "of_mean": split.of_mean,
            "difference": num(split.difference),
            "agents": [{"agent": a.agent, "control": num(a.control),
                        "treatment": num(a.treatment), "difference": num(a.difference),
                        "unknown_runs": a.unknown_runs} for a in split.agents]}
