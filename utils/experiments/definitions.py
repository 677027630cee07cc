"""Experiment definitions: load and validate `bootstrap/experiments.yaml`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from utils.strict_yaml import read_yaml, validate
from utils.telemetry.metrics import METRICS

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "bootstrap" / "experiments.yaml"

Probability = Annotated[float, Field(gt=0.0, lt=1.0)]


class ExperimentConfigError(ValueError):
    """The experiments file is unreadable or does not match the schema."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_metric(key: str) -> str:
    if key not in METRICS:
        raise ValueError(f"unknown metric {key!r}; expected one of {sorted(METRICS)}")
    return key


class ProbabilityToBeat(_Strict):
    """P(treatment better than control) >= probability_to_beat."""

    kind: Literal["probability_to_beat"] = "probability_to_beat"
    metric: str
    probability_to_beat: Probability

    _metric = field_validator("metric")(_check_metric)


class NonInferiority(_Strict):
    """P(relative change, in the good direction, >= -non_inferiority_margin) >= probability.

    "Not worse by more than the margin": for a higher-is-better metric P(t/c - 1 >= -m), for a
    lower-is-better one P(t/c - 1 <= +m).
    """

    kind: Literal["non_inferiority_margin"] = "non_inferiority_margin"
    metric: str
    non_inferiority_margin: Annotated[float, Field(gt=0.0, lt=1.0)]
    probability: Probability

    _metric = field_validator("metric")(_check_metric)


class RetiredNotWorse(_Strict):
    """`not_worse: p` (P(worse) < p) had no margin; refuse it and say what replaces it."""

    kind: Literal["not_worse"] = "not_worse"

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, value: Any) -> Any:
        raise ValueError(
            "`not_worse: p` (P(treatment worse) < p) has no margin: at 300 users per arm it "
            "shipped a true -20% drop 44% of the time. Use a non-inferiority criterion, e.g. "
            "`non_inferiority_margin: 0.05` with `probability: 0.90`")


class RelativeLiftAtLeast(_Strict):
    """Posterior mean relative lift, in the metric's good direction, >= relative_lift_at_least."""

    kind: Literal["relative_lift_at_least"] = "relative_lift_at_least"
    metric: str
    relative_lift_at_least: float

    _metric = field_validator("metric")(_check_metric)


class RelativeIncreaseAtMost(_Strict):
    """P(relative increase of the metric <= relative_increase_at_most) >= probability."""

    kind: Literal["relative_increase_at_most"] = "relative_increase_at_most"
    metric: str
    relative_increase_at_most: float
    probability: Probability

    _metric = field_validator("metric")(_check_metric)


class AbsoluteIncreaseAtMost(_Strict):
    """P(treatment - control <= absolute_increase_at_most, metric units) >= probability."""

    kind: Literal["absolute_increase_at_most"] = "absolute_increase_at_most"
    metric: str
    absolute_increase_at_most: float
    probability: Probability

    _metric = field_validator("metric")(_check_metric)


class CostValueRatioAtLeast(_Strict):
    """P((value lift %) / (cost increase %) >= cost_value_ratio_at_least) >= probability.

    Over joint user-level draws of value and cost; a cost decrease with a value that did not
    fall counts as meeting the ratio ("cheaper and better").
    """

    kind: Literal["cost_value_ratio_at_least"] = "cost_value_ratio_at_least"
    cost_value_ratio_at_least: float
    probability: Probability
    value_metric: str
    cost_metric: str

    _metrics = field_validator("value_metric", "cost_metric")(_check_metric)


_CRITERION_KINDS = (
    "probability_to_beat",
    "non_inferiority_margin",
    "not_worse",
    "relative_lift_at_least",
    "relative_increase_at_most",
    "absolute_increase_at_most",
    "cost_value_ratio_at_least",
)


