"""The experimentation half of the LaunchDarkly REST fake: metrics, experiments, iterations.

Validates bodies as launchdarkly/api-client-python documents them: ``MetricPost`` (kind
custom needs eventKey and isNumeric; numeric needs successCriteria and unit; enums;
percentileValue an integer 0-100 exactly when analysisType is percentile), metric JSON patch,
``ExperimentPost`` / ``IterationInput`` / ``TreatmentInput`` / ``FlagInput`` / ``MetricInput``
(metrics must exist, one baseline, allocations summing to 100, variation ids of the flag's
targeting, the rule id of one of its rules, the current flag version), and the experiment
semantic patch (``startIteration`` needs a draft and the flag on, and turns the rule into an
experiment rollout; ``stopIteration`` needs a running iteration and one of its treatment ids).
While an iteration runs, targeting instructions on its rule are refused, as LaunchDarkly does.
"""

from __future__ import annotations

from typing import Any

METRIC_POST_FIELDS = {"key", "name", "description", "kind", "selector", "urls", "isNumeric",
                      "unit", "eventKey", "successCriteria", "tags", "randomizationUnits",
                      "maintainerId", "unitAggregationType", "analysisType", "percentileValue",
                      "eventDefault", "dataSource", "filters"}
EXPERIMENT_POST_FIELDS = {"name", "description", "maintainerId", "key", "iteration",
                          "holdoutId", "tags"}
ITERATION_FIELDS = {"hypothesis", "canReshuffleTraffic", "metrics", "primarySingleMetricKey",
                    "primaryFunnelKey", "treatments", "flags", "randomizationUnit", "attributes"}
TREATMENT_FIELDS = {"name", "baseline", "allocationPercent", "parameters"}
EXPERIMENT_KINDS = {"updateName", "updateDescription", "startIteration", "stopIteration",
                    "archiveExperiment", "restoreExperiment"}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


def require(body: Any, *fields: str) -> None:
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    missing = [f for f in fields if f not in body]
    if missing:
        raise ApiError(400, f"missing required fields: {missing}")


def known(body: dict, allowed: set[str], what: str = "") -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"unknown fields{' in ' + what if what else ''}: {unknown}")


def check_metric(m: dict) -> None:
    if m.get("kind") not in ("pageview", "click", "custom"):
        raise ApiError(400, f"kind must be one of pageview, click, custom, got {m.get('kind')!r}")
    if m["kind"] == "custom":
        if not m.get("eventKey") or not isinstance(m.get("isNumeric"), bool):
            raise ApiError(400, "custom metrics require eventKey and isNumeric")
        if m["isNumeric"] and (not m.get("successCriteria") or not m.get("unit")):
            raise ApiError(400, "numeric custom metrics require successCriteria and unit")
    if m.get("successCriteria") not in (None, "HigherThanBaseline", "LowerThanBaseline"):
        raise ApiError(400, f"invalid successCriteria {m['successCriteria']!r}")
    if m.get("unitAggregationType") not in (None, "average", "sum"):
        raise ApiError(400, f"invalid unitAggregationType {m['unitAggregationType']!r}")
    if m.get("analysisType") not in (None, "mean", "percentile"):
        raise ApiError(400, f"invalid analysisType {m['analysisType']!r}")
    percentile = m.get("percentileValue")
    if (m.get("analysisType") == "percentile") != (percentile is not None):
        raise ApiError(400, "percentileValue is required exactly when analysisType is percentile")
    if percentile is not None and (not isinstance(percentile, int) or not 0 < percentile < 100):
        raise ApiError(400, f"percentileValue must be an integer between 0 and 100, got "
                            f"{percentile!r}")
    if m.get("analysisType") == "percentile" and not (m.get("eventDefault") or {}).get(
            "disabled"):
        raise ApiError(400, "percentile metrics cannot include units without events")


def page(items: list[dict], query: dict[str, str], max_limit: int | None = None,
         path: str = "", page_size: int = 20) -> dict[str, Any]:
    """One page of a collection: `limit`/`offset` (at most `page_size` items, as a server caps
    its pages), `totalCount`, `_links.next`."""
    limit = int(query.get("limit", page_size))
    offset = int(query.get("offset", 0))
    if max_limit is not None and limit > max_limit:
        raise ApiError(400, f"limit must be at most {max_limit}")
    limit = min(limit, page_size)
    answer: dict[str, Any] = {"items": items[offset:offset + limit], "totalCount": len(items),
                              "_links": {"self": {"href": f"{path}?limit={limit}&offset="
                                                          f"{offset}"}}}
    if offset + limit < len(items):
        answer["_links"]["next"] = {"href": f"{path}?limit={limit}&offset={offset + limit}"}
    return answer


