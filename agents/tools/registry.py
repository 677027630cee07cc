"""Tool registry: the LangChain tools an AI Config variation lists, built once per process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence

from langchain_core.tools import BaseTool

from agents.tools.research import (
    RESEARCH_SOURCES,
    research_status,
    research_tool,
    warm_up_research_tools,
)
from agents.tools.search import SEARCH_TOOL_NAMES, make_search_tool

log = logging.getLogger(__name__)

KNOWN_TOOLS: tuple[str, ...] = (*SEARCH_TOOL_NAMES, *RESEARCH_SOURCES)

_lock = threading.Lock()
_search_tools: dict[str, BaseTool] = {}
_warned: set[str] = set()


def _warn_once(name: str, message: str) -> None:
    with _lock:
        if name in _warned:
            return
        _warned.add(name)
    log.warning(message)


def _tool_name(entry: object) -> str:
    # Variations list names; accept the {"name": ...} objects of model.parameters.tools too.
    if isinstance(entry, Mapping):
        return str(entry.get("name", ""))
    return str(entry)


def _search_tool(name: str) -> BaseTool:
    tool = _search_tools.get(name)
    if tool is None:
        with _lock:
            tool = _search_tools.setdefault(name, make_search_tool(name))
    return tool


def build_tools(names: Sequence[str]) -> list[BaseTool]:
    """The tools for `names`, in order, each once; unknown or unavailable names are skipped.

    Instances are cached, so calling this per request costs a few dictionary look-ups.
    An unknown name is logged once per process.
    """
    tools: list[BaseTool] = []
    seen: set[str] = set()
    for entry in names:
        name = _tool_name(entry)
        if name in seen:
            continue
        seen.add(name)
        if name in SEARCH_TOOL_NAMES:
            tools.append(_search_tool(name))
        elif name in RESEARCH_SOURCES:
            tool = research_tool(name)  # logs its own reason when left out
            if tool is not None:
                tools.append(tool)
        else:
            _warn_once(name, f"unknown tool {name!r} in the AI Config variation: skipped "
                             f"(known tools: {', '.join(KNOWN_TOOLS)})")
    return tools


def tool_status() -> dict[str, str]:
    """One status line per known tool for /health (`available ...`, `unavailable: why`)."""
    from utils.knowledge.search_index import peek_search_index

    index = peek_search_index()
    if index is None:
        search = dict.fromkeys(SEARCH_TOOL_NAMES, "available (index builds on first use)")
    else:
        n = len(index.chunks)
        fallback = f"; {index.info.fallback_reason}" if index.info.fallback_reason else ""
        search = {
            "search_v1": f"available (bm25s, {n} chunks)",
            "search_v2": f"available ({index.info.backend}, {n} chunks{fallback})",
            "reranking": f"available (bm25 + {index.info.backend} + term coverage)",
        }
    return {**search, **research_status()}


def warm_up() -> dict[str, str]:
    """Build the search index and start configured MCP servers (call at server start-up)."""
    from utils.knowledge.search_index import get_search_index

    get_search_index()
    for name in SEARCH_TOOL_NAMES:
        _search_tool(name)
    warm_up_research_tools()
    status = tool_status()
    log.info("tools: %s", "; ".join(f"{k}: {v}" for k, v in status.items()))
    return status


def reset_registry() -> None:
    """Forget cached tools and warnings (tests)."""
    with _lock:
        _search_tools.clear()
        _warned.clear()
