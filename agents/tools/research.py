"""Research tools from MCP servers: `arxiv_search` and `semantic_scholar`.

Each is loaded through `langchain-mcp-adapters` from a stdio server command in settings
(`MCP_ARXIV_COMMAND`, `MCP_SEMANTIC_SCHOLAR_COMMAND`, e.g. `uvx arxiv-mcp-server`). A tool
whose command is unset, missing, crashing or slower than `MCP_STARTUP_TIMEOUT_S` is left
out with a logged reason that `research_status()` reports; nothing here can hang a request:
start-up and every call run under a deadline in their own thread and event loop.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import shutil
import threading
from dataclasses import dataclass
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool

from utils.settings import Settings

log = logging.getLogger(__name__)

# Extra time a call gets beyond start-up: each call opens a fresh stdio session.
CALL_TIMEOUT_EXTRA_S = 30.0


@dataclass(frozen=True)
class ResearchSource:
    """One research tool: its settings field and how to pick the server's search tool."""

    setting: str
    label: str
    preferred: tuple[str, ...]


RESEARCH_SOURCES: dict[str, ResearchSource] = {
    "arxiv_search": ResearchSource(
        "MCP_ARXIV_COMMAND", "arXiv", ("search_papers", "search_arxiv", "search")),
    "semantic_scholar": ResearchSource(
        "MCP_SEMANTIC_SCHOLAR_COMMAND", "Semantic Scholar",
        ("search_papers", "search_semantic_scholar", "paper_search", "search")),
}


@dataclass(frozen=True)
class _Loaded:
    key: tuple[str, float]
    tool: BaseTool | None
    status: str


# One lock per tool, so that warm-up starts both servers at once.
_locks = {name: threading.Lock() for name in RESEARCH_SOURCES}
_loaded: dict[str, _Loaded] = {}


