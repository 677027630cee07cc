"""Agent tools: knowledge-base search (search_v1, search_v2, reranking) and MCP research tools."""

from agents.tools.registry import KNOWN_TOOLS, build_tools, tool_status, warm_up

__all__ = ["KNOWN_TOOLS", "build_tools", "tool_status", "warm_up"]
