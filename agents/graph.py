"""The support assistant's graph: supervisor → (security →) support, compiled once."""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph

from agents.context import RequestContext
from agents.security import security_node
from agents.state import ChatState
from agents.supervisor import supervisor_node
from agents.support import support_node


def route_after_supervisor(state: ChatState) -> Literal["security", "support"]:
    """Only an explicit clean verdict skips security: anything else fails closed."""
    return "support" if state.get("route") == "support" else "security"


def route_after_security(state: ChatState) -> Literal["support", "__end__"]:
    return END if state.get("refused") else "support"


def build_graph():
    graph = StateGraph(ChatState, context_schema=RequestContext)
    graph.add_node("supervisor", supervisor_node)
    graph.add_node("security", security_node)
    graph.add_node("support", support_node)
    graph.add_edge(START, "supervisor")
    graph.add_conditional_edges("supervisor", route_after_supervisor, ["security", "support"])
    graph.add_conditional_edges("security", route_after_security, ["support", END])
    graph.add_edge("support", END)
    return graph.compile(name="support-assistant")