def _run_with_deadline(coro_factory: Any, timeout_s: float) -> Any:
    """Run `coro_factory()` in a fresh event loop on a daemon thread; give up after the deadline.

    A thread of its own keeps this safe to call from inside a running event loop (FastAPI),
    and the join deadline holds even if the server process ignores cancellation.
    """
    outcome: dict[str, Any] = {}

    def runner() -> None:
        try:
            outcome["value"] = asyncio.run(asyncio.wait_for(coro_factory(), timeout_s))
        except BaseException as exc:  # reported to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=runner, name="mcp-call", daemon=True)
    thread.start()
    thread.join(timeout_s + 2.0)
    if thread.is_alive() or isinstance(outcome.get("error"), TimeoutError):
        raise TimeoutError(f"no answer within {timeout_s:g}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _pick_tool(tools: list[BaseTool], source: ResearchSource) -> BaseTool:
    by_name = {t.name: t for t in tools}
    for name in source.preferred:
        if name in by_name:
            return by_name[name]
    searching = [t for t in tools if "search" in t.name.lower()]
    return (searching or tools)[0]


def _wrap(name: str, source: ResearchSource, inner: BaseTool, timeout_s: float) -> BaseTool:
    """Expose the server's tool under our stable name, with a deadline on every call."""
    call_timeout = timeout_s + CALL_TIMEOUT_EXTRA_S

    def _text(result: Any) -> str:
        if isinstance(result, list):  # MCP content blocks
            return "\n".join(str(b.get("text", b)) if isinstance(b, dict) else str(b)
                             for b in result)
        return str(result)

    async def acall(**kwargs: Any) -> str:
        try:
            return _text(await asyncio.wait_for(inner.ainvoke(kwargs), call_timeout))
        except Exception as exc:  # the agent gets a readable failure, the request goes on
            log.warning("%s call failed: %s", name, exc)
            return f"{name} is unavailable right now ({type(exc).__name__}: {exc})."

    def call(**kwargs: Any) -> str:
        try:
            return _run_with_deadline(lambda: acall(**kwargs), call_timeout)
        except Exception as exc:
            return f"{name} is unavailable right now ({type(exc).__name__}: {exc})."

    description = (f"Search {source.label} for research papers (external, via MCP). "
                   f"{inner.description}".strip())
    return StructuredTool(name=name, description=description[:1024],
                          args_schema=inner.args_schema, func=call, coroutine=acall)


def load_research_tool(name: str, settings: Settings) -> tuple[BaseTool | None, str]:
    """Start the MCP server for `name` and wrap its search tool; `(None, reason)` on failure."""
    source = RESEARCH_SOURCES[name]
    command = str(getattr(settings, source.setting) or "").strip()
    if not command:
        return None, f"unavailable: {source.setting} is not set"
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return None, f"unavailable: cannot parse {source.setting} ({exc})"
    if shutil.which(argv[0]) is None:
        return None, f"unavailable: command {argv[0]!r} from {source.setting} was not found"
    timeout_s = float(settings.MCP_STARTUP_TIMEOUT_S)

    async def list_tools() -> list[BaseTool]:
        from langchain_mcp_adapters.client import MultiServerMCPClient

        client = MultiServerMCPClient({name: {"transport": "stdio", "command": argv[0],
                                              "args": argv[1:]}})
        return await client.get_tools()

    try:
        tools = _run_with_deadline(list_tools, timeout_s)
    except TimeoutError:
        return None, (f"unavailable: MCP server `{command}` did not start within {timeout_s:g}s "
                      "(raise MCP_STARTUP_TIMEOUT_S if it is just slow)")
    except Exception as exc:
        return None, f"unavailable: MCP server `{command}` failed ({type(exc).__name__}: {exc})"
    if not tools:
        return None, f"unavailable: MCP server `{command}` offers no tools"
    inner = _pick_tool(tools, source)
    return _wrap(name, source, inner, timeout_s), f"available (MCP tool {inner.name})"


def _key(name: str, settings: Settings) -> tuple[str, float]:
    source = RESEARCH_SOURCES[name]
    return str(getattr(settings, source.setting) or ""), float(settings.MCP_STARTUP_TIMEOUT_S)


def research_tool(name: str, settings: Settings) -> BaseTool | None:
    """The cached tool for `name`, loading it on first use (bounded by the start-up timeout)."""
    key = _key(name, settings)
    loaded = _loaded.get(name)
    if loaded is None or loaded.key != key:
        with _locks[name]:
            loaded = _loaded.get(name)
            if loaded is None or loaded.key != key:
                tool, status = load_research_tool(name, settings)
                if tool is None:
                    # Not configured is the offline default (INFO); configured but not
                    # starting is a problem to fix (WARNING).
                    level = logging.INFO if not key[0].strip() else logging.WARNING
                    log.log(level, "research tool %s left out: %s", name, status)
                else:
                    log.info("research tool %s: %s", name, status)
                loaded = _Loaded(key, tool, status)
                _loaded[name] = loaded
    return loaded.tool


def warm_up_research_tools(settings: Settings) -> None:
    """Load every research tool in parallel (server start-up); failures are only logged."""
    threads = [threading.Thread(target=research_tool, args=(n, settings), daemon=True)
               for n in RESEARCH_SOURCES]
    for t in threads:
        t.start()
    deadline = float(settings.MCP_STARTUP_TIMEOUT_S) + 5.0
    for t in threads:
        t.join(deadline)


def research_status(settings: Settings) -> dict[str, str]:
    """Status line per research tool, without starting anything."""
    status = {}
    for name, source in RESEARCH_SOURCES.items():
        loaded = _loaded.get(name)
        if loaded is not None and loaded.key == _key(name, settings):
            status[name] = loaded.status
        elif not str(getattr(settings, source.setting) or "").strip():
            status[name] = f"unavailable: {source.setting} is not set"
        else:
            status[name] = "pending: starts on first use"
    return status


def reset_research_tools() -> None:
    """Forget loaded research tools (tests, or after changing the MCP settings)."""
    _loaded.clear()


__all__ = ["RESEARCH_SOURCES", "load_research_tool", "research_status", "research_tool",
           "reset_research_tools", "warm_up_research_tools"]

