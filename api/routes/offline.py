"""Offline experiments over HTTP: the list, each one's `show --json` document, and starting a
run (admin; api/offline_jobs.py: the run is claimed in the shared state file, so any worker
answers the same)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException

from api.deps import AdminDep, SettingsDep
from api.offline_jobs import RunNotStarted, start_run
from api.offline_runner import DEFAULT_CONCURRENCY
from api.schemas import OfflineRunRequest
from utils.experiments.offline_report import show_document, task_diff, task_runs
from utils.experiments.offline_state import RuleBroken, StateStore, check_name, is_orphaned

router = APIRouter(prefix="/offline-experiments", tags=["offline experiments"])


def _summary(document: dict[str, Any]) -> dict[str, Any]:
    ran = [v for v in document["variants"] if v["pass_rate"] is not None]
    best = max(ran, key=lambda v: v["pass_rate"], default=None)
    return {"key": document["key"], "description": document["description"],
            "status": document["status"], "steps": document["steps"],
            "tasks": document["tasks"]["count"], "repeats": document["repeats"],
            "variants": len(document["variants"]), "updated_at": document["updated_at"],
            "best": None if best is None else {"name": best["name"],
                                               "pass_rate": best["pass_rate"]}}


@router.get("")
def list_offline_experiments(settings: SettingsDep) -> dict[str, Any]:
    """Every offline experiment under DATA_DIR, newest change first; unreadable ones named."""
    store = StateStore(settings.DATA_DIR)
    items, unreadable = [], []
    for key in store.keys():  # noqa: SIM118 (a method of StateStore, not a dict)
        try:
            items.append(_summary(show_document(store.load(key))))
        except (RuleBroken, KeyError, TypeError, ValueError) as exc:
            unreadable.append({"key": key, "error": str(exc)})
    items.sort(key=lambda item: item["updated_at"] or "", reverse=True)
    return {"experiments": items, "unreadable": unreadable}


def _load(key: str, settings: Any) -> dict[str, Any]:
    """The state of offline experiment `key`; 404 names an unknown or malformed key."""
    try:
        check_name("experiment", key)
    except RuleBroken as exc:
        raise HTTPException(404, str(exc)) from None
    store = StateStore(settings.DATA_DIR)
    if not store.exists(key):
        raise HTTPException(404, f"no offline experiment {key!r}; known: "
                                 f"{', '.join(store.keys()) or 'none'}")
    try:
        state = store.load(key)
        if is_orphaned(state):  # its process died: say so now, not at the next edit
            with store.editing(key) as state:
                pass
        return state
    except RuleBroken as exc:
        raise HTTPException(500, str(exc)) from exc


@router.get("/{key}")
def get_offline_experiment(key: str, settings: SettingsDep) -> dict[str, Any]:
    """The `python -m tools.offline_experiment show KEY --json` document."""
    try:
        return show_document(_load(key, settings))
    except RuleBroken as exc:
        raise HTTPException(500, str(exc)) from exc


@router.get("/{key}/diff")
def diff_offline_variants(key: str, a: str, b: str, settings: SettingsDep) -> dict[str, Any]:
    """Task by task, two variants' passes (which differ) and their paired comparison."""
    try:
        return task_diff(_load(key, settings), a, b)
    except KeyError as exc:
        raise HTTPException(404, exc.args[0]) from None


@router.get("/{key}/variants/{name}/tasks/{task_id}/runs")
def offline_task_runs(key: str, name: str, task_id: str,
                      settings: SettingsDep) -> dict[str, Any]:
    """The recorded runs of one task in one variant: request id, route, checks, cost, latency."""
    try:
        runs = task_runs(_load(key, settings), name, task_id)
    except KeyError as exc:
        raise HTTPException(404, exc.args[0]) from None
    return {"key": key, "variant": name, "task_id": task_id, "runs": runs}


@router.post("/{key}/runs", status_code=202, responses={
    409: {"description": "the experiment's state forbids the run now (e.g. it is running)"},
    403: {"description": "no or a wrong X-Admin-Token header, or ADMIN_TOKEN unset"}})
async def start_offline_run(key: str, body: OfflineRunRequest, settings: SettingsDep,
                            _: AdminDep) -> dict[str, Any]:
    """Run the baseline or a variant in a process of its own; answered once it has claimed
    the run. Poll GET /offline-experiments/{key} (any worker) for `running` and the results."""
    _load(key, settings)  # 404 for an unknown key
    try:
        return await asyncio.to_thread(start_run, StateStore(settings.DATA_DIR), key,
                                       body.variant, body.concurrency or DEFAULT_CONCURRENCY)
    except RuleBroken as exc:
        raise HTTPException(409, str(exc)) from None
    except RunNotStarted as exc:
        raise HTTPException(exc.status_code, str(exc)) from None
