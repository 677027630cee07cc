"""Knowledge-base tools the support agent calls: `search_v1`, `search_v2` and `reranking`.

Each returns `(content, artifact)`: the content is what the model reads (numbered passages
with document title, section, source file and a query-focused snippet), the artifact the
list of hit dicts `{"chunk_id", "doc_id", "title", "section", "score", "text"}`.

Reranking design: a tool-calling model cannot hand back the previous tool's hidden state,
and a per-process "last search" would mix up concurrent requests. So `reranking` is
stateless: given only the query it re-scores the union of the keyword and vector top-20
for that query (which is exactly what a preceding search_v1/search_v2 call saw, plus the
other retriever's view), and it also accepts `candidates`, the chunk ids printed by an
earlier search (or raw passages), to re-order a specific list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field, field_validator

from utils.knowledge.search_index import Hit, SearchIndex, analyze

MAX_TOP_K = 10
MAX_CANDIDATES = 50

ToolResult = tuple[str, list[dict[str, object]]]  # (what the model reads, the hits)


class SearchArgs(BaseModel):
    """Arguments of the search tools."""

    query: str = Field(min_length=1, max_length=2000,
                       description="The question or keywords to look up.")
    top_k: int = Field(default=5, ge=1, le=MAX_TOP_K,
                       description=f"How many passages to return (1-{MAX_TOP_K}).")

    @field_validator("top_k", mode="before")
    @classmethod
    def _clamp_top_k(cls, value: object) -> object:
        # A model asking for 50 passages gets the maximum rather than an error turn.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return max(1, min(MAX_TOP_K, int(value)))
        return value


class RerankArgs(SearchArgs):
    """Arguments of the reranking tool."""

    candidates: list[str] | None = Field(
        default=None, max_length=MAX_CANDIDATES,
        description=("Optional: chunk ids from earlier search results (the `id:` values) or "
                     "passage texts to re-order. Leave empty to re-rank the combined keyword "
                     "and semantic candidates for the query."))


def format_hits(tool_name: str, query: str, hits: list[Hit], index: SearchIndex) -> str:
    """The text the model reads: one numbered, cited passage per hit."""
    if not hits:
        return (f'{tool_name}: no knowledge-base passage matches "{query}". '
                "Try different words, or the other search tool.")
    lines = [f'{tool_name}: {len(hits)} passage(s) for "{query}"']
    terms = frozenset(analyze(query))
    for n, hit in enumerate(hits, start=1):
        source = f"{hit.title} › {hit.section}" if hit.section else hit.title
        origin = f"{hit.doc_id}, " if hit.doc_id else ""
        lines.append(f"[{n}] {source} ({origin}id: {hit.chunk_id}, score {hit.score:.3f})")
        lines.append(f"    {index.snippet(hit, terms)}")
    return "\n".join(lines)


def _result(tool_name: str, query: str, hits: list[Hit], index: SearchIndex) -> ToolResult:
    return format_hits(tool_name, query, hits, index), [h.as_dict() for h in hits]


def search_v1(index: SearchIndex, query: str, top_k: int = 5) -> ToolResult:
    """BM25 keyword search over the knowledge base."""
    return _result("search_v1", query, index.search_keyword(query, top_k), index)


def search_v2(index: SearchIndex, query: str, top_k: int = 5) -> ToolResult:
    """Semantic (vector) search over the knowledge base."""
    return _result("search_v2", query, index.search_vector(query, top_k), index)


def reranking(index: SearchIndex, query: str, top_k: int = 5,
              candidates: list[str] | None = None) -> ToolResult:
    """Re-rank candidate passages (given, or the hybrid pool for the query)."""
    return _result("reranking", query, index.rerank(query, candidates, top_k), index)


_DESCRIPTIONS = {
    "search_v1": (
        "Keyword search (BM25) over the support knowledge base. Best for exact terms, "
        "algorithm names and acronyms (e.g. SARSA, PPO, TD(lambda)). Returns numbered "
        "passages with document title, section and source file; cite them in the answer."),
    "search_v2": (
        "Semantic search over the support knowledge base: finds passages by meaning even "
        "when the question uses different words from the documents. Use it for conceptual "
        "or paraphrased questions. Returns numbered, cited passages."),
    "reranking": (
        "Re-rank knowledge-base passages so the most relevant come first. Call it with the "
        "user's question after a search (it re-scores the combined keyword and semantic "
        "candidates), or pass `candidates` (chunk ids from earlier results) to re-order "
        "those. Answer from the top passages."),
}

_FUNCTIONS: dict[str, tuple[Callable[..., ToolResult], type[BaseModel]]] = {
    "search_v1": (search_v1, SearchArgs),
    "search_v2": (search_v2, SearchArgs),
    "reranking": (reranking, RerankArgs),
}

SEARCH_TOOL_NAMES = tuple(_FUNCTIONS)


class SearchTool(BaseTool):
    """A knowledge-base function as a LangChain tool that runs on the event loop.

    A query takes well under a millisecond, so running it inline is cheaper than the thread
    hop LangChain makes for a sync-only tool; and unlike `StructuredTool`, a subclass spares
    the per-call type-hint resolution of a wrapped coroutine.
    """

    func: Callable[..., ToolResult]
    index: Callable[[], SearchIndex]  # the index to search, looked up per call
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"

    def _run(self, **kwargs: Any) -> ToolResult:
        return self.func(self.index(), **kwargs)

    async def _arun(self, **kwargs: Any) -> ToolResult:
        return self.func(self.index(), **kwargs)


def make_search_tool(name: str, index: Callable[[], SearchIndex]) -> BaseTool:
    """A new LangChain tool for `name` (one of `SEARCH_TOOL_NAMES`) over `index()`."""
    try:
        func, schema = _FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"unknown search tool {name!r}: expected one of "
                         f"{', '.join(SEARCH_TOOL_NAMES)}") from None
    return SearchTool(name=name, description=_DESCRIPTIONS[name], args_schema=schema, func=func,
                      index=index)
