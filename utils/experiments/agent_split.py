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
from utils.experiments.user_metrics import ArmData
from utils.telemetry.metrics import METRICS


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


def agent_splits(experiment: Experiment, data: ArmData) -> list[MetricSplit]:
    """Split every summed metric of `experiment` over agents, for the users in `data` (the
    per-agent sums `load_all_arm_data` keeps for each user)."""
    out: list[MetricSplit] = []
    if not data.users:
        return out
    users = (int(np.count_nonzero(data.arm == 0)), int(np.count_nonzero(data.arm == 1)))
    for key in experiment.metrics:
        shares = data.agent_sums.get(key, {})
        valueless = data.agent_unknown.get(key, {})
        sums: dict[tuple[int, str], float] = {}
        unknown: dict[tuple[int, str], int] = {}
        for agent, per_user in shares.items():
            runs = valueless.get(agent, np.zeros(len(data.users)))
            for arm in (0, 1):
                mine = data.arm == arm
                if np.isnan(per_user[mine]).all() and not runs[mine].any():
                    continue  # no event of this agent in this arm
                sums[(arm, agent)] = float(np.nansum(per_user[mine]))
                if runs[mine].any():
                    unknown[(arm, agent)] = int(runs[mine].sum())
        if sums:
            out.append(split_from_sums(key, sums, users, unknown))
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
