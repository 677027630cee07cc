"""What the agent framework costs per support answer (issue 2, the CPU target).

    .venv/bin/python bench/bench_agent_loop.py [--runs 300]

The support agent makes, for a typical question, three model calls and three tool calls
(both searches in parallel, then `reranking`, then the answer). This script runs exactly
those calls three ways, in this process, and prints CPU ms per answer (median of 7 rounds,
the three ways interleaved round by round):

1. `create_agent` + `ToolCallLimitMiddleware`, as agents/support.py runs it;
2. `create_agent` without middleware;
3. a hand-written loop: `ainvoke` the tool-bound model, run its tool calls with
   `asyncio.gather`, repeat (the same LangChain model and tool objects, so callbacks,
   validation and the simulator's work are all still paid).

Each is run twice: with the real simulated model and search tools, and with a no-op model
and no-op tools, which isolates the framework's own cost. The hand loop's answers are
checked to be identical to create_agent's, so the comparison is like for like.

Then whole requests: the chat service in this process on bench_chat.py's message mix, with
the support agent as shipped and with the hand loop swapped in (here only), beside the floor
app's handler, so the issue's ≤4× ratio can be read for both designs (no HTTP on any side).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from langchain.agents import create_agent  # noqa: E402
from langchain.agents.middleware import ToolCallLimitMiddleware  # noqa: E402
from langchain_core.language_models import BaseChatModel  # noqa: E402
from langchain_core.messages import (  # noqa: E402
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from langchain_core.tools import BaseTool  # noqa: E402
from pydantic import BaseModel  # noqa: E402

QUESTIONS = ("What is Q-learning?", "How does SARSA differ from Q-learning?",
             "Explain the exploration-exploitation trade-off.",
             "What does the discount factor gamma do?")
TOOL_NAMES = ("search_v1", "search_v2", "reranking")


class _NoOpModel(BaseChatModel):
    """Asks for the same calls as the simulator (2 searches, then reranking), does nothing."""

    @property
    def _llm_type(self) -> str:
        return "no-op"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(**kwargs)

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        done = sum(isinstance(m, ToolMessage) for m in messages)
        names = ("search_v2", "search_v1") if done == 0 else ("reranking",) if done == 2 else ()
        calls = [{"name": n, "args": {"query": "q"}, "id": f"{n}-{done}", "type": "tool_call"}
                 for n in names]
        return ChatResult(generations=[ChatGeneration(message=AIMessage("ok", tool_calls=calls))])

    async def _agenerate(self, messages: list[BaseMessage], stop: Any = None,
                         run_manager: Any = None, **kwargs: Any) -> ChatResult:
        return self._generate(messages)


class _QueryArgs(BaseModel):
    query: str


class _NoOpTool(BaseTool):
    args_schema: type[BaseModel] = _QueryArgs

    def _run(self, query: str) -> str:
        return "nothing"

    async def _arun(self, query: str) -> str:
        return "nothing"


async def hand_loop(model: BaseChatModel, tools: list[BaseTool], question: str,
                    max_tool_calls: int = 5) -> list[BaseMessage]:
    """The smallest honest tool-calling loop: model, tools in parallel, until no calls."""
    return await _tool_loop(model, tools, [HumanMessage(question)], None, max_tool_calls)


async def _tool_loop(model: BaseChatModel, tools: list[BaseTool], inputs: list[BaseMessage],
                     system_prompt: str | None, max_tool_calls: int) -> list[BaseMessage]:
    bound = model.bind_tools(tools) if tools else model
    by_name = {tool.name: tool for tool in tools}
    system = [SystemMessage(system_prompt)] if system_prompt else []
    messages = list(inputs)
    used = 0
    while True:
        reply = await bound.ainvoke(system + messages)
        messages.append(reply)
        if not reply.tool_calls or used + len(reply.tool_calls) > max_tool_calls:
            return messages
        used += len(reply.tool_calls)
        messages.extend(await asyncio.gather(
            *(by_name[call["name"]].ainvoke(call) for call in reply.tool_calls)))


class _HandLoopAgent:
    """Stands in for a compiled `create_agent` inside the chat service (in this script only)."""

    def __init__(self, model: BaseChatModel, tools: list[BaseTool], instructions: str,
                 max_tool_calls: int) -> None:
        self.args = (model, tools, instructions, max_tool_calls)

    async def ainvoke(self, state: dict[str, Any], config: Any = None) -> dict[str, Any]:
        model, tools, instructions, limit = self.args
        return {"messages": await _tool_loop(model, tools, state["messages"], instructions,
                                             limit)}


def measure_requests(runs: int) -> dict[str, float]:
    """In-process CPU ms per /chat request (the chat service, bench_chat's message mix), with
    the support agent as shipped and swapped for the hand loop, beside the floor's handler."""
    import tempfile

    from bench.bench_chat import chat_bodies, in_process_service, prepare_data_dir

    data_dir = Path(tempfile.mkdtemp(prefix="bench-agent-loop-")) / "data"
    prepare_data_dir(data_dir)
    service = in_process_service(data_dir)  # sets DATA_DIR, which floor_app reads on import
    import agents.support as support
    from api.schemas import ChatRequest
    from bench import floor_app

    bodies = chat_bodies(1000)
    turn = iter(range(1 << 30))

    def body() -> dict[str, Any]:
        return bodies[next(turn) % len(bodies)]

    shipped = support._agents.get

    def hand_loop_agents(model: Any, tools: list, instructions: str, limit: int) -> Any:
        return _HandLoopAgent(model, tools, instructions, limit)

    async def chat(get_agent: Callable[..., Any]) -> Any:
        support._agents.get = get_agent
        return await service.chat(ChatRequest(**body()))

    try:
        return cpu_ms({
            "shipped": lambda: chat(shipped),
            "hand": lambda: chat(hand_loop_agents),
            "floor": lambda: floor_app.create_floor(floor_app.FloorRequest(**body())),
        }, runs)
    finally:
        support._agents.get = shipped
        service.store.close()
        service.flags.close()


def cpu_ms(runs_by_name: dict[str, Callable[[], Awaitable[Any]]], runs: int,
           rounds: int = 7) -> dict[str, float]:
    """Median over `rounds` of the process CPU ms per call of each runnable.

    Rounds are interleaved (A, B, C, A, B, C, ...) so that load from other tenants of this
    shared machine hits every variant alike."""
    loop = asyncio.new_event_loop()
    try:
        for run in runs_by_name.values():
            for _ in range(max(10, runs // 10)):
                loop.run_until_complete(run())
        per_round = max(1, runs // rounds)
        samples: dict[str, list[float]] = {name: [] for name in runs_by_name}
        for _ in range(rounds):
            for name, run in runs_by_name.items():
                start = time.process_time()
                for _ in range(per_round):
                    loop.run_until_complete(run())
                samples[name].append((time.process_time() - start) * 1000 / per_round)
        return {name: statistics.median(values) for name, values in samples.items()}
    finally:
        loop.close()


def measure(label: str, model: BaseChatModel, tools: list[BaseTool],
            runs: int) -> list[float]:
    """CPU ms per answer: create_agent with the limit, create_agent bare, the hand loop."""
    limited = create_agent(model, tools, middleware=[
        ToolCallLimitMiddleware(run_limit=5, exit_behavior="end")])
    bare = create_agent(model, tools)
    for question in QUESTIONS:  # like for like: the same calls and the same answer
        via_agent = asyncio.run(limited.ainvoke({"messages": [HumanMessage(question)]}))
        via_loop = asyncio.run(hand_loop(model, tools, question))
        if len(via_agent["messages"]) != len(via_loop):
            raise SystemExit(f"{label}: the hand loop made different calls for {question!r}")
        if _answer(via_agent["messages"]) != _answer(via_loop):
            raise SystemExit(f"{label}: the hand loop answered {question!r} differently")
    turn = iter(range(1 << 30))

    def message() -> dict[str, list[BaseMessage]]:
        return {"messages": [HumanMessage(QUESTIONS[next(turn) % len(QUESTIONS)])]}

    figures = cpu_ms({
        "limited": lambda: limited.ainvoke(message()),
        "bare": lambda: bare.ainvoke(message()),
        "hand": lambda: hand_loop(model, tools, message()["messages"][0].text),
    }, runs)
    return [figures["limited"], figures["bare"], figures["hand"]]


def _answer(messages: list[BaseMessage]) -> str:
    return next(m.text for m in reversed(messages) if isinstance(m, AIMessage))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="answers per measurement")
    parser.add_argument("--requests", type=int, default=700,
                        help="/chat requests per variant for the in-process comparison "
                             "(0 skips it)")
    args = parser.parse_args()

    from agents.simulated import SimulatedChatModel
    from agents.tools.registry import Toolbox
    from utils.settings import get_settings

    setups = {
        "simulated gpt-4o + real search tools": (SimulatedChatModel(model_name="gpt-4o"),
                                                 Toolbox(get_settings()).build(TOOL_NAMES)),
        "no-op model + no-op tools": (_NoOpModel(), [_NoOpTool(name=n, description=n)
                                                     for n in TOOL_NAMES]),
    }
    print(f"CPU ms per support answer (3 model calls, 3 tool calls), median of 7 rounds, "
          f"{args.runs} answers each")
    print(f"{'setup':<40}{'create_agent+limit':>20}{'create_agent':>14}{'hand loop':>11}"
          f"{'framework share':>17}")
    for label, (model, tools) in setups.items():
        figures = measure(label, model, tools, args.runs)
        share = 1 - figures[2] / figures[0]
        print(f"{label:<40}{figures[0]:>20.2f}{figures[1]:>14.2f}{figures[2]:>11.2f}"
              f"{share:>17.0%}")
    print("framework share: the part of create_agent+limit's CPU that the hand loop does "
          "not spend")
    if args.requests:
        figures = measure_requests(args.requests)
        floor = figures["floor"]
        print(f"\nCPU ms per /chat request in-process (the chat service on bench_chat.py's "
              f"message mix, no HTTP), median of 7 rounds, {args.requests} requests each")
        for name, label in (("shipped", "support agent = create_agent (as shipped)"),
                            ("hand", "support agent = the hand loop"),
                            ("floor", "the floor app's handler")):
            print(f"{label:<44}{figures[name]:>7.2f} ms  {figures[name] / floor:>5.2f}× floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
