"""A small in-memory fake of the LaunchDarkly REST API v2 (the parts bootstrap uses).

Follows the shapes cited in `bootstrap.launchdarkly_backend` ("API shapes"): AI tools with a
JSON-Schema `schema`; AI configs whose variations take `modelConfigKey`, `model.modelName` and
`model.parameters`, tools by `toolKeys`; a targeting resource whose variations carry their own
`_id` and a `value._ldMeta.variationKey` (no `key`), with a built-in "disabled" variation first
and environments that say `enabled`; semantic-patch targeting that accepts only documented
instruction kinds and variation ids; segments with semantic-patch rules.

Keeps state, records every request (with its content type and LD-API-Version), checks auth, the
beta header on AI endpoints and the semantic-patch content type, rejects fields the
documentation does not list, and can be told to fail the next matching requests (`fail(...)`).

Collections page (`limit`/`offset`, `totalCount`, `_links.next`; `page_size` sets the default
so tests see several pages). Model configs (`GET .../ai-configs/model-configs`, a bare list of
`ModelConfig`) start as the global models this project uses; a variation is served with the
`provider` of the model config its `modelConfigKey` names, and without one when that key names
no model config (so a missing model config shows in what the SDK gets). Where custom
parameters are served is set by `custom_served_in`: "custom" (`model.custom`, what the AI SDKs
read), "parameters" (merged into `model.parameters`) or "dropped". Metrics and experiments are
in `tests.fakes.launchdarkly_experiments`.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.launchdarkly_experiments import (
    ApiError,
    ExperimentationFake,
    known,
    page,
    require,
)
from tests.fakes.launchdarkly_graphs import AgentGraphsFake
from tests.fakes.local_server import LocalServer, QuietHandler
from utils.providers import MODEL_PROVIDERS, PROVIDERS, model_config_key

SEMANTIC = "domain-model=launchdarkly.semanticpatch"
ALL_WEIGHT = 100_000

# Request fields the API documents (launchdarkly/api-client-python docs/*.md).
TOOL_POST_FIELDS = {"key", "maintainerId", "maintainerTeamKey", "description", "schema",
                    "customParameters"}
TOOL_PATCH_FIELDS = TOOL_POST_FIELDS - {"key"}
CONFIG_POST_FIELDS = {"key", "name", "description", "maintainerId", "maintainerTeamKey", "mode",
                      "tags", "defaultVariation"}
VARIATION_POST_FIELDS = {"key", "name", "comment", "description", "instructions", "messages",
                         "model", "modelConfigKey", "tools", "toolKeys", "judgeConfiguration"}
VARIATION_PATCH_FIELDS = (VARIATION_POST_FIELDS - {"key"}) | {"published", "state"}
TARGETING_KINDS = {"addRule", "removeRule", "updateRuleVariationOrRollout",
                   "updateFallthroughVariationOrRollout", "updateOffVariation", "reorderRules",
                   "replaceRules", "addTargets", "removeTargets", "addClauses", "removeClauses",
                   "updateClause", "updateRuleDescription", "updateTrackEvents"}


@dataclass
class Recorded:
    method: str
    path: str
    body: Any
    content_type: str
    api_version: str | None = None


@dataclass
class Failure:
    method: str
    path_contains: str
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)


def global_model_configs() -> dict[str, dict]:
    """The global model configs of this project's models (`ModelConfig` shape)."""
    return {model_config_key(provider, model): {
        "key": model_config_key(provider, model), "name": model, "id": model,
        "provider": PROVIDERS[provider].label, "global": True, "params": {}, "customParams": {},
        "tags": [], "version": 1, "isRestricted": False}
        for model, provider in MODEL_PROVIDERS.items()}


