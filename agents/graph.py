"""The support assistant's graph, compiled once per topology the Agent Graph config serves.

Whatever the topology, routing fails closed in code: only an explicit clean verdict from the
supervisor's deterministic detector can skip the security agent, and only on a topology whose
supervisor → support edge is `when: clean` (`utils.flags.agent_graph` refuses every other).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agents.context import RequestContext
from agents.security import security_node
from agents.state import ChatState
from agents.supervisor import supervisor_node
from agents.support import support_node
from utils.flags.agent_configs import SECURITY_CONFIG, SUPERVISOR_CONFIG, SUPPORT_CONFIG
from utils.flags.agent_graph import DETECTOR_ROUTED, Topology
from utils.telemetry import tracing

Node = Callable[[ChatState, Runtime[RequestContext]], Awaitable[dict]]


def route_after_supervisor(state: ChatState) -> Literal["security", "support"]:
    """Only an explicit clean verdict skips security: anything else fails closed."""
    return "support" if state.get("route") == "support" else "security"


def route_after_security(state: ChatState) -> Literal["support", "__end__"]:
    return END if state.get("refused") else "support"


def traced(agent: str, node: Node) -> Node:
    """`node` inside its `invoke_agent {agent}` span (with tracing off, just `node`'s call)."""

    async def run(state: ChatState, runtime: Runtime[RequestContext]) -> dict:
        if not tracing.active():
            return await node(state, runtime)
        with tracing.agent_span(agent):
            return await node(state, runtime)

    run.__name__ = run.__qualname__ = node.__name__
    return run


def route_to_security_always(state: ChatState) -> Literal["security"]:
    return "security"


def build_graph(topology: Topology = DETECTOR_ROUTED):
    """The compiled LangGraph for a validated topology (`utils.flags.agent_graph`)."""
    from_supervisor = topology.targets(SUPERVISOR_CONFIG)
    if from_supervisor.get(SECURITY_CONFIG) not in ("flagged", "always") or \
            topology.targets(SECURITY_CONFIG).get(SUPPORT_CONFIG) != "always":
        raise ValueError(f"not a validated topology: {topology}")  # parse_topology refuses it
    graph = StateGraph(ChatState, context_schema=RequestContext)
    graph.add_node("supervisor", traced("supervisor", supervisor_node))
    graph.add_node("security", traced("security", security_node))
    graph.add_node("support", traced("support", support_node))
    graph.add_edge(START, "supervisor")
    if from_supervisor.get(SUPPORT_CONFIG) == "clean":
        graph.add_conditional_edges("supervisor", route_after_supervisor, ["security", "support"])
    else:
        graph.add_conditional_edges("supervisor", route_to_security_always, ["security"])
    graph.add_conditional_edges("security", route_after_security, ["support", END])
    graph.add_edge("support", END)
    return graph.compile(name="support-assistant")


class GraphCache:
    """One compiled graph per distinct topology, built on first use and then shared."""

    def __init__(self) -> None:
        self._graphs: dict[Topology, Any] = {}
        self._lock = threading.Lock()

    def get(self, topology: Topology) -> Any:
        with self._lock:
            graph = self._graphs.get(topology)
            if graph is None:
                graph = self._graphs[topology] = build_graph(topology)
            return graph

    def __len__(self) -> int:
        return len(self._graphs)
