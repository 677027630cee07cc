"""Experiment verdicts over HTTP: list, JSON results and the HTML report."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from api.deps import SettingsDep
from utils.experiments.definitions import (
    ExperimentConfigError,
    find_experiment,
    load_experiments,
)
from utils.experiments.report_html import render_html
from utils.experiments.verdicts import EventStoreError, Report, build_report, report_to_dict
from utils.settings import Settings

router = APIRouter(prefix="/experiments", tags=["experiments"])


class ExperimentPublic(BaseModel):
    """One experiment and its current verdict."""

    key: str
    name: str
    config: str
    control: str
    treatment: str
    users: dict[str, int]
    outcome: str
    variation: str | None
    summary: str


class ExperimentList(BaseModel):
    simulated: bool
    experiments: list[ExperimentPublic]


def _report(settings: Settings, key: str | None = None) -> Report:
    """Build the report from the configured store; HTTP errors name what went wrong."""
    try:
        experiments = load_experiments(settings.EXPERIMENTS_FILE)
    except ExperimentConfigError as exc:
        raise HTTPException(500, str(exc)) from exc
    if key is not None:
        try:
            find_experiment(experiments, key)
        except KeyError as exc:
            raise HTTPException(404, exc.args[0]) from None
    try:
        return build_report(settings.events_location, experiments, experiment_key=key)
    except EventStoreError as exc:
        raise HTTPException(503, str(exc)) from exc


@router.get("", response_model=ExperimentList)
def list_experiments(settings: SettingsDep) -> ExperimentList:
    """Every experiment with its arms, users per arm and current verdict."""
    report = _report(settings)
    return ExperimentList(simulated=report.simulated, experiments=[
        ExperimentPublic(key=r.experiment.key, name=r.experiment.name,
                         config=r.experiment.config, control=r.experiment.control,
                         treatment=r.experiment.treatment, users=r.users,
                         outcome=r.verdict.outcome, variation=r.verdict.variation,
                         summary=r.verdict.summary)
        for r in report.experiments
    ])


@router.get("/{key}/results")
def read_experiment_results(key: str, settings: SettingsDep) -> dict[str, Any]:
    """Comparisons, criteria and verdict of one experiment (the `experiment_report --json` schema)."""
    return report_to_dict(_report(settings, key))


@router.get("/{key}/report", response_class=HTMLResponse)
def read_experiment_report(key: str, settings: SettingsDep) -> HTMLResponse:
    """The self-contained HTML report of one experiment, with charts."""
    return HTMLResponse(render_html(_report(settings, key)))
