"""LaunchDarkly metrics and experiments: created from the metric table and experiments.yaml.

Metrics come from `utils.telemetry.metrics.METRICS` (the table the local verdicts read), so
LaunchDarkly measures what the local engine measures. Each experiment is created with its
iteration (treatments on the AI config's variations, the audience segment's targeting rule,
primary and secondary metrics, randomised by user); `start` starts the draft iteration, and
`stop` ends the running one with a winning treatment.

API shapes (launchdarkly/api-client-python ``docs/``): ``MetricPost.md`` (kind, isNumeric,
eventKey, successCriteria ``HigherThanBaseline|LowerThanBaseline``, unitAggregationType
``sum|average``, analysisType, percentileValue as an integer 0-100, randomizationUnits,
eventDefault), ``MetricsApi.md`` (list with ``limit`` at most 50 and ``offset``; PATCH is a JSON
patch), ``ExperimentPost.md`` / ``IterationInput.md`` / ``TreatmentInput.md`` /
``TreatmentParameterInput.md`` / ``FlagInput.md`` / ``MetricInput.md``, ``ExperimentsApi.md``
(GET with ``expand=draftIteration,treatments,secondaryMetrics``; semantic-patch PATCH with
``startIteration`` and ``stopIteration {winningTreatmentId, winningReason}``; a new draft through
POST ``.../iterations``). Treatments name the *targeting* variation ids (``TreatmentRep.id`` "is
the variation ID from the flag"); an AI config's flag key is its config key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bootstrap.launchdarkly_backend import rule_segment, targeting_key
from bootstrap.launchdarkly_client import LaunchDarklyClient, LaunchDarklyError
from utils.telemetry.metrics import METRICS, RANDOMIZATION_UNIT, MetricDefinition

EXPAND = "draftIteration,treatments,secondaryMetrics"
# Fields of a metric we own; a difference in any of them is updated with a JSON patch.
METRIC_FIELDS = ("name", "description", "kind", "eventKey", "isNumeric", "successCriteria",
                 "unit", "unitAggregationType", "analysisType", "percentileValue",
                 "randomizationUnits", "eventDefault")


def metric_payload(metric: MetricDefinition) -> dict[str, Any]:
    """A custom metric for POST /api/v2/metrics/{projectKey}, from the one metric table.

    Conversion metrics count a user once they send the event; numeric ones sum a user's event
    values, then compare the mean (users without events count as 0, as locally) or the given
    percentile (users without events left out, which LaunchDarkly requires for percentiles).
    """
    body: dict[str, Any] = {
        "key": metric.key, "name": metric.name, "description": metric.description,
        "kind": "custom", "eventKey": metric.event_key, "isNumeric": metric.is_numeric,
        "successCriteria": "HigherThanBaseline" if metric.higher_is_better
        else "LowerThanBaseline",
        "randomizationUnits": [RANDOMIZATION_UNIT], "tags": ["bootstrap"]}
    if metric.is_numeric:
        body["unit"] = metric.unit
        body["unitAggregationType"] = metric.aggregate  # "sum"
        if metric.statistic == "percentile":
            assert metric.percentile is not None
            body["analysisType"] = "percentile"
            body["percentileValue"] = round(metric.percentile * 100)
            body["eventDefault"] = {"disabled": True}
        else:
            body["analysisType"] = "mean"
            body["eventDefault"] = {"disabled": False, "value": 0}
    return body


def describe_metric(body: dict[str, Any]) -> str:
    """One line saying what a metric measures, as LaunchDarkly will compute it."""
    if not body.get("isNumeric"):
        kind = "conversion"
    elif body.get("analysisType") == "percentile":
        kind = f"numeric, per-user {body['unitAggregationType']}, p{body['percentileValue']}"
    else:
        kind = f"numeric, per-user {body['unitAggregationType']}, mean"
    unit = f", {body['unit']}" if body.get("unit") else ""
    better = "higher" if body["successCriteria"] == "HigherThanBaseline" else "lower"
    return f"{body['key']} ({body['eventKey']}): {kind}{unit}, {better} is better"


def _metric_diff(have: dict[str, Any], want: dict[str, Any]) -> list[str]:
    return [f for f in METRIC_FIELDS if have.get(f) != want.get(f)]


class LaunchDarklyExperiments:
    """Creates metrics and experiments, and starts and stops iterations, idempotently."""

    def __init__(self, client: LaunchDarklyClient, project: str, environment: str, *,
                 dry_run: bool = False, out: Callable[[str], None] = print) -> None:
        self.client, self.project, self.environment = client, project, environment
        self.dry_run, self.out = dry_run, out
        self.changes: list[str] = []
        self._experiments = (f"/api/v2/projects/{project}/environments/{environment}"
                             "/experiments")

    def _change(self, description: str, method: str, path: str, body: Any,
                semantic_patch: bool = False) -> Any:
        self.changes.append(description)
        self.out(("would " if self.dry_run else "") + description)
        if self.dry_run:
            return None
        return self.client.request(method, path, body=body, semantic_patch=semantic_patch)

    # --- metrics ------------------------------------------------------------------------

    def sync_metrics(self, keys: list[str]) -> None:
        """Create each metric that is missing and patch the fields that differ."""
        base = f"/api/v2/metrics/{self.project}"
        current = {m.get("key"): m for m in self.client.paginate(base)}
        for key in keys:
            want = metric_payload(METRICS[key])
            have = current.get(key)
            if have is None:
                self._change(f"create metric {describe_metric(want)}", "POST", base, want)
                continue
            have = self.client.request("GET", f"{base}/{key}") or have  # the full metric
            if fields := _metric_diff(have, want):
                patch = [{"op": "replace", "path": f"/{f}", "value": want.get(f)}
                         for f in fields]
                diff = "; ".join(f"{f} {have.get(f)!r} -> {want.get(f)!r}" for f in fields)
                self._change(f"update metric {key}: {diff}", "PATCH", f"{base}/{key}", patch)

    # --- experiments --------------------------------------------------------------------

    def get_experiment(self, key: str) -> dict[str, Any] | None:
        return self.client.request("GET", f"{self._experiments}/{key}?expand={EXPAND}",
                                   not_found_ok=True)

    def _targeting(self, config: str) -> dict[str, Any]:
        path = f"/api/v2/projects/{self.project}/ai-configs/{config}/targeting"
        return self.client.request("GET", path) or {}

    def iteration_payload(self, exp: Any, targeting: dict[str, Any]) -> dict[str, Any]:
        """The iteration of `exp`: its arms as treatments on its audience rule, its metrics."""
        ids = {targeting_key(v): v.get("_id") for v in targeting.get("variations", [])}
        env = (targeting.get("environments") or {}).get(self.environment) or {}
        rules = [r for r in env.get("rules", []) if rule_segment(r) == exp.audience]
        if not rules:
            raise LaunchDarklyError(
                f"experiment {exp.key}: {exp.config} has no targeting rule for segment "
                f"{exp.audience} in {self.environment}; run python -m bootstrap.create_configs "
                "first")
        missing = [arm for arm in exp.split if not ids.get(arm)]
        if missing:
            raise LaunchDarklyError(
                f"experiment {exp.key}: {exp.config} has no variation {missing}; run python -m "
                "bootstrap.experiment_variations without --dry-run first")
        treatments = [{"name": arm, "baseline": arm == exp.control,
                       "allocationPercent": f"{percent:g}",
                       "parameters": [{"flagKey": exp.config, "variationId": ids[arm]}]}
                      for arm, percent in exp.split.items()]
        return {"hypothesis": exp.hypothesis, "canReshuffleTraffic": False,
                "metrics": [{"key": m, "isGroup": False} for m in exp.metrics],
                "primarySingleMetricKey": exp.primary_metric, "treatments": treatments,
                "flags": {exp.config: {"ruleId": rules[0]["_id"],
                                       "flagConfigVersion": int(targeting.get("version", 1))}},
                "randomizationUnit": exp.randomize_by}

    def sync_experiment(self, exp: Any) -> dict[str, Any] | None:
        """Create the experiment with its draft iteration, or a new draft when the arms,
        split, metrics or rule changed and no iteration runs. Returns the experiment."""
        have = self.get_experiment(exp.key)
        if self.dry_run and have is None and not self._targeting_ready(exp):
            self._change(f"create experiment {exp.key} ({_describe_plan(exp)})", "POST",
                         self._experiments, None)
            return None
        iteration = self.iteration_payload(exp, self._targeting(exp.config))
        if have is None:
            self._change(f"create experiment {exp.key} ({_describe_plan(exp)})", "POST",
                         self._experiments,
                         {"key": exp.key, "name": exp.name, "description": exp.hypothesis,
                          "tags": ["bootstrap"], "iteration": iteration})
            return None if self.dry_run else self.get_experiment(exp.key)
        current = have.get("currentIteration") or {}
        if current.get("status") == "running":
            return have
        draft = have.get("draftIteration")
        if draft is not None and _same_iteration(draft, iteration):
            return have
        if draft is None and current.get("status") == "stopped":
            return have  # concluded (promoted): never restarted by the bootstrap
        self._change(f"create a new draft iteration of {exp.key} ({_describe_plan(exp)})",
                     "POST", f"{self._experiments}/{exp.key}/iterations", iteration)
        return None if self.dry_run else self.get_experiment(exp.key)

    def _targeting_ready(self, exp: Any) -> bool:
        try:
            self.iteration_payload(exp, self._targeting(exp.config))
        except LaunchDarklyError:
            return False
        return True

    def start(self, exp: Any, have: dict[str, Any] | None) -> None:
        """Start the draft iteration (nothing when one already runs or the test concluded)."""
        if have is None:
            if self.dry_run:
                self._change(f"start the iteration of {exp.key}", "PATCH", "", None)
            return
        current = have.get("currentIteration") or {}
        if current.get("status") == "running":
            self.out(f"{exp.key}: iteration already running")
            return
        if have.get("draftIteration") is None:
            self.out(f"{exp.key}: no draft iteration to start (stopped with winner "
                     f"{current.get('winningTreatmentId')!r})")
            return
        self._change(f"start the iteration of {exp.key}", "PATCH",
                     f"{self._experiments}/{exp.key}",
                     {"comment": "bootstrap: start the experiment",
                      "instructions": [{"kind": "startIteration"}]}, semantic_patch=True)

    def stop(self, exp: Any, winner: str, reason: str) -> None:
        """Stop the running iteration with `winner`'s treatment as the winning treatment."""
        have = self.get_experiment(exp.key)
        if have is None:
            raise LaunchDarklyError(f"experiment {exp.key} does not exist in {self.project}/"
                                    f"{self.environment}; nothing to stop")
        current = have.get("currentIteration") or {}
        treatments = current.get("treatments") or []
        ids = {v.get("_id"): targeting_key(v)
               for v in self._targeting(exp.config).get("variations", [])}
        winning = [t for t in treatments if t.get("name") == winner or any(
            ids.get(p.get("variationId")) == winner for p in t.get("parameters") or [])]
        if current.get("status") == "stopped":
            self.out(f"{exp.key}: iteration already stopped")
            return
        if current.get("status") != "running":
            self.out(f"{exp.key}: no running iteration to stop")
            return
        if not winning:
            raise LaunchDarklyError(f"experiment {exp.key}: no treatment of the running "
                                    f"iteration serves {winner!r} (treatments: "
                                    f"{[t.get('name') for t in treatments]})")
        self._change(f"stop the iteration of {exp.key} with winner {winner}", "PATCH",
                     f"{self._experiments}/{exp.key}",
                     {"comment": f"bootstrap: promote {winner}",
                      "instructions": [{"kind": "stopIteration",
                                        "winningTreatmentId": winning[0]["_id"],
                                        "winningReason": reason}]}, semantic_patch=True)


