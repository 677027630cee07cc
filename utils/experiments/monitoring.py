"""Safe to watch: where a look sits against the experiment's planned horizon (docs/STATISTICS.md §6).

A verdict refreshed while traffic runs is a sequence of looks. With `monitoring:
planned_horizon` the horizon (users per arm) is fixed before any data by the sample-size
planner at the effect the experiment declares; a look before it is *interim*, where SHIP
needs every probability bar met at the stricter `early_stop_probability` and KEEP needs a
decisive failure (futility). At or past the horizon the look is *final*: the full rule
applies to the first `horizon` users of each arm (by first exposure), so every later refresh
gives the same verdict. Without a plan the verdict is a *single look*, valid only at a sample
fixed in advance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from utils.experiments.definitions import Experiment, probability_bar
from utils.experiments.planning import PLANNING_ALPHA, PLANNING_POWER
from utils.experiments.user_metrics import ArmData
from utils.stats.planning import sample_size_conversion

LookKind = Literal["interim", "final", "single"]


@dataclass(frozen=True)
class Look:
    """One look at an experiment: its users per arm against the planned horizon."""

    method: Literal["planned_horizon", "single_look"]
    users_per_arm: int  # the smaller arm
    horizon_per_arm: int | None = None
    early_stop_probability: float | None = None
    later_users: int = 0  # users past the horizon, left out of a final decision

    @property
    def kind(self) -> LookKind:
        if self.horizon_per_arm is None:
            return "single"
        return "final" if self.users_per_arm >= self.horizon_per_arm else "interim"

    @property
    def progress(self) -> float | None:
        """Share of the horizon reached (capped at 1), None without a plan."""
        if self.horizon_per_arm is None:
            return None
        return min(1.0, self.users_per_arm / self.horizon_per_arm)

    @property
    def label(self) -> str:
        if self.kind == "single":
            return ("single look: valid once, at a sample size fixed in advance; refreshing "
                    "it while traffic runs inflates false ships")
        of = f"{self.users_per_arm:,} of {self.horizon_per_arm:,} users per arm"
        if self.kind == "final":
            later = (f"; decided on the first {self.horizon_per_arm:,} per arm, "
                     f"{self.later_users:,} later users not in it") if self.later_users else ""
            return f"final look: the planned {self.horizon_per_arm:,} users per arm reached{later}"
        return (f"interim look ({of}, {self.progress:.0%}): ships early only on overwhelming "
                f"evidence (every probability ≥ {self.early_stop_probability:g})")


def planned_horizon(experiment: Experiment) -> int | None:
    """Users per arm the plan asks for, from the declared baseline and effect; None without one."""
    plan = experiment.monitoring
    if plan is None:
        return None
    return sample_size_conversion(plan.baseline, plan.relative_effect, alpha=PLANNING_ALPHA,
                                  power=PLANNING_POWER)


def plan_look(experiment: Experiment, users: dict[str, int]) -> Look:
    """The look the current users make: interim, final or (without a plan) single."""
    current = min(users.values()) if users else 0
    horizon = planned_horizon(experiment)
    if horizon is None:
        return Look("single_look", current)
    return Look("planned_horizon", current, horizon,
                experiment.monitoring.early_stop_probability)


def first_arrivals(data: ArmData, caps: tuple[int, int]) -> ArmData:
    """The first `caps[a]` users of arm a by first exposure: the sample a look then saw."""
    order = np.argsort(data.first_ts, kind="stable")
    keep = np.sort(np.concatenate([order[data.arm[order] == a][:caps[a]] for a in (0, 1)]))
    return data.take(keep)


def decision_sample(experiment: Experiment, data: ArmData) -> tuple[ArmData, Look]:
    """The users a verdict is decided on, and the look they make.

    Past the horizon only the planned sample decides: the horizon in the smaller arm of the
    split, and in proportion to the split in the other, taken by first exposure.
    """
    users = [int(np.count_nonzero(data.arm == a)) for a in (0, 1)]
    look = plan_look(experiment, dict(zip(experiment.variations, users, strict=True)))
    if look.kind != "final":
        return data, look
    weights = [experiment.split[v] for v in experiment.variations]
    caps = tuple(math.ceil(look.horizon_per_arm * w / min(weights)) for w in weights)
    if all(n <= cap for n, cap in zip(users, caps, strict=True)):
        return data, look
    sample = first_arrivals(data, caps)
    later = len(data.users) - len(sample.users)
    return sample, Look(look.method, look.horizon_per_arm, look.horizon_per_arm,
                        look.early_stop_probability, later)


def early_stop_shortfall(experiment: Experiment, criteria: list[Any], look: Look) -> list[Any]:
    """Criteria (results) whose probability falls short of the early-stop bar at an interim look.

    Empty at a final or single look. A criterion without a probability bar (a posterior-mean
    lift) keeps its own rule: raising it would ask a different question, not more evidence.
    """
    if look.kind != "interim":
        return []
    short = []
    for definition, result in zip(experiment.decision.ship_if_all, criteria, strict=True):
        if probability_bar(definition) is not None and not (
                result.probability_met >= look.early_stop_probability):
            short.append(result)
    return short


def look_to_dict(look: Look) -> dict[str, Any]:
    """The look in the stable JSON schema."""
    return {"method": look.method, "look": look.kind, "users_per_arm": look.users_per_arm,
            "horizon_per_arm": look.horizon_per_arm,
            "progress": None if look.progress is None else round(look.progress, 4),
            "early_stop_probability": look.early_stop_probability,
            "later_users": look.later_users, "label": look.label}
