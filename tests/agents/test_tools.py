"""Agent tools: the registry, the search tools' (content, artifact) contract, MCP research tools."""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import ToolMessage

from agents.tools.registry import KNOWN_TOOLS, Toolbox
from agents.tools.research import reset_research_tools
from utils.knowledge.shared_index import reset_search_index
from utils.settings import get_settings

HIT_KEYS = {"chunk_id", "doc_id", "title", "section", "score", "text"}

DOCS = {
    "sarsa.md": "# SARSA\n\n## The SARSA update\n\nSARSA is on-policy TD control: it moves "
                "Q(S, A) toward R + gamma * Q(S', A') with the action actually taken next.",
    "q-learning.md": "# Q-Learning\n\n## Off-policy target\n\nQ-learning bootstraps from the "
                     "maximum action value in the next state, so it learns the greedy policy "
                     "while exploring.",
    "ppo.md": "# PPO\n\n## Clipping\n\nPPO clips the probability ratio to keep updates small.",
}


@pytest.fixture(autouse=True)
def tool_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    kb = tmp_path / "kb"
    kb.mkdir()
    for name, text in DOCS.items():
        (kb / name).write_text(text)
    monkeypatch.setenv("KB_DIR", str(kb))
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EMBEDDING_BACKEND", "lsa")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for var in ("MCP_ARXIV_COMMAND", "MCP_SEMANTIC_SCHOLAR_COMMAND"):
        monkeypatch.delenv(var, raising=False)
    _reset()
    yield tmp_path
    _reset()


_toolboxes: list[Toolbox] = []


def _toolbox() -> Toolbox:
    """One toolbox per test, rebuilt when a test changes the settings (as a restart would)."""
    settings = get_settings()
    if not _toolboxes or _toolboxes[-1]._settings is not settings:
        _toolboxes.append(Toolbox(settings))
    return _toolboxes[-1]


def build_tools(names: list) -> list:
    return _toolbox().build(names)


def tool_status() -> dict[str, str]:
    return _toolbox().status()


def warm_up() -> dict[str, str]:
    return _toolbox().warm_up()


def _reset() -> None:
    get_settings.cache_clear()
    reset_search_index()
    _toolboxes.clear()
    reset_research_tools()


def _call(tool, args: dict) -> ToolMessage:
    return tool.invoke({"type": "tool_call", "id": "call-1", "name": tool.name, "args": args})


# --------------------------------------------------------------------------- registry

