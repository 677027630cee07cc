"""The toolbox: the LangChain tools an AI Config variation lists, built once per service."""

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
from utils.knowledge.search_index import SearchIndex
from utils.knowledge.shared_index import get_search_index, peek_search_index
from utils.settings import Settings

log = logging.getLogger(__name__)

KNOWN_TOOLS: tuple[str, ...] = (*SEARCH_TOOL_NAMES, *RESEARCH_SOURCES)


def _tool_name(entry: object) -> str:
    # Variations list names; accept the {"name": ...} objects of model.parameters.tools too.
    if isinstance(entry, Mapping):
        return str(entry.get("name", ""))
    return str(entry)


class Toolbox:
    """Every tool the support agent may be given, for one service's settings.

    Search tools are built once and search the index of these settings; research tools come
    from the MCP servers the settings name. `build()` per request costs a few look-ups.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._search_tools: dict[str, BaseTool] = {}
        self._warned: set[str] = set()

    def index(self) -> SearchIndex:
        """The knowledge-base index of these settings (built on first use, then shared)."""
        return get_search_index(self._settings)

    def _search_tool(self, name: str) -> BaseTool:
        tool = self._search_tools.get(name)
        if tool is None:
            with self._lock:
                tool = self._search_tools.setdefault(name, make_search_tool(name, self.index))
        return tool

    def _warn_once(self, name: str, message: str) -> None:
        with self._lock:
            if name in self._warned:
                return
            self._warned.add(name)
        log.warning(message)

    def build(self, names: Sequence[str]) -> list[BaseTool]:
        """The tools for `names`, in order, each once; unknown or unavailable names are skipped
        (an unknown name is logged once)."""
        tools: list[BaseTool] = []
        seen: set[str] = set()
        for entry in names:
            name = _tool_name(entry)
            if name in seen:
                continue
            seen.add(name)
            if name in SEARCH_TOOL_NAMES:
                tools.append(self._search_tool(name))
            elif name in RESEARCH_SOURCES:
                tool = research_tool(name, self._settings)  # logs its own reason when left out
                if tool is not None:
                    tools.append(tool)
            else:
                self._warn_once(name, f"unknown tool {name!r} in the AI Config variation: "
                                      f"skipped (known tools: {', '.join(KNOWN_TOOLS)})")
        return tools

    def status(self) -> dict[str, str]:
        """One status line per known tool for /health (`available ...`, `unavailable: why`)."""
        index = peek_search_index(self._settings)
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
        return {**search, **research_status(self._settings)}

    def warm_up(self) -> dict[str, str]:
        """Build the search index and start configured MCP servers (server start-up)."""
        self.index()
        for name in SEARCH_TOOL_NAMES:
            self._search_tool(name)
        warm_up_research_tools(self._settings)
        status = self.status()
        log.info("tools: %s", "; ".join(f"{k}: {v}" for k, v in status.items()))
        return status
