"""The support assistant's graph: supervisor → (security →) support, compiled once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agents.context import RequestContext
from agents.security import security_node
from agents.state import ChatState
from agents.supervisor import supervisor_node
from agents.support import support_node
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


def build_graph():
    graph = StateGraph(ChatState, context_schema=RequestContext)
    graph.add_node("supervisor", traced("supervisor", supervisor_node))
    graph.add_node("security", traced("security", security_node))
    graph.add_node("support", traced("support", support_node))
    graph.add_edge(START, "supervisor")
    graph.add_conditional_edges("supervisor", route_after_supervisor, ["security", "support"])
    graph.add_conditional_edges("security", route_after_security, ["support", END])
    graph.add_edge("support", END)
    return graph.compile(name="support-assistant")