def test_registry_builds_listed_tools_in_order_and_skips_unknown_once(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        tools = build_tools(["search_v2", "made_up", "search_v1", "search_v2", "made_up"])
        build_tools(["made_up"])
    assert [t.name for t in tools] == ["search_v2", "search_v1"]
    assert sum("made_up" in r.getMessage() for r in caplog.records) == 1


def test_registry_reuses_tool_instances() -> None:
    first = build_tools(["search_v1", "reranking"])
    second = build_tools(["reranking", "search_v1"])
    assert first[0] is second[1] and first[1] is second[0]


def test_registry_accepts_ai_config_tool_objects() -> None:
    tools = build_tools([{"name": "search_v1", "type": "function"}])  # type: ignore[list-item]
    assert [t.name for t in tools] == ["search_v1"]


def test_tools_expose_bounded_schemas_and_descriptions() -> None:
    for tool in build_tools(["search_v1", "search_v2", "reranking"]):
        schema = tool.args_schema.model_json_schema()
        assert schema["required"] == ["query"]
        assert schema["properties"]["top_k"]["maximum"] == 10
        assert tool.response_format == "content_and_artifact"
        assert len(tool.description) > 50


# --------------------------------------------------------------------------- search tools

@pytest.mark.parametrize("name", ["search_v1", "search_v2", "reranking"])
def test_search_tools_return_cited_content_and_hit_artifacts(name: str) -> None:
    (tool,) = build_tools([name])
    message = _call(tool, {"query": "How does SARSA differ from Q-learning?", "top_k": 2})
    assert isinstance(message, ToolMessage)
    hits = message.artifact
    assert 1 <= len(hits) <= 2
    assert all(set(h) == HIT_KEYS for h in hits)
    assert {h["doc_id"] for h in hits} <= set(DOCS)
    first = hits[0]
    assert f"[1] {first['title']} › {first['section']} ({first['doc_id']}" in message.content
    assert first["chunk_id"] in message.content


def test_top_k_is_clamped_not_rejected() -> None:
    (tool,) = build_tools(["search_v2"])
    message = _call(tool, {"query": "policy", "top_k": 500})
    assert len(message.artifact) <= 10
    assert message.status != "error"


def test_no_match_says_so_with_an_empty_artifact() -> None:
    (tool,) = build_tools(["search_v1"])
    message = _call(tool, {"query": "zebra xylophone"})
    assert "no knowledge-base passage" in message.content
    assert message.artifact == []


def test_reranking_reorders_chunk_ids_from_an_earlier_search() -> None:
    search, rerank = build_tools(["search_v1", "reranking"])
    earlier = _call(search, {"query": "SARSA Q-learning PPO", "top_k": 3}).artifact
    ids = [h["chunk_id"] for h in earlier]
    assert len(ids) == 3
    message = _call(rerank, {"query": "PPO ratio clipping", "candidates": ids})
    assert sorted(h["chunk_id"] for h in message.artifact) == sorted(ids)
    assert message.artifact[0]["doc_id"] == "ppo.md"


# --------------------------------------------------------------------------- status and warm-up

def test_tool_status_lists_every_known_tool_and_why_research_is_missing() -> None:
    status = tool_status()
    assert set(status) == set(KNOWN_TOOLS)
    assert status["arxiv_search"] == "unavailable: MCP_ARXIV_COMMAND is not set"
    warm_up()
    status = tool_status()
    assert status["search_v2"].startswith("available (lsa")
    assert status["semantic_scholar"].startswith("unavailable")


# --------------------------------------------------------------------------- MCP research tools

def test_unset_or_missing_mcp_command_is_left_out(monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="agents.tools.research")
    assert build_tools(["arxiv_search", "search_v1"])[0].name == "search_v1"
    monkeypatch.setenv("MCP_SEMANTIC_SCHOLAR_COMMAND", "/nonexistent/s2-mcp --stdio")
    get_settings.cache_clear()
    assert build_tools(["semantic_scholar"]) == []
    assert "was not found" in tool_status()["semantic_scholar"]
    # Not configured is the offline default, said quietly; configured but broken warns.
    levels = {r.getMessage().split()[2]: r.levelname for r in caplog.records
              if "left out" in r.getMessage()}
    assert levels == {"arxiv_search": "INFO", "semantic_scholar": "WARNING"}, levels


def test_mcp_server_that_never_answers_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_ARXIV_COMMAND",
                       f"{sys.executable} -c 'import time; time.sleep(60)'")
    monkeypatch.setenv("MCP_STARTUP_TIMEOUT_S", "1")
    get_settings.cache_clear()
    assert build_tools(["arxiv_search"]) == []
    assert "did not start within 1s" in tool_status()["arxiv_search"]


def test_mcp_server_that_crashes_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_ARXIV_COMMAND", f"{sys.executable} -c 'raise SystemExit(3)'")
    monkeypatch.setenv("MCP_STARTUP_TIMEOUT_S", "5")
    get_settings.cache_clear()
    assert build_tools(["arxiv_search"]) == []
    assert tool_status()["arxiv_search"].startswith("unavailable")


FAKE_SERVER = textwrap.dedent('''
    from mcp.server.fastmcp import FastMCP

    server = FastMCP("fake-arxiv")

    @server.tool()
    def download_paper(paper_id: str) -> str:
        """Download a paper."""
        return "not this one"

    @server.tool()
    def search_papers(query: str, max_results: int = 3) -> str:
        """Search arXiv papers by keywords."""
        return f"{max_results} papers about {query}: 2401.00001 Clipped objectives revisited"

    server.run()
''')


@pytest.mark.slow
async def test_configured_mcp_server_becomes_a_tool(
        tool_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tool_env / "fake_arxiv_server.py"
    script.write_text(FAKE_SERVER)
    monkeypatch.setenv("MCP_ARXIV_COMMAND", f"{sys.executable} {script}")
    monkeypatch.setenv("MCP_STARTUP_TIMEOUT_S", "30")
    get_settings.cache_clear()

    (tool,) = build_tools(["arxiv_search"])
    assert tool.name == "arxiv_search"
    assert "arXiv" in tool.description
    assert tool_status()["arxiv_search"] == "available (MCP tool search_papers)"
    result = await tool.ainvoke({"query": "proximal policy optimization", "max_results": 2})
    assert "2 papers about proximal policy optimization" in result
    # The sync path works too (it runs the call on its own event loop).
    assert "papers about PPO" in tool.invoke({"query": "PPO"})
