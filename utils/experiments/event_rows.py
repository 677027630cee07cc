"""The report's events pass as arrays: one row per (user, agent), one column per event key.

`utils.experiments.user_metrics` reads the rows (one grouped pass over `events`, and again for
the users whose events need filtering by their first exposure); this module names the columns,
turns rows into arrays (`Coder.table`) and fills each experiment's per-user and per-agent values
from them (`fill`).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np

from utils.experiments.definitions import Experiment
from utils.telemetry.metrics import GENERATION_ERROR, METRICS

if TYPE_CHECKING:
    from utils.experiments.user_metrics import ArmData

# Added to a user's sum for each event without a value: no real sum comes near it, and
# float addition keeps it (or reaches inf) whatever else is summed.
UNKNOWN = 1e300
# A per-agent sum without events (instead of NULL): never a real sum.
NO_EVENT = -1e300

# Rows per (user, agent): the user's earliest event, then one column per (event key, kind):
# "sum" adds the values (a valueless event adds UNKNOWN), "count" counts the events.
Column = tuple[str, str]


def columns_of(experiments: list[Experiment]) -> list[Column]:
    wanted = {(METRICS[k].event_key, "sum" if METRICS[k].aggregate == "sum" else "count")
              for e in experiments for k in e.metrics}
    return sorted(wanted | {(GENERATION_ERROR, "count")})


def aggregates(columns: list[Column], prefix: str = "") -> tuple[str, list[str]]:
    """Never NULL, so rows convert to float arrays in one step (NULLs take numpy's slow path):
    a sum without events is NO_EVENT, a count 0."""
    sql = ", ".join(
        f"COALESCE(SUM(CASE WHEN {prefix}event_key = ? THEN COALESCE({prefix}value, "
        f"{UNKNOWN!r}) END), {NO_EVENT!r})" if kind == "sum"
        else f"COUNT(CASE WHEN {prefix}event_key = ? THEN 1 END)" for _, kind in columns)
    return sql, [key for key, _ in columns]


NO_AGENT = "(no agent recorded)"


@dataclass
class RowTable:
    """Rows of (user, agent, earliest event, one value per column) as arrays: user and agent
    as codes of a `Coder`; NaN = no event."""

    uid: np.ndarray
    agent: np.ndarray
    first_ts: np.ndarray
    values: np.ndarray  # rows x columns
    experiment: np.ndarray  # experiment index per row (rows read per experiment), else -1

    def take(self, keep: np.ndarray) -> RowTable:
        return RowTable(self.uid[keep], self.agent[keep], self.first_ts[keep],
                        self.values[keep], self.experiment[keep])

    def plus(self, other: RowTable) -> RowTable:
        return RowTable(*(np.concatenate([a, b]) for a, b in (
            (self.uid, other.uid), (self.agent, other.agent), (self.first_ts, other.first_ts),
            (self.values, other.values), (self.experiment, other.experiment))))


class Coder:
    """Users and agents as small integers: users by their position in `users`, agents by the
    order of their names (so sums add in the same order on both databases)."""

    def __init__(self, users: list[str]) -> None:
        self.users = users
        self._uid = {u: j for j, u in enumerate(users)}
        self.agents: list[str] = []

    def uids(self, users: list[str]) -> np.ndarray:
        return np.array(list(map(self._uid.__getitem__, users)), dtype=np.int64)

    def table(self, rows: list[tuple], columns: list[Column],
              experiment_column: bool = False) -> RowTable:
        skip = 1 if experiment_column else 0
        cells = np.array(rows, dtype=object).reshape(len(rows), skip + 3 + len(columns))
        uid = np.fromiter(map(self._uid.get, cells[:, skip], repeat(-1)), dtype=np.int64,
                          count=len(rows))
        agents = [a or NO_AGENT for a in cells[:, skip + 1]]
        if not self.agents:  # the first table names them; later ones read a subset of events
            self.agents = sorted(set(agents))
        code = {a: k for k, a in enumerate(self.agents)}
        for name in set(agents) - set(code):  # an agent written since the first read
            code[name] = len(self.agents)
            self.agents.append(name)
        values = cells[:, skip + 3:].astype(float)
        counts = np.array([kind == "count" for _, kind in columns])
        values[(values <= NO_EVENT / 2) | (counts & (values == 0))] = np.nan  # no event
        table = RowTable(
            uid, np.fromiter(map(code.__getitem__, agents), dtype=np.int64, count=len(rows)),
            cells[:, skip + 2].astype(float), values,
            cells[:, 0].astype(np.int64) if experiment_column else np.full(len(rows), -1))
        return table.take(uid >= 0)


def fill(data: ArmData, experiment: Experiment, rows: RowTable, columns: list[Column],
         coder: Coder, uids: np.ndarray) -> bool:
    """Per-user values (and per-agent sums) of `experiment` from its counted rows (`uids`: its
    users' codes); True when a summed metric has users with a valueless event (to resolve)."""
    position = np.full(len(coder.users), -1)
    position[uids] = np.arange(len(data.users))
    hit = position[rows.uid] >= 0
    pos, agent_of, values = position[rows.uid[hit]], rows.agent[hit], rows.values[hit]
    agents = coder.agents
    n, width = len(data.users), len(agents)
    # One value per (user, agent) row; a user's total adds its agents in name order, so both
    # databases give the same last digits whatever order they return the rows in.
    cell = pos * width + agent_of

    def per_user_agent(col: np.ndarray) -> np.ndarray:
        """Sum of `col` per user (rows) and agent (columns) where present; NaN where none."""
        present = ~np.isnan(col)
        out = np.full(n * width, np.nan)
        seen = np.bincount(cell[present], minlength=n * width) > 0
        out[seen] = np.bincount(cell[present], weights=col[present], minlength=n * width)[seen]
        return out.reshape(n, width)

    unknown = False
    for d in (METRICS[k] for k in experiment.metrics):
        col = values[:, columns.index((d.event_key, "sum" if d.aggregate == "sum" else "count"))]
        by_agent = per_user_agent(col)
        seen = ~np.isnan(by_agent).all(axis=1)
        if d.aggregate == "any":
            data.values[d.key][seen] = 1.0
            continue
        total = np.nansum(by_agent[seen], axis=1)
        data.values[d.key][seen] = total
        unknown |= bool(np.any(total >= UNKNOWN / 2))
        data.agent_sums[d.key] = {name: by_agent[:, a] for a, name in enumerate(agents)
                                  if not np.isnan(by_agent[:, a]).all()}
    errors = per_user_agent(values[:, columns.index((GENERATION_ERROR, "count"))])
    data.failed_runs = np.nansum(errors, axis=1)  # 0 for users without errors
    return unknown
