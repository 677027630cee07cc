"""GET /configs: the AI Config variations and targeting being served right now (read-only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ServiceDep
from utils.flags.agent_graph import GRAPH_CONFIG, Topology
from utils.flags.client import AGENT_CONFIG_KEYS, build_context
from utils.flags.flag_file import describe_flags

router = APIRouter(prefix="/configs", tags=["configs"])

# The four demo users of the web UI, one per segment.
DEMO_USERS: dict[str, dict[str, str]] = {
    "us-free": {"country": "US", "plan": "free"},
    "us-paid": {"country": "US", "plan": "paid"},
    "eu-free": {"country": "DE", "plan": "free"},
    "eu-paid": {"country": "FR", "plan": "paid"},
}


def graph_nodes(topology: Topology) -> list[str]:
    """The topology's AI Configs, root first, then in the order the edges reach them."""
    nodes = [topology.root]
    for edge in topology.edges:
        for node in (edge.source, edge.target):
            if node not in nodes:
                nodes.append(node)
    return nodes


@router.get("")
async def read_configs(service: ServiceDep) -> dict[str, Any]:
    """Variations and targeting of the agent configs, and what each demo user is served.

    Local mode describes the validated flag data in service, never the file as it is on disk
    right now (which may be half-written); `problems` says how the two differ.
    """
    flags = describe_flags(service.flags.served_flags(), AGENT_CONFIG_KEYS)
    served, graphs = {}, {}
    for label, attributes in DEMO_USERS.items():
        context = build_context(f"demo-{label}", attributes)
        graph = service.flags.graph(context)  # the topology this user is served
        graphs[label] = {"config": GRAPH_CONFIG, "variation": graph.variation_key,
                         "fell_back": graph.fell_back, "problem": graph.problem,
                         "in_experiment": graph.in_experiment,
                         "nodes": graph_nodes(graph.topology), **graph.topology.as_value()}
        served[label] = {}
        for key in AGENT_CONFIG_KEYS:
            config = service.flags.agent_config(key, context)
            served[label][key] = {"variation": config.variation_key, "model": config.model,
                                  "in_experiment": config.in_experiment,
                                  "source": config.source}
    return {"mode": service.flags.mode, "flags": flags, "served": served, "graphs": graphs,
            "demo_users": DEMO_USERS, "problems": service.flags.problems()}