class ExperimentationFake:
    """Mixed into the fake: state for metrics and experiments, and their handlers."""

    metrics: dict[str, dict]
    experiments: dict[str, dict]
    environment: str
    _query: dict[str, str]  # the query of the request being served
    _path: str  # its path without the query
    page_size: int

    def _metrics(self, method, body):
        if method == "GET":
            return 200, page(list(self.metrics.values()), self._query, max_limit=50, path=self._path,
                             page_size=self.page_size)
        require(body, "key", "kind")
        known(body, METRIC_POST_FIELDS)
        check_metric(body)
        if body["key"] in self.metrics:
            raise ApiError(409, f"metric {body['key']} exists")
        self.metrics[body["key"]] = {**body, "_id": self._new_id(), "_version": 1}
        return 201, self.metrics[body["key"]]

    def _metric(self, method, body, key):
        if key not in self.metrics:
            raise ApiError(404, f"unknown metric {key}")
        metric = self.metrics[key]
        if method == "PATCH":  # a JSON patch
            if not isinstance(body, list):
                raise ApiError(400, "metric updates are a JSON patch (a list of operations)")
            updated = dict(metric)
            for op in body:
                field = str(op.get("path", "")).lstrip("/")
                if op.get("op") != "replace" or field not in METRIC_POST_FIELDS - {"key"}:
                    raise ApiError(400, f"unsupported patch operation {op}")
                updated[field] = op.get("value")
            check_metric({k: v for k, v in updated.items() if v is not None})
            metric.clear()
            metric.update({k: v for k, v in updated.items() if v is not None})
            metric["_version"] += 1
        return 200, metric

    # --- experiments ------------------------------------------------------------------------

    def _iteration(self, it: Any) -> dict:
        require(it, "hypothesis", "metrics", "treatments", "flags")
        known(it, ITERATION_FIELDS, "iteration")
        keys = [m.get("key") for m in it["metrics"]]
        if not keys or any(k not in self.metrics for k in keys):
            raise ApiError(400, f"unknown metrics {[k for k in keys if k not in self.metrics]}"
                           if keys else "an iteration needs metrics")
        primary = it.get("primarySingleMetricKey") or it.get("primaryFunnelKey")
        if primary is None or primary not in keys:
            raise ApiError(400, "primarySingleMetricKey must name one of the iteration's metrics")
        if it.get("randomizationUnit", "user") != "user":
            raise ApiError(400, f"unknown randomization unit {it['randomizationUnit']!r}")
        flags = it["flags"]
        if not isinstance(flags, dict) or len(flags) != 1:
            raise ApiError(400, "flags must map exactly one flag key to its rule")
        ((flag_key, flag),) = flags.items()
        require(flag, "ruleId", "flagConfigVersion")
        if flag_key not in self.configs:
            raise ApiError(400, f"unknown flag {flag_key}")
        env = self.targeting[flag_key]
        if flag["ruleId"] != "fallthrough" and not any(
                r["_id"] == flag["ruleId"] for r in env["rules"]):
            raise ApiError(400, f"unknown rule id {flag['ruleId']!r} of flag {flag_key}")
        if flag["flagConfigVersion"] != self.flag_versions[flag_key]:
            raise ApiError(400, f"flagConfigVersion {flag['flagConfigVersion']} is not the "
                                f"current version {self.flag_versions[flag_key]}")
        variation_ids = {v["_id"] for v in self._targeting_variations(flag_key)}
        treatments = []
        for t in it["treatments"]:
            require(t, "name", "baseline", "allocationPercent", "parameters")
            known(t, TREATMENT_FIELDS, "treatment")
            if not isinstance(t["allocationPercent"], str):
                raise ApiError(400, "allocationPercent is a string")
            for p in t["parameters"]:
                if p.get("flagKey") != flag_key or p.get("variationId") not in variation_ids:
                    raise ApiError(400, f"treatment {t['name']}: unknown flag variation {p}")
            treatments.append({**t, "_id": self._new_id()})
        if sum(bool(t["baseline"]) for t in treatments) != 1:
            raise ApiError(400, "exactly one treatment must be the baseline")
        if abs(sum(float(t["allocationPercent"]) for t in treatments) - 100) > 1e-9:
            raise ApiError(400, "treatment allocations must sum to 100")
        return {"_id": self._new_id(), "hypothesis": it["hypothesis"], "status": "not_started",
                "canReshuffleTraffic": it.get("canReshuffleTraffic", True),
                "primarySingleMetric": {"key": primary},
                "metrics": [{"key": k} for k in keys], "treatments": treatments,
                "flags": {flag_key: {"targetingRule": flag["ruleId"],
                                     "flagConfigVersion": flag["flagConfigVersion"]}},
                "randomizationUnit": it.get("randomizationUnit", "user")}

    def _experiments_route(self, method, body):
        if method == "GET":
            return 200, page([self._experiment_rep(e, {}) for e in self.experiments.values()],
                             self._query, path=self._path, page_size=self.page_size)
        require(body, "key", "name", "iteration")
        known(body, EXPERIMENT_POST_FIELDS)
        if body["key"] in self.experiments:
            raise ApiError(409, f"experiment {body['key']} exists")
        self.experiments[body["key"]] = {
            "_id": self._new_id(), "key": body["key"], "name": body["name"],
            "description": body.get("description", ""), "environmentKey": self.environment,
            "draftIteration": self._iteration(body["iteration"]), "currentIteration": None,
            "previousIterations": []}
        return 201, self._experiment_rep(self.experiments[body["key"]], {})

    def _experiment_rep(self, exp: dict, query: dict[str, str]) -> dict:
        """GET's answer: draft iteration and treatments only when `expand` asks for them."""
        expand = set(query.get("expand", "").split(","))

        def iteration(it: dict | None) -> dict | None:
            if it is None:
                return None
            return it if "treatments" in expand else {k: v for k, v in it.items()
                                                       if k != "treatments"}

        rep = {k: v for k, v in exp.items() if k not in ("draftIteration", "previousIterations")}
        rep["currentIteration"] = iteration(exp["currentIteration"])
        if "draftIteration" in expand and exp["draftIteration"] is not None:
            rep["draftIteration"] = iteration(exp["draftIteration"])
        return rep

    def _experiment(self, method, body, key):
        if key not in self.experiments:
            raise ApiError(404, f"unknown experiment {key}")
        exp = self.experiments[key]
        if method == "PATCH":
            require(body, "instructions")
            for ins in body["instructions"]:
                self._experiment_instruction(exp, ins)
        return 200, self._experiment_rep(exp, self._query)

    def _iterations(self, method, body, key):
        if key not in self.experiments:
            raise ApiError(404, f"unknown experiment {key}")
        self.experiments[key]["draftIteration"] = self._iteration(body)
        return 201, self.experiments[key]["draftIteration"]

    def _experiment_instruction(self, exp: dict, ins: dict) -> None:
        kind = ins.get("kind")
        if kind not in EXPERIMENT_KINDS:
            raise ApiError(400, f"unknown instruction kind {kind!r}")
        current = exp["currentIteration"]
        if kind == "startIteration":
            draft = exp["draftIteration"]
            if draft is None:
                raise ApiError(400, "no draft iteration to start: create an iteration first")
            if current and current["status"] == "running" and not ins.get("changeJustification"):
                raise ApiError(400, "changeJustification is required to restart a running "
                                    "experiment")
            ((flag_key, flag),) = draft["flags"].items()
            if not self.targeting[flag_key]["enabled"]:
                raise ApiError(400, f"flag {flag_key} must be on to start an iteration")
            if current is not None:
                exp["previousIterations"].append(current)
            exp["currentIteration"] = {**draft, "status": "running"}
            exp["draftIteration"] = None
            self._start_rollout(flag_key, flag["targetingRule"], draft)
        elif kind == "stopIteration":
            if not current or current["status"] != "running":
                raise ApiError(400, "no running iteration to stop")
            ids = {t["_id"] for t in current["treatments"]}
            if ins.get("winningTreatmentId") not in ids:
                raise ApiError(400, f"unknown winningTreatmentId {ins.get('winningTreatmentId')!r}")
            current.update(status="stopped", winningTreatmentId=ins["winningTreatmentId"],
                           winningReason=ins.get("winningReason", ""))
            ((flag_key, flag),) = current["flags"].items()
            rule = self._rule(flag_key, flag["targetingRule"])
            rule.get("rollout", {}).pop("experimentAllocation", None)
        else:
            raise ApiError(400, f"{kind} is documented but not supported by this fake")

    def _rule(self, flag_key: str, rule_id: str) -> dict:
        env = self.targeting[flag_key]
        return env["fallthrough"] if rule_id == "fallthrough" else next(
            r for r in env["rules"] if r["_id"] == rule_id)

    def _start_rollout(self, flag_key: str, rule_id: str, iteration: dict) -> None:
        """LaunchDarkly serves the treatments' allocation on the experiment's rule."""
        index = {v["_id"]: i for i, v in enumerate(self._targeting_variations(flag_key))}
        weights = [{"variation": index[t["parameters"][0]["variationId"]],
                    "weight": round(float(t["allocationPercent"]) * 1000)}
                   for t in iteration["treatments"]]
        baseline = next(index[t["parameters"][0]["variationId"]]
                        for t in iteration["treatments"] if t["baseline"])
        rule = self._rule(flag_key, rule_id)
        rule.pop("variation", None)
        rule["rollout"] = {"variations": weights, "contextKind": "user",
                           "experimentAllocation": {"type": "experiment",
                                                    "defaultVariation": baseline,
                                                    "canReshuffle": False}}

    def running_rule_ids(self, flag_key: str) -> set[str]:
        """Rule ids of `flag_key` that a running iteration uses."""
        return {f["targetingRule"] for e in self.experiments.values()
                if (it := e["currentIteration"]) and it["status"] == "running"
                for k, f in it["flags"].items() if k == flag_key}