class FakeLaunchDarkly(ExperimentationFake, AgentGraphsFake, LocalServer):
    """Start with `with FakeLaunchDarkly() as fake:`; `fake.base_url` is the API root."""

    def __init__(self, api_key: str = "api-test-key", project: str = "multi-agent-chatbot",
                 environment: str = "production", *, page_size: int = 20,
                 custom_served_in: str = "custom") -> None:
        self.api_key, self.project, self.environment = api_key, project, environment
        self.page_size, self.custom_served_in = page_size, custom_served_in
        self.model_configs = global_model_configs()
        self.metrics: dict[str, dict] = {}
        self.experiments: dict[str, dict] = {}
        self.flag_versions: dict[str, int] = {}
        self._query: dict[str, str] = {}
        self._path = ""
        self.tools: dict[str, dict] = {}
        self.segments: dict[str, dict] = {}
        self.configs: dict[str, dict] = {}
        self.graphs: dict[str, dict] = {}
        self.targeting: dict[str, dict] = {}  # config key -> this environment's targeting
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self._disabled_ids: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        super().__init__(self._handler(), poll_interval_s=0.02)

    @property
    def base_url(self) -> str:
        return self.root_url

    def fail(self, method: str, path_contains: str, status: int, times: int = 1,
             headers: dict[str, str] | None = None) -> None:
        self.failures.append(Failure(method, path_contains, status, times, headers or {}))

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method != "GET"]

    def targeting_keys(self, config: str) -> list[str | None]:
        """Variation keys in targeting-index order (None for the built-in disabled one)."""
        return [None] + [v["key"] for v in self.configs[config]["variations"]]

    def _new_id(self) -> str:
        return f"id-{next(self._ids)}"

    # --- routing ---------------------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(QuietHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                ctype = self.headers.get("Content-Type", "")
                version = self.headers.get("LD-API-Version")
                with fake._lock:
                    fake.requests.append(Recorded(self.command, self.path, body, ctype, version))
                    status, payload, headers = fake._dispatch(
                        self.command, self.path, body, ctype, version,
                        self.headers.get("Authorization"))
                self.send_json(status, payload, headers)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve

        return Handler

    def _dispatch(self, method: str, path: str, body: Any, ctype: str, version: str | None,
                  auth: str | None):
        for failure in self.failures:
            if failure.times > 0 and failure.method == method and failure.path_contains in path:
                failure.times -= 1
                return failure.status, {"code": "injected", "message": "injected failure"}, \
                    failure.headers
        if auth != self.api_key:
            return 401, {"code": "unauthorized", "message": "invalid access token"}, {}
        url = urlsplit(path)
        path = url.path
        self._path = path
        self._query = dict(parse_qsl(url.query))
        p, e = re.escape(self.project), re.escape(self.environment)
        beta = [
            (f"^/api/v2/projects/{p}/ai-configs/model-configs$", self._model_configs),
            (f"^/api/v2/projects/{p}/ai-tools$", self._tools),
            (f"^/api/v2/projects/{p}/ai-tools/([^/]+)$", self._tool),
            (f"^/api/v2/projects/{p}/ai-configs$", self._configs),
            (f"^/api/v2/projects/{p}/ai-configs/([^/]+)$", self._config),
            (f"^/api/v2/projects/{p}/ai-configs/([^/]+)/variations$", self._variations),
            (f"^/api/v2/projects/{p}/ai-configs/([^/]+)/variations/([^/]+)$", self._variation),
            (f"^/api/v2/projects/{p}/ai-configs/([^/]+)/targeting$", self._targeting),
            *self.graph_routes(p),
        ]
        stable = [
            (f"^/api/v2/segments/{p}/{e}$", self._segments),
            (f"^/api/v2/segments/{p}/{e}/([^/]+)$", self._segment),
            (f"^/api/v2/metrics/{p}$", self._metrics),
            (f"^/api/v2/metrics/{p}/([^/]+)$", self._metric),
            (f"^/api/v2/projects/{p}/environments/{e}/experiments$", self._experiments_route),
            (f"^/api/v2/projects/{p}/environments/{e}/experiments/([^/]+)$", self._experiment),
            (f"^/api/v2/projects/{p}/environments/{e}/experiments/([^/]+)/iterations$",
             self._iterations),
        ]
        for pattern, handler in beta + stable:
            if not (m := re.match(pattern, path)):
                continue
            if (pattern, handler) in beta and version != "beta":
                return 400, {"code": "invalid_request",
                             "message": "LD-API-Version: beta is required"}, {}
            if method == "PATCH" and handler in (self._targeting, self._segment,
                                                 self._experiment) and SEMANTIC not in ctype:
                return 400, {"code": "invalid_request",
                             "message": "semantic patch content type required"}, {}
            try:
                status, payload = handler(method, body, *m.groups())
            except ApiError as err:
                return err.status, {"code": "invalid_request", "message": err.message}, {}
            return status, payload, {}
        return 404, {"code": "not_found", "message": f"no route {method} {path}"}, {}

    # --- AI tools --------------------------------------------------------------------------

    def _model_configs(self, method, body):
        if method == "GET":  # a bare list (AIConfigsApi.md: List[ModelConfig])
            return 200, list(self.model_configs.values())
        require(body, "key", "name", "id")
        if body["key"] in self.model_configs:
            raise ApiError(409, f"model config {body['key']} exists")
        self.model_configs[body["key"]] = {"global": False, "version": 1, "tags": [], **body}
        return 201, self.model_configs[body["key"]]

    def _tools(self, method, body):
        if method == "GET":
            return 200, page(list(self.tools.values()), self._query, path=self._path,
                             page_size=self.page_size)
        require(body, "key", "schema")
        known(body, TOOL_POST_FIELDS)
        _json_schema(body["schema"])
        if body["key"] in self.tools:
            raise ApiError(409, f"tool {body['key']} exists")
        self.tools[body["key"]] = {**body, "version": 1}
        return 201, self.tools[body["key"]]

    def _tool(self, method, body, key):
        if key not in self.tools:
            raise ApiError(404, f"unknown tool {key}")
        if method == "PATCH":
            known(body, TOOL_PATCH_FIELDS)
            if "schema" in body:
                _json_schema(body["schema"])
            tool = self.tools[key]
            tool.update(body)
            tool["version"] += 1
        return 200, self.tools[key]

    # --- AI configs and variations ---------------------------------------------------------

    def _configs(self, method, body):
        if method == "GET":
            return 200, page(list(self.configs.values()), self._query, path=self._path,
                             page_size=self.page_size)
        require(body, "key", "name")
        known(body, CONFIG_POST_FIELDS)
        if body["key"] in self.configs:
            raise ApiError(409, f"AI config {body['key']} exists")
        self.configs[body["key"]] = {**body, "variations": []}
        self._disabled_ids[body["key"]] = self._new_id()
        # a new AI config serves its built-in disabled variation (index 0) by default
        self.targeting[body["key"]] = {"enabled": True, "rules": [], "offVariation": 0,
                                       "fallthrough": {"variation": 0}, "_version": 1}
        self.flag_versions[body["key"]] = 1
        return 201, self.configs[body["key"]]

    def _config(self, method, body, key):
        if key not in self.configs:
            raise ApiError(404, f"unknown AI config {key}")
        return 200, self.configs[key]

    def _check_variation(self, body: dict, fields: set[str]) -> None:
        known(body, fields)
        if "model" in body:
            model = body["model"]
            if not isinstance(model, dict) or not model.get("modelName") \
                    or not isinstance(model.get("parameters"), dict):
                raise ApiError(400, "model requires a modelName and parameters")
        for tool in body.get("toolKeys", []):
            if tool not in self.tools:
                raise ApiError(400, f"unknown tool {tool}")

    def _stored_variation(self, body: dict) -> dict:
        stored = {k: v for k, v in body.items() if k != "toolKeys"}
        if "toolKeys" in body:  # served back as VariationTool objects
            stored["tools"] = [{"key": k, "version": self.tools[k]["version"]}
                               for k in body["toolKeys"]]
        return stored

    def _variations(self, method, body, key):
        config = self._config("GET", None, key)[1]
        if method == "GET":
            return 200, {"items": config["variations"]}
        require(body, "key", "name", "model", "modelConfigKey")
        self._check_variation(body, VARIATION_POST_FIELDS)
        if any(v["key"] == body["key"] for v in config["variations"]):
            raise ApiError(409, f"variation {body['key']} exists")
        config["variations"].append({"_id": self._new_id(), "version": 1,
                                     **self._stored_variation(body)})
        return 201, config["variations"][-1]

    def _variation(self, method, body, key, variation_key):
        config = self._config("GET", None, key)[1]
        for v in config["variations"]:
            if v["key"] == variation_key:
                if method == "PATCH":
                    self._check_variation(body, VARIATION_PATCH_FIELDS)
                    if body.get("state") == "archived":
                        self._check_not_served(key, v)
                    v.update(self._stored_variation(body))
                    v["version"] += 1
                    return 200, v
                return 200, {"items": [v]}  # GET answers every version, newest first
        raise ApiError(404, f"unknown variation {variation_key}")

    def _check_not_served(self, key: str, variation: dict) -> None:
        """Refuse to archive a variation that a rule, the default or the off variation serves."""
        env = self.targeting[key]
        index = 1 + self.configs[key]["variations"].index(variation)
        targets = [*env["rules"], env["fallthrough"]]
        served = {t["variation"] for t in targets if "variation" in t}
        served |= {w["variation"] for t in targets for w in (t.get("rollout") or {}).get(
            "variations", []) if w.get("weight")}
        if index in served or env.get("offVariation") == index:
            raise ApiError(400, f"variation {variation['key']} is still served by the targeting "
                                f"of {key}; serve another variation before archiving it")

    # --- targeting -------------------------------------------------------------------------

    def served_value(self, v: dict) -> dict:
        """What the SDK is served for a config variation (the AI SDK reads `model.name`,
        `model.parameters`, `model.custom`, `provider.name`, `instructions`, `tools`)."""
        model = v.get("model") or {}
        parameters = dict(model.get("parameters") or {})
        served_model: dict[str, Any] = {"name": model.get("modelName"), "parameters": parameters}
        custom = model.get("custom") or {}
        if self.custom_served_in == "custom":
            served_model["custom"] = custom
        elif self.custom_served_in == "parameters":
            parameters.update(custom)
        value: dict[str, Any] = {
            "_ldMeta": {"enabled": v.get("state") != "archived", "variationKey": v["key"],
                        "version": v["version"], "mode": "agent"},
            "model": served_model, "instructions": v.get("instructions", ""),
            "tools": {t["key"]: {"name": t["key"], "type": "function",
                                 "description": self.tools[t["key"]].get("description"),
                                 "parameters": self.tools[t["key"]]["schema"]}
                      for t in v.get("tools", [])}}
        model_config = self.model_configs.get(v.get("modelConfigKey"))
        if model_config is not None and model_config.get("provider"):
            value["provider"] = {"name": model_config["provider"]}
        return value

    def sdk_flag_data(self) -> dict[str, Any]:
        """The project as the SDK's stream delivers it (`{"flags", "segments"}` flag JSON), so
        an app can be served exactly what this fake holds."""
        flags = {}
        for key, env in self.targeting.items():
            rules = []
            for rule in env["rules"]:
                served: dict[str, Any] = {"variation": rule["variation"]} if "variation" in rule \
                    else {"rollout": {**{k: v for k, v in rule["rollout"].items()
                                         if k != "experimentAllocation"},
                                      "kind": "experiment" if "experimentAllocation" in
                                      rule["rollout"] else "rollout", "seed": 1}}
                rules.append({"id": rule["_id"], "clauses": rule["clauses"],
                              "trackEvents": "rollout" in rule, **served})
            flags[key] = {"key": key, "on": env["enabled"], "version": self.flag_versions[key],
                          "salt": key, "variations": [v["value"] for v in
                                                      self._targeting_variations(key)],
                          "offVariation": env["offVariation"], "fallthrough": env["fallthrough"],
                          "rules": rules, "targets": [], "contextTargets": [],
                          "prerequisites": [], "trackEvents": False,
                          "trackEventsFallthrough": False, "deleted": False}
        segments = {key: {"key": key, "version": seg["version"], "salt": key, "included": [],
                          "excluded": [], "includedContexts": [], "excludedContexts": [],
                          "rules": [{"id": r["_id"], "clauses": r["clauses"]}
                                    for r in seg["rules"]], "deleted": False}
                    for key, seg in self.segments.items()}
        return {"flags": flags, "segments": segments}

    def _targeting_variations(self, key: str) -> list[dict]:
        """Targeting variations: their own `_id` (not the config variation's) and the served
        value, whose `_ldMeta.variationKey` is the only place the key appears."""
        disabled = {"_id": self._disabled_ids[key], "name": "disabled", "description": "",
                    "value": {"_ldMeta": {"enabled": False}}}
        served = [{"_id": f"tv-{v['_id']}", "name": v["name"], "description": "",
                   "value": self.served_value(v)}
                  for v in self.configs[key]["variations"]]
        return [disabled, *served]

    def _targeting(self, method, body, key):
        self._config("GET", None, key)
        env = self.targeting[key]
        variations = self._targeting_variations(key)
        if method == "PATCH":
            require(body, "environmentKey", "instructions")
            if body["environmentKey"] != self.environment:
                raise ApiError(404, f"unknown environment {body['environmentKey']}")
            index = {v["_id"]: i for i, v in enumerate(variations)}
            running = self.running_rule_ids(key)
            for ins in body["instructions"]:
                if ins.get("ruleId") in running or (
                        "fallthrough" in running and "Fallthrough" in str(ins.get("kind"))):
                    raise ApiError(400, f"{ins.get('kind')}: the rule is part of a running "
                                        "experiment; stop its iteration first")
                self._apply_targeting(env, ins, index)
            env["_version"] += 1
            self.flag_versions[key] += 1
        return 200, {"key": key, "name": self.configs[key]["name"], "variations": variations,
                     "version": self.flag_versions[key], "environments": {self.environment: env}}

    def _apply_targeting(self, env: dict, ins: dict, index: dict[str, int]) -> None:
        kind = ins.get("kind")
        if kind not in TARGETING_KINDS:
            raise ApiError(400, f"unknown instruction kind {kind!r}")

        def idx(vid: Any) -> int:
            if vid not in index:
                raise ApiError(400, f"unknown variation id {vid!r}")
            return index[vid]

        def serve(ins: dict) -> dict:
            if ("variationId" in ins) == ("rolloutWeights" in ins):
                raise ApiError(400, f"{kind}: give exactly one of variationId, rolloutWeights")
            if "variationId" in ins:
                return {"variation": idx(ins["variationId"])}
            weights = [{"variation": idx(v), "weight": w}
                       for v, w in ins["rolloutWeights"].items()]
            if sum(w["weight"] for w in weights) != ALL_WEIGHT:
                raise ApiError(400, "rollout weights must sum to 100000")
            return {"rollout": {"variations": weights, "contextKind": "user"}}

        if kind == "addRule":
            require(ins, "clauses")
            env["rules"].append({"_id": self._new_id(), "clauses": ins["clauses"],
                                 "trackEvents": False, **serve(ins)})
        elif kind == "removeRule":
            env["rules"] = [r for r in env["rules"] if r["_id"] != ins["ruleId"]]
        elif kind == "updateRuleVariationOrRollout":
            rule = next((r for r in env["rules"] if r["_id"] == ins.get("ruleId")), None)
            if rule is None:
                raise ApiError(400, f"unknown rule id {ins.get('ruleId')!r}")
            rule.pop("rollout", None)
            rule.pop("variation", None)
            rule.update(serve(ins))
        elif kind == "updateFallthroughVariationOrRollout":
            env["fallthrough"] = serve(ins)
        else:
            raise ApiError(400, f"{kind} is documented but not supported by this fake")

    # --- segments --------------------------------------------------------------------------

    def _segments(self, method, body):
        if method == "GET":
            return 200, {"items": list(self.segments.values())}
        require(body, "key", "name")
        if body["key"] in self.segments:
            raise ApiError(409, f"segment {body['key']} exists")
        self.segments[body["key"]] = {**body, "rules": [], "version": 1}
        return 201, self.segments[body["key"]]

    def _segment(self, method, body, key):
        if key not in self.segments:
            raise ApiError(404, f"unknown segment {key}")
        segment = self.segments[key]
        if method == "PATCH":
            require(body, "environmentKey", "instructions")
            for ins in body["instructions"]:
                if ins["kind"] == "addRule":
                    segment["rules"].append({"_id": self._new_id(), "clauses": ins["clauses"]})
                elif ins["kind"] == "removeRule":
                    segment["rules"] = [r for r in segment["rules"] if r["_id"] != ins["ruleId"]]
                else:
                    raise ApiError(400, f"unknown instruction kind {ins['kind']!r}")
            segment["version"] += 1
        return 200, segment


def _json_schema(schema: Any) -> None:
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise ApiError(400, "schema must be the JSON Schema of the tool's parameters "
                             "(type: object)")