def _criterion_kind(value: Any) -> str | None:
    """Pick the criterion model by which rule key is present (the YAML has no `kind` field)."""
    if isinstance(value, BaseModel):
        return getattr(value, "kind", None)
    if not isinstance(value, dict):
        return None
    if "kind" in value:
        return value["kind"]
    present = [k for k in _CRITERION_KINDS if k in value]
    return present[0] if len(present) == 1 else None


Criterion = Annotated[
    Annotated[ProbabilityToBeat, Tag("probability_to_beat")]
    | Annotated[NonInferiority, Tag("non_inferiority_margin")]
    | Annotated[RetiredNotWorse, Tag("not_worse")]
    | Annotated[RelativeLiftAtLeast, Tag("relative_lift_at_least")]
    | Annotated[RelativeIncreaseAtMost, Tag("relative_increase_at_most")]
    | Annotated[AbsoluteIncreaseAtMost, Tag("absolute_increase_at_most")]
    | Annotated[CostValueRatioAtLeast, Tag("cost_value_ratio_at_least")],
    Discriminator(
        _criterion_kind,
        custom_error_type="criterion_kind",
        custom_error_message=(
            "a criterion needs exactly one rule key, one of " + ", ".join(_CRITERION_KINDS)
        ),
    ),
]


# A criterion whose probability of being met falls below this has decisively failed.
DEFAULT_FUTILITY_FLOOR = 0.05


def probability_bar(criterion: Any) -> float | None:
    """The probability a criterion asks for, or None (a posterior-mean lift has none)."""
    return getattr(criterion, "probability", None) or getattr(
        criterion, "probability_to_beat", None)


class Decision(_Strict):
    """Ship when every criterion passes; KEEP when one has decisively failed (futility);
    otherwise the `otherwise` outcome."""

    ship_if_all: list[Criterion] = Field(min_length=1)
    otherwise: Literal["need_more_data", "keep_control"]
    futility_floor: Annotated[float, Field(ge=0.0, lt=0.5)] = DEFAULT_FUTILITY_FLOOR

    @model_validator(mode="after")
    def _floor_below_bars(self) -> Decision:
        for criterion in self.ship_if_all:
            bar = probability_bar(criterion)
            if bar is not None and self.futility_floor >= bar:
                raise ValueError(f"futility_floor {self.futility_floor:g} must be below every "
                                 f"criterion's probability; {criterion.kind} asks {bar:g}")
        return self


class Monitoring(_Strict):
    """Safe to watch (docs/STATISTICS.md §6): a planned horizon with a conservative early stop.

    The horizon is the per-arm sample of the planner for `relative_effect` on `metric` from
    `baseline` (a rate) at alpha 0.05 two-sided and 80% power, fixed before any data. Looks
    before it are interim: SHIP only when every probability bar is met at
    `early_stop_probability`; KEEP only for futility. The full rule applies at the horizon.
    """

    method: Literal["planned_horizon"] = "planned_horizon"
    metric: str
    baseline: Annotated[float, Field(gt=0.0, lt=1.0)]
    relative_effect: Annotated[float, Field(gt=-1.0, lt=1.0)]
    early_stop_probability: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.99

    _metric = field_validator("metric")(_check_metric)

    @field_validator("relative_effect")
    @classmethod
    def _nonzero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("relative_effect must be non-zero: the planner sizes the "
                             "horizon to detect it")
        return value


