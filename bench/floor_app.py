"""The floor for bench_chat.py: only what any request on this stack must do, plus a bare echo.

    DATA_DIR=/tmp/x .venv/bin/uvicorn bench.floor_app:app --port 8100

`POST /floor` builds the user context, makes three AI-config evaluations through the same
LaunchDarkly SDK file data source and AI SDK the app uses (DATA_DIR/flags.json), runs a
compiled 3-node LangGraph whose nodes do nothing else, and commits one row to SQLite (WAL,
synchronous=NORMAL, like the event store). `POST /echo` returns its JSON body. Neither calls
a model, a PII detector, a search index or the instrumentation: the app's CPU per request
over this floor is what those cost.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from fastapi import FastAPI
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from ldai.client import LDAIClient
from ldai.models import AIAgentConfigDefault, ModelConfig, ProviderConfig
from ldclient import Context, LDClient
from ldclient.config import Config
from ldclient.integrations import Files
from pydantic import BaseModel

CONFIG_KEYS = ("supervisor-agent", "security-agent", "support-agent")
DATA_DIR = Path(os.environ.get("DATA_DIR", "data"))
FLAGS_PATH = Path(os.environ.get("LOCAL_FLAGS_PATH", DATA_DIR / "flags.json"))
FLOOR_DB = DATA_DIR / "floor.db"

_DEFAULT = AIAgentConfigDefault(enabled=True, model=ModelConfig("gpt-4o-mini"),
                                provider=ProviderConfig("openai"), instructions="")


class FloorRequest(BaseModel):
    user_id: str
    message: str
    user_context: dict[str, Any] = {}


class FloorState(TypedDict, total=False):
    message: str
    models: list[str]


@dataclass(kw_only=True)
class FloorContext:
    ld_context: Context


def _build_graph(ai_client: LDAIClient):
    """Three async nodes (as the app's), each evaluating one AI config for the request's user."""

    def node_for(config_key: str):
        async def node(state: FloorState, runtime: Runtime[FloorContext]) -> dict:
            ai_config = ai_client.agent_config(config_key, runtime.context.ld_context, _DEFAULT)
            return {"models": [*state.get("models", []), ai_config.model.name]}
        return node

    graph = StateGraph(FloorState, context_schema=FloorContext)
    for key in CONFIG_KEYS:
        graph.add_node(key, node_for(key))
    graph.add_edge(START, CONFIG_KEYS[0])
    graph.add_edge(CONFIG_KEYS[0], CONFIG_KEYS[1])
    graph.add_edge(CONFIG_KEYS[1], CONFIG_KEYS[2])
    graph.add_edge(CONFIG_KEYS[2], END)
    return graph.compile()


ld_client = LDClient(Config(
    "floor-local", send_events=False,
    update_processor_class=Files.new_data_source(paths=[str(FLAGS_PATH)], auto_update=False),
), start_wait=5)
graph = _build_graph(LDAIClient(ld_client))
DATA_DIR.mkdir(parents=True, exist_ok=True)
db = sqlite3.connect(FLOOR_DB, isolation_level=None, check_same_thread=False)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE IF NOT EXISTS requests (request_id TEXT PRIMARY KEY, ts REAL,"
           " user_key TEXT, models TEXT)")

app = FastAPI(title="bench floor")


@app.get("/health")
async def read_health() -> dict[str, Any]:
    """Ready once the flag file has been loaded."""
    return {"status": "ok", "initialized": ld_client.is_initialized()}


@app.post("/floor")
async def create_floor(body: FloorRequest) -> dict[str, Any]:
    """Context, three config evaluations inside a compiled graph, one SQLite commit."""
    builder = Context.builder(body.user_id).kind("user")
    for name, value in body.user_context.items():
        builder.set(name, value)
    context = builder.build()
    state = await graph.ainvoke({"message": body.message},
                                context=FloorContext(ld_context=context))
    request_id = uuid.uuid4().hex
    db.execute("INSERT INTO requests VALUES (?, ?, ?, ?)",
               (request_id, time.time(), body.user_id, ",".join(state["models"])))
    return {"request_id": request_id, "models": state["models"]}


@app.post("/echo")
async def create_echo(body: dict[str, Any]) -> dict[str, Any]:
    """The body back: FastAPI parsing and serialisation only."""
    return body
