"""The agent graph on LaunchDarkly: created through the REST API (beta), idempotently."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bootstrap.launchdarkly_backend import LaunchDarklySync
from bootstrap.launchdarkly_client import LaunchDarklyClient, LaunchDarklyError
from bootstrap.manifest import load_manifest
from tests.fakes.launchdarkly import FakeLaunchDarkly

API_KEY = "api-graph-key"


@pytest.fixture
def fake() -> Iterator[FakeLaunchDarkly]:
    with FakeLaunchDarkly(api_key=API_KEY) as server:
        yield server


def sync(fake: FakeLaunchDarkly, manifest=None) -> list[str]:
    with LaunchDarklyClient(fake.base_url, API_KEY, backoff_s=0.01, sleep=lambda s: None) as c:
        return LaunchDarklySync(c, fake.project, fake.environment,
                                out=lambda line: None).sync_manifest(manifest or load_manifest())


def test_graph_is_created_with_the_default_topology_then_left_alone(fake) -> None:
    changes = sync(fake)
    assert "create agent graph support-assistant-graph" in changes
    graph = fake.graphs["support-assistant-graph"]
    assert graph["rootConfigKey"] == "supervisor-agent"
    assert {(e["sourceConfig"], e["targetConfig"], e["handoff"]["when"])
            for e in graph["edges"]} == {("supervisor-agent", "security-agent", "flagged"),
                                         ("supervisor-agent", "support-agent", "clean"),
                                         ("security-agent", "support-agent", "always")}
    posts = [r for r in fake.requests if r.method == "POST" and "agent-graphs" in r.path]
    assert len(posts) == 1
    assert not [c for c in sync(fake) if "agent graph" in c]  # second run: nothing to do


def test_changed_topology_is_patched_with_root_and_edges(fake) -> None:
    sync(fake)
    manifest = load_manifest()
    graph = manifest.graphs[0]
    moved = graph.model_copy(update={"targeting": graph.targeting.model_copy(
        update={"default": "always-security"})})
    changes = sync(fake, manifest.model_copy(update={"graphs": [moved]}))
    assert changes == ["update agent graph support-assistant-graph"]
    edges = fake.graphs["support-assistant-graph"]["edges"]
    assert {(e["sourceConfig"], e["targetConfig"]) for e in edges} == {
        ("supervisor-agent", "security-agent"), ("security-agent", "support-agent")}


def test_graph_endpoint_errors_are_reported(fake) -> None:
    fake.fail("POST", "/agent-graphs", 400)
    with pytest.raises(LaunchDarklyError, match="agent-graphs"):
        sync(fake)
