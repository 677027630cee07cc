"""The support agent's tools: knowledge-base search and research (MCP) tools."""
