"""Agent graphs on the LaunchDarkly REST fake (`/api/v2/projects/{p}/agent-graphs`, beta):
one root AI Config and one edge set per graph, whose configs must exist."""

from __future__ import annotations

from typing import Any

from tests.fakes.launchdarkly_experiments import ApiError, known, page, require

GRAPH_POST_FIELDS = {"key", "name", "description", "rootConfigKey", "edges", "maintainerId",
                     "maintainerTeamKey"}
GRAPH_PATCH_FIELDS = GRAPH_POST_FIELDS - {"key"}
EDGE_FIELDS = {"key", "sourceConfig", "targetConfig", "handoff"}


class AgentGraphsFake:
    """Mixed into FakeLaunchDarkly, which provides `configs` and `ApiError`-raising helpers."""

    graphs: dict[str, dict]
    configs: dict[str, dict]

    def graph_routes(self, p: str) -> list[tuple[str, Any]]:
        return [(f"^/api/v2/projects/{p}/agent-graphs$", self._graphs),
                (f"^/api/v2/projects/{p}/agent-graphs/([^/]+)$", self._graph)]

    def _check_topology(self, body: dict) -> None:
        if ("rootConfigKey" in body) != ("edges" in body):
            raise ApiError(400, "rootConfigKey and edges must be given together")
        root = body.get("rootConfigKey")
        if root is not None and root not in self.configs:
            raise ApiError(400, f"rootConfigKey {root!r} is not an AI config")
        for edge in body.get("edges") or []:
            if not isinstance(edge, dict) or set(edge) - EDGE_FIELDS or \
                    not {"key", "sourceConfig", "targetConfig"} <= set(edge):
                raise ApiError(400, f"invalid edge {edge!r}")
            for end in (edge["sourceConfig"], edge["targetConfig"]):
                if end not in self.configs:
                    raise ApiError(400, f"edge {edge['key']}: {end!r} is not an AI config")
            if not isinstance(edge.get("handoff", {}), dict):
                raise ApiError(400, f"edge {edge['key']}: handoff must be an object")

    def _graphs(self, method, body):
        if method == "GET":
            return 200, page(list(self.graphs.values()), self._query, path=self._path,
                             page_size=self.page_size)
        require(body, "key", "name")
        known(body, GRAPH_POST_FIELDS)
        if body["key"] in self.graphs:
            raise ApiError(409, f"agent graph {body['key']} exists")
        self._check_topology(body)
        self.graphs[body["key"]] = {**body, "createdAt": 1, "updatedAt": 1}
        return 201, self.graphs[body["key"]]

    def _graph(self, method, body, key):
        if key not in self.graphs:
            raise ApiError(404, f"unknown agent graph {key}")
        if method == "PATCH":
            known(body, GRAPH_PATCH_FIELDS)
            self._check_topology(body)
            graph = self.graphs[key]
            graph.update(body)
            graph["updatedAt"] += 1
        elif method == "DELETE":
            del self.graphs[key]
            return 204, None
        return 200, self.graphs[key]
