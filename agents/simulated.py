"""A simulated chat model: everything stays real except the model call (docs/SIMULATION.md).

How it behaves, and nothing more:
- With tools bound and no tool results yet, it calls every search tool it has, in parallel,
  with the user's question (top_k = its profile's retrieval depth), then `reranking` if bound.
- With tool results, it answers extractively from the hits it read: sentences ranked by
  overlap with the question. `precision` is the chance each sentence is the best remaining
  one rather than one drawn from the rest of what it read; `verbosity` sets the length.
- Without tools or results it has no knowledge of its own and restates its input (which is
  how it serves as a redactor that adds nothing to the deterministic floor).
- Structured output fills the schema with its defaults: the simulator adds no judgement.
Token counts are real BPE counts of the real text; latency comes from the model's profile
and `SIM_TIME_SCALE` decides how much of it is slept. Everything is seeded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from agents.sim_profiles import SimProfile, get_profile
from utils.tokens import count_tokens

SEARCH_PREFERENCE = ("search_v2", "search_v1")
RERANK_TOOL = "reranking"

_WORD = re.compile(r"[a-z][a-z0-9\-]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")
_STOPWORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "do", "does", "for", "from", "how", "i", "in", "is", "it", "me", "my", "of", "on", "or", "our", "so", "that", "the", "their", "them", "there", "these", "this", "to", "was", "what", "when", "where", "which", "who", "why", "will", "with", "would", "you", "your", "about", "into", "than", "then", "also", "please", "explain", "tell", "know", "need", "help", "work", "works", "using", "use", "used", "between", "difference", "differ"]
)


@lru_cache(maxsize=16384)
def content_terms(text: str) -> frozenset[str]:
    """Lower-cased content words of `text` (the overlap unit for ranking sentences)."""
    return frozenset(w for w in _WORD.findall(text.lower())
                     if w not in _STOPWORDS and len(w) > 2)


# Prompts repeat across calls (instructions, tool schemas, the same KB passages), and the
# model only ever sees sanitized text, so memoising token counts is safe and saves most of
# the simulator's CPU.
_count_tokens = lru_cache(maxsize=16384)(count_tokens)


_profile_for = lru_cache(maxsize=256)(get_profile)


def _text_of(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(
        part.get("text", "") if isinstance(part, dict) else str(part) for part in content
    )


class SimulatedChatModel(BaseChatModel):
    """A LangChain chat model that simulates `model_name` from its documented profile."""

    model_name: str
    provider: str = "simulated"
    seed: int = 42
    time_scale: float = 0.0
    temperature: float = 0.0
    max_tokens: int | None = None

    @property
    def _llm_type(self) -> str:
        return "simulated-chat-model"

    @property
    def sim_profile(self) -> SimProfile:
        return _profile_for(self.model_name)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
        *,
        tool_choice: str | dict | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [_openai_tool(tool) for tool in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    # -- generation ---------------------------------------------------------------------

    def _plan(self, messages: list[BaseMessage], tools: list[dict[str, Any]],
              tool_choice: Any, seed: int) -> tuple[str, list[dict[str, Any]]]:
        """Decide the reply: text content and tool calls."""
        rng = random.Random(seed)
        tool_names = [t["function"]["name"] for t in tools]
        forced = _forced_tool(tool_choice, tool_names)
        if forced is not None and forced not in SEARCH_PREFERENCE + (RERANK_TOOL,):
            schema = next(t["function"] for t in tools if t["function"]["name"] == forced)
            return "", [_tool_call(forced, _fill_schema(schema.get("parameters", {})), rng)]

        question = _last_human(messages)
        results = [m for m in messages if isinstance(m, ToolMessage)]
        called = {m.name for m in results}
        depth = self.sim_profile.retrieval_depth
        searches = [name for name in SEARCH_PREFERENCE if name in tool_names]
        if searches and not results:  # every search tool at once, as parallel tool calls
            return "", [_tool_call(name, {"query": question, "top_k": depth}, rng)
                        for name in searches]
        if RERANK_TOOL in tool_names and results and RERANK_TOOL not in called:
            return "", [_tool_call(RERANK_TOOL, {"query": question, "top_k": depth}, rng)]
        if results:
            return self._answer(question, results, rng), []
        return question, []

    def _answer(self, question: str, results: list[ToolMessage], rng: random.Random) -> str:
        """An extractive answer from the hits this model read, shaped by its profile."""
        profile = self.sim_profile
        hits = _hits_from(results)[: profile.retrieval_depth]
        if not hits:
            return (
                "I could not find anything about that in the knowledge base. Could you "
                f"rephrase the question? ({question[:120]})"
            )
        terms = content_terms(question)
        pool: list[tuple[float, str, int]] = []
        for rank, hit in enumerate(hits):
            for sentence, words in _sentences(hit.get("text", "")):
                overlap = len(terms & words) / (1 + len(words)) ** 0.5
                pool.append((overlap - 0.02 * rank, sentence, rank))
        pool.sort(key=lambda item: -item[0])
        budget = max(40, int(profile.verbosity * (0.85 + 0.3 * rng.random())))
        if self.max_tokens:
            budget = min(budget, int(self.max_tokens))
        chosen: list[tuple[str, int]] = []
        used = 0
        while pool and used < budget:
            index = 0 if rng.random() < profile.precision else rng.randrange(len(pool))
            _, sentence, rank = pool.pop(index)
            chosen.append((sentence, rank))
            used += _count_tokens(sentence)
        sources: list[str] = []
        for _, rank in chosen:
            hit = hits[rank]
            label = f"{hit.get('title', hit.get('doc_id', 'document'))} ({hit.get('section', '')})"
            if label not in sources:
                sources.append(label)
        body = " ".join(sentence for sentence, _ in chosen)
        return f"{body}\n\nSources: " + "; ".join(sources)

    def _seed_for(self, messages: list[BaseMessage]) -> int:
        digest = hashlib.sha256()
        digest.update(f"{self.seed}|{self.model_name}".encode())
        for message in messages:
            digest.update(message.type.encode())
            digest.update(_text_of(message).encode())
        return int.from_bytes(digest.digest()[:8], "big")

    def _latency_ms(self, seed: int, output_tokens: int) -> tuple[float, float]:
        """(time to first token, total) in ms, from the profile with seeded jitter."""
        profile = self.sim_profile
        rng = random.Random(seed ^ 0x5EED)
        factor = max(0.3, 1.0 + profile.jitter * rng.gauss(0.0, 1.0))
        ttft = profile.ttft_ms * factor
        total = ttft + 1000.0 * output_tokens / profile.output_tokens_per_s * factor
        return ttft, total

    def _build(self, messages: list[BaseMessage], **kwargs: Any) -> tuple[ChatResult, float]:
        tools = kwargs.get("tools") or []
        seed = self._seed_for(messages)
        content, tool_calls = self._plan(messages, tools, kwargs.get("tool_choice"), seed)
        input_tokens = sum(_count_tokens(_text_of(m)) + 4 for m in messages)
        if tools:
            input_tokens += _schema_tokens(tools)
        emitted = content + "".join(json.dumps(c["args"]) + c["name"] for c in tool_calls)
        output_tokens = max(1, _count_tokens(emitted))
        ttft, total = self._latency_ms(seed, output_tokens)
        slept = total * self.time_scale
        message = AIMessage(
            content=content,
            tool_calls=tool_calls,
            usage_metadata={"input_tokens": input_tokens, "output_tokens": output_tokens,
                            "total_tokens": input_tokens + output_tokens},
            response_metadata={"model_name": self.model_name, "simulated": True,
                               "simulated_latency_ms": round(total, 3),
                               "time_to_first_token_ms": round(ttft, 3),
                               "slept_ms": round(slept, 3)},
        )
        return ChatResult(generations=[ChatGeneration(message=message)]), slept / 1000.0

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None,
                  **kwargs: Any) -> ChatResult:
        result, sleep_s = self._build(messages, **kwargs)
        if sleep_s > 0:
            time.sleep(sleep_s)
        return result

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None,
                         **kwargs: Any) -> ChatResult:
        result, sleep_s = self._build(messages, **kwargs)
        if sleep_s > 0:
            await asyncio.sleep(sleep_s)
        return result


@lru_cache(maxsize=4096)
def _sentences(text: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """The answerable sentences of a passage with their content terms (passages recur)."""
    pairs = ((sentence, content_terms(sentence)) for sentence in _SENTENCE.split(_prose(text)))
    return tuple((sentence, words) for sentence, words in pairs if len(sentence) >= 40 and words)


def _prose(text: str) -> str:
    """The running text of a hit: headings, code blocks and list markers dropped."""
    kept, in_code = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            in_code = not in_code
            continue
        if in_code or stripped.startswith(("#", "|")):
            continue
        kept.append(stripped.lstrip("-*> ").strip())
    return " ".join(" ".join(kept).split())


_converted: dict[int, tuple[Any, dict[str, Any]]] = {}
_schema_token_counts: dict[tuple[int, ...], tuple[list[dict[str, Any]], int]] = {}


def _schema_tokens(tools: list[dict[str, Any]]) -> int:
    """Tokens of the tool schemas sent with a call, counted once per list of schema dicts
    (the cache holds the dicts, so their ids cannot be reused while they are keys)."""
    key = tuple(map(id, tools))
    cached = _schema_token_counts.get(key)
    if cached is not None and all(a is b for a, b in zip(cached[0], tools, strict=True)):
        return cached[1]
    count = _count_tokens(json.dumps(tools))
    if len(_schema_token_counts) < 1024:
        _schema_token_counts[key] = (list(tools), count)
    return count


def _openai_tool(tool: Any) -> dict[str, Any]:
    """OpenAI tool format, converted once per tool object (schemas are costly to build)."""
    cached = _converted.get(id(tool))
    if cached is not None and cached[0] is tool:
        return cached[1]
    formatted = convert_to_openai_tool(tool)
    if isinstance(tool, BaseTool | type) and len(_converted) < 1024:
        _converted[id(tool)] = (tool, formatted)  # keeps `tool` alive, so the id stays valid
    return formatted


def _last_human(messages: list[BaseMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return _text_of(message)
    return ""


def _forced_tool(tool_choice: Any, tool_names: list[str]) -> str | None:
    if isinstance(tool_choice, dict):
        return (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    if isinstance(tool_choice, str) and tool_choice in tool_names:
        return tool_choice
    if tool_choice in ("any", "required", True) and len(tool_names) == 1:
        return tool_names[0]
    return None


def _tool_call(name: str, args: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return {"name": name, "args": args, "id": f"call_{rng.getrandbits(48):012x}",
            "type": "tool_call"}


def _fill_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Schema defaults: the simulator has no judgement to add to a structured answer."""
    filled: dict[str, Any] = {}
    for name, spec in (schema.get("properties") or {}).items():
        if "default" in spec:
            filled[name] = spec["default"]
        elif "enum" in spec:
            filled[name] = spec["enum"][0]
        else:
            filled[name] = {"boolean": False, "integer": 0, "number": 0.0, "array": [],
                            "object": {}}.get(spec.get("type", "string"), "simulated")
    return filled


def _hits_from(results: list[ToolMessage]) -> list[dict[str, Any]]:
    """What the model read: the rerank result if there is one, else the searches interleaved
    by rank (first hit of each, then second of each, ...), each chunk once."""
    lists = [[hit for hit in message.artifact if isinstance(hit, dict)]
             for message in results if isinstance(getattr(message, "artifact", None), list)]
    reranked = [m for m in results if m.name == RERANK_TOOL and isinstance(m.artifact, list)]
    if reranked:
        lists = [[hit for hit in reranked[-1].artifact if isinstance(hit, dict)]]
    merged: list[dict[str, Any]] = []
    seen: set[Any] = set()
    for rank in range(max((len(hits) for hits in lists), default=0)):
        for hits in lists:
            if rank < len(hits) and hits[rank].get("chunk_id") not in seen:
                seen.add(hits[rank].get("chunk_id"))
                merged.append(hits[rank])
    return merged