class Experiment(_Strict):
    """One experiment: a config, two arms, a split, metrics and a decision rule."""

    key: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    hypothesis: str
    config: str
    audience: str
    control: str
    treatment: str
    split: dict[str, Annotated[float, Field(ge=0, le=100)]]
    randomize_by: Literal["user"] = "user"
    threshold: Probability = 0.90
    seed: int
    primary_metric: str
    metrics: list[str] = Field(min_length=1)
    decision: Decision
    monitoring: Monitoring | None = None  # None: a single look at a sample fixed in advance
    # Who `python -m bootstrap.promote` serves the winner to: the audience segment only, or
    # everyone (the config's default/fallthrough variation becomes the winner).
    promote_to: Literal["audience", "everyone"] = "audience"

    _primary = field_validator("primary_metric")(_check_metric)

    @field_validator("split")
    @classmethod
    def _split_sums_to_100(cls, value: dict[str, float]) -> dict[str, float]:
        total = sum(value.values())
        if abs(total - 100.0) > 1e-9:
            raise ValueError(f"split percentages must sum to 100, got {total:g}")
        return value

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: list[str]) -> list[str]:
        for key in value:
            _check_metric(key)
        if len(set(value)) != len(value):
            raise ValueError(f"metrics are listed twice: {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        if self.control == self.treatment:
            raise ValueError(f"control and treatment are both {self.control!r}")
        arms = {self.control, self.treatment}
        if set(self.split) != arms:
            raise ValueError(
                f"split must name exactly the control and treatment {sorted(arms)}, "
                f"got {sorted(self.split)}"
            )
        if self.primary_metric not in self.metrics:
            raise ValueError(f"primary_metric {self.primary_metric!r} is not in metrics")
        for criterion in self.decision.ship_if_all:
            for metric in criterion_metrics(criterion):
                if metric not in self.metrics:
                    raise ValueError(
                        f"criterion {criterion.kind} uses metric {metric!r}, "
                        f"which is not in metrics {self.metrics}"
                    )
        if self.monitoring is not None:
            if METRICS[self.monitoring.metric].statistic != "conversion":
                raise ValueError(f"monitoring.metric {self.monitoring.metric!r} must be a "
                                 "conversion (rate) metric: the horizon is planned from its "
                                 "baseline rate")
            if self.monitoring.metric not in self.metrics:
                raise ValueError(f"monitoring.metric {self.monitoring.metric!r} is not in "
                                 "metrics")
            top = max((probability_bar(c) or 0.0) for c in self.decision.ship_if_all)
            if self.monitoring.early_stop_probability <= top:
                raise ValueError(f"monitoring.early_stop_probability "
                                 f"{self.monitoring.early_stop_probability:g} must exceed every "
                                 f"criterion's probability (highest {top:g}): an early stop "
                                 "asks for more evidence than the final look")
        return self

    @property
    def variations(self) -> tuple[str, str]:
        """(control, treatment)."""
        return (self.control, self.treatment)


def criterion_metrics(criterion: Any) -> tuple[str, ...]:
    """The metric keys a criterion reads."""
    if isinstance(criterion, CostValueRatioAtLeast):
        return (criterion.value_metric, criterion.cost_metric)
    return (criterion.metric,)


class ExperimentsFile(_Strict):
    """The top level of experiments.yaml."""

    experiments: list[Experiment] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_keys(self) -> ExperimentsFile:
        keys = [e.key for e in self.experiments]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"experiment keys must be unique; repeated: {dupes}")
        return self


def parse_experiments(data: Any, path: Path | str = "<memory>") -> list[Experiment]:
    """Validate already-parsed YAML data; errors name the file, the key path and the expectation."""
    return validate(ExperimentsFile, data, Path(path), ExperimentConfigError,
                    "experiment definitions", skip=_CRITERION_KINDS).experiments


def load_experiments(path: Path | str | None = DEFAULT_PATH) -> list[Experiment]:
    """Load and validate the experiments file (None: the default one); raise
    `ExperimentConfigError` naming what is wrong."""
    path = Path(DEFAULT_PATH if path is None else path)
    return parse_experiments(read_yaml(path, ExperimentConfigError, "experiments file"), path)


def find_experiment(experiments: list[Experiment], key: str) -> Experiment:
    """The experiment with this key; `KeyError` naming the known keys when there is none."""
    for experiment in experiments:
        if experiment.key == key:
            return experiment
    raise KeyError(f"unknown experiment {key!r}; known: {[e.key for e in experiments]}")
