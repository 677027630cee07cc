"""A small in-memory fake of the LaunchDarkly REST API v2 (the parts bootstrap uses).

Keeps state (ai-tools, ai-configs with variations and targeting, segments), records every
request, checks auth and the semantic-patch content type, and can be told to fail the next
matching requests (`fail(...)`) to test retries and error reporting.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SEMANTIC = "domain-model=launchdarkly.semanticpatch"


@dataclass
class Recorded:
    method: str
    path: str
    body: Any
    content_type: str


@dataclass
class Failure:
    method: str
    path_contains: str
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)


class FakeLaunchDarkly:
    """Start with `with FakeLaunchDarkly() as fake:`; `fake.base_url` is the API root."""

    def __init__(self, api_key: str = "api-test-key", project: str = "multi-agent-chatbot",
                 environment: str = "production") -> None:
        self.api_key, self.project, self.environment = api_key, project, environment
        self.tools: dict[str, dict] = {}
        self.segments: dict[str, dict] = {}
        self.configs: dict[str, dict] = {}
        self.targeting: dict[str, dict] = {}
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeLaunchDarkly:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(self, method: str, path_contains: str, status: int, times: int = 1,
             headers: dict[str, str] | None = None) -> None:
        self.failures.append(Failure(method, path_contains, status, times, headers or {}))

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method != "GET"]

    def _new_id(self) -> str:
        return f"id-{next(self._ids)}"

    # --- routing ---------------------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                ctype = self.headers.get("Content-Type", "")
                with fake._lock:
                    fake.requests.append(Recorded(self.command, self.path, body, ctype))
                    status, payload, headers = fake._dispatch(
                        self.command, self.path, body, ctype, self.headers.get("Authorization"))
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve

        return Handler

    def _dispatch(self, method: str, path: str, body: Any, ctype: str, auth: str | None):
        for failure in self.failures:
            if failure.times > 0 and failure.method == method and failure.path_contains in path:
                failure.times -= 1
                return failure.status, {"code": "injected", "message": "injected failure"}, \
                    failure.headers
        if auth != self.api_key:
            return 401, {"code": "unauthorized", "message": "invalid access token"}, {}
        p, e = re.escape(self.project), re.escape(self.environment)
        routes = [
            (f"^/api/v2/projects/{p}/ai-tools$", self._tools),
            (f"^/api/v2/projects/{p}/ai-tools/([^/]+)$", self._tool),
            (f"^/api/v2/projects/{p}/ai-configs$", self._configs),
            (f"^/api/v2/projects/{p}/ai-configs/([^/]+)$", self._config),
            (f"^/api/v2/projects/{p}/ai-configs/([^/]+)/variations$", self._variations),
            (f"^/api/v2/projects/{p}/ai-configs/([^/]+)/variations/([^/]+)$", self._variation),
            (f"^/api/v2/projects/{p}/ai-configs/([^/]+)/targeting$", self._targeting),
            (f"^/api/v2/segments/{p}/{e}$", self._segments),
            (f"^/api/v2/segments/{p}/{e}/([^/]+)$", self._segment),
        ]
        for pattern, handler in routes:
            if m := re.match(pattern, path):
                if method == "PATCH" and handler in (self._targeting, self._segment) \
                        and SEMANTIC not in ctype:
                    return 400, {"code": "invalid_request",
                                 "message": "semantic patch content type required"}, {}
                try:
                    status, payload = handler(method, body, *m.groups())
                except _ApiError as err:
                    return err.status, {"code": "invalid_request", "message": err.message}, {}
                return status, payload, {}
        return 404, {"code": "not_found", "message": f"no route {method} {path}"}, {}

    # --- resources -------------------------------------------------------------------------

    def _tools(self, method, body):
        if method == "GET":
            return 200, {"items": list(self.tools.values())}
        _require(body, "key", "description", "schema")
        if body["key"] in self.tools:
            raise _ApiError(409, f"tool {body['key']} exists")
        self.tools[body["key"]] = {**body, "version": 1}
        return 201, self.tools[body["key"]]

    def _tool(self, method, body, key):
        if key not in self.tools:
            raise _ApiError(404, f"unknown tool {key}")
        if method == "PATCH":
            tool = self.tools[key]
            tool.update(body)
            tool["version"] += 1
        return 200, self.tools[key]

    def _configs(self, method, body):
        if method == "GET":
            return 200, {"items": list(self.configs.values())}
        _require(body, "key", "name")
        if body["key"] in self.configs:
            raise _ApiError(409, f"AI config {body['key']} exists")
        disabled = {"_id": self._new_id(), "key": "disabled", "name": "disabled",
                    "model": {}, "tools": []}
        self.configs[body["key"]] = {**body, "variations": [disabled]}
        self.targeting[body["key"]] = {"on": False, "rules": [], "fallthrough": {"variation": 0}}
        return 201, self.configs[body["key"]]

    def _config(self, method, body, key):
        if key not in self.configs:
            raise _ApiError(404, f"unknown AI config {key}")
        return 200, self.configs[key]

    @staticmethod
    def _stored_variation(body: dict) -> dict:
        stored = {k: v for k, v in body.items() if k != "toolKeys"}
        stored["tools"] = [{"key": k, "version": 1} for k in body.get("toolKeys", [])]
        return stored

    def _variations(self, method, body, key):
        config = self._config("GET", None, key)[1]
        _require(body, "key", "name", "model", "modelConfigKey")
        if not body["model"].get("modelName"):
            raise _ApiError(400, "model.modelName is required")
        if any(v["key"] == body["key"] for v in config["variations"]):
            raise _ApiError(409, f"variation {body['key']} exists")
        for tool in body.get("toolKeys", []):
            if tool not in self.tools:
                raise _ApiError(400, f"unknown tool {tool}")
        config["variations"].append({"_id": self._new_id(), "version": 1,
                                     **self._stored_variation(body)})
        return 201, config["variations"][-1]

    def _variation(self, method, body, key, variation_key):
        config = self._config("GET", None, key)[1]
        for v in config["variations"]:
            if v["key"] == variation_key:
                if method == "PATCH":
                    v.update(self._stored_variation({**body, "key": variation_key}))
                    v["version"] += 1
                return 200, v
        raise _ApiError(404, f"unknown variation {variation_key}")

    def _targeting(self, method, body, key):
        config = self._config("GET", None, key)[1]
        env = self.targeting[key]
        variations = config["variations"]
        if method == "PATCH":
            _require(body, "environmentKey", "instructions")
            index = {v["_id"]: i for i, v in enumerate(variations)}

            def idx(vid):
                if vid not in index:
                    raise _ApiError(400, f"unknown variation id {vid}")
                return index[vid]
            for ins in body["instructions"]:
                kind = ins.get("kind")
                if kind == "addRule":
                    rollout = [{"variation": idx(v), "weight": w}
                               for v, w in ins["rolloutWeights"].items()]
                    if sum(w["weight"] for w in rollout) != 100000:
                        raise _ApiError(400, "rollout weights must sum to 100000")
                    env["rules"].append({"_id": self._new_id(), "clauses": ins["clauses"],
                                         "rollout": {"variations": rollout},
                                         "description": ins.get("description", "")})
                elif kind == "removeRule":
                    env["rules"] = [r for r in env["rules"] if r["_id"] != ins["ruleId"]]
                elif kind == "updateRuleVariationOrRollout":
                    rule = next(r for r in env["rules"] if r["_id"] == ins["ruleId"])
                    rule.pop("rollout", None)
                    rule["variation"] = idx(ins["variationId"])
                elif kind == "updateFallthroughVariationOrRollout":
                    env["fallthrough"] = {"variation": idx(ins["variationId"])}
                elif kind == "turnFlagOn":
                    env["on"] = True
                else:
                    raise _ApiError(400, f"unknown instruction kind {kind!r}")
        return 200, {"key": key,
                     "variations": [{"_id": v["_id"], "key": v["key"], "name": v["name"]}
                                    for v in variations],
                     "environments": {self.environment: env}}

    def _segments(self, method, body):
        if method == "GET":
            return 200, {"items": list(self.segments.values())}
        _require(body, "key", "name")
        if body["key"] in self.segments:
            raise _ApiError(409, f"segment {body['key']} exists")
        self.segments[body["key"]] = {**body, "rules": [], "version": 1}
        return 201, self.segments[body["key"]]

    def _segment(self, method, body, key):
        if key not in self.segments:
            raise _ApiError(404, f"unknown segment {key}")
        segment = self.segments[key]
        if method == "PATCH":
            for ins in body["instructions"]:
                if ins["kind"] == "addRule":
                    segment["rules"].append({"_id": self._new_id(), "clauses": ins["clauses"]})
                elif ins["kind"] == "removeRule":
                    segment["rules"] = [r for r in segment["rules"] if r["_id"] != ins["ruleId"]]
                else:
                    raise _ApiError(400, f"unknown instruction kind {ins['kind']!r}")
            segment["version"] += 1
        return 200, segment


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


def _require(body: Any, *fields: str) -> None:
    if not isinstance(body, dict):
        raise _ApiError(400, "request body must be a JSON object")
    missing = [f for f in fields if f not in body]
    if missing:
        raise _ApiError(400, f"missing required fields: {missing}")