def _describe_plan(exp: Any) -> str:
    split = " / ".join(f"{arm} {p:g}%" for arm, p in exp.split.items())
    return (f"{exp.config} on segment {exp.audience}: {split}, by {exp.randomize_by}; "
            f"primary {exp.primary_metric}; metrics {', '.join(exp.metrics)}")


def _same_iteration(draft: dict[str, Any], want: dict[str, Any]) -> bool:
    """Whether an iteration as GET answers it (TreatmentRep, FlagRep, metric reps) is `want`."""
    def treatments(items: list[dict[str, Any]]) -> list[tuple]:
        return sorted((t.get("name"), bool(t.get("baseline")), float(t.get("allocationPercent")
                       or 0), tuple(sorted((p.get("flagKey"), p.get("variationId"))
                                           for p in t.get("parameters") or [])))
                      for t in items)

    primary = (draft.get("primarySingleMetric") or draft.get("primaryMetric") or {}).get("key")
    metrics = {m.get("key") for m in (draft.get("metrics") or [])}
    metrics |= {m.get("key") for m in (draft.get("secondaryMetrics") or [])}
    metrics.add(primary)
    rules = {k: f.get("targetingRule") for k, f in (draft.get("flags") or {}).items()}
    return (treatments(draft.get("treatments") or []) == treatments(want["treatments"])
            and primary == want["primarySingleMetricKey"]
            and metrics == {m["key"] for m in want["metrics"]}
            and rules == {k: f["ruleId"] for k, f in want["flags"].items()}
            and draft.get("randomizationUnit", RANDOMIZATION_UNIT) == want["randomizationUnit"])
