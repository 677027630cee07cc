"""The chat service: one request through the graph, measured and recorded, as a ChatResponse."""

from __future__ import annotations

import logging
import uuid
from functools import partial
from typing import Any

from agents.context import ConfigResolver, PiiDetector, RequestContext
from agents.models import ModelCache
from agents.support import SupportAgentError
from agents.tools.registry import Toolbox
from api.schemas import AgentRunPublic, ChatRequest, ChatResponse, Totals
from utils.flags.client import ConfigFlags, build_context
from utils.providers import priced_model
from utils.settings import Settings
from utils.telemetry import tracing
from utils.telemetry.cost_calculator import PricingTable
from utils.telemetry.event_store import EventStore
from utils.telemetry.instrumentation import RunRecorder

log = logging.getLogger(__name__)


class ChatFailed(RuntimeError):
    """A provider failed while answering; the run was recorded with its error."""

    def __init__(self, request_id: str, message: str) -> None:
        super().__init__(message)
        self.request_id = request_id


class ChatService:
    """Owns the compiled graph and the shared clients; answers one chat request at a time."""

    def __init__(self, *, settings: Settings, flags: ConfigFlags, store: EventStore,
                 graph: Any, pii: PiiDetector, models: ModelCache, tools: Toolbox,
                 pricing: PricingTable) -> None:
        self.settings = settings
        self.flags = flags
        self.store = store
        self.graph = graph
        self.pii = pii
        self.models = models
        self.tools = tools
        self.pricing = pricing

    def close(self) -> None:
        """Flush and close the store and the flag client (server shutdown)."""
        try:
            self.store.close()
        finally:
            self.flags.close()

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """One request through the graph, inside its workflow span when tracing is on."""
        request_id = uuid.uuid4().hex
        with tracing.workflow_span(request_id):
            return await self._chat(request, request_id)

    async def _chat(self, request: ChatRequest, request_id: str) -> ChatResponse:
        attributes = request.user_context.model_dump(exclude_none=True)
        ld_context = build_context(request.user_id, attributes)
        recorder = RunRecorder(
            request_id, request.user_id, attributes, ld_context,
            ld_client=self.flags.client if self.flags.mode == "launchdarkly" else None,
            pricing=self.pricing, price_as=partial(priced_model, settings=self.settings),
        )
        recorder.trace_id, recorder.span_id = tracing.current_ids()
        context = RequestContext(
            request_id=request_id, user_key=request.user_id,
            configs=ConfigResolver(self.flags, ld_context, recorder), models=self.models,
            recorder=recorder, pii=self.pii, tools=self.tools, settings=self.settings,
        )
        state_in = {"message": request.message,
                    "history": [turn.model_dump() for turn in request.history]}
        try:
            state = await self.graph.ainvoke(state_in, context=context)
        except Exception as exc:
            if isinstance(exc, SupportAgentError):
                message = str(exc)
            else:
                log.exception("request %s failed in the graph", request_id)
                message = f"internal error: {type(exc).__name__}"
            await self._record(recorder, status="error",
                               routed=any(r.agent == "security" for r in recorder.runs))
            tracing.annotate(status="error")
            tracing.mark_current_error(type(exc).__qualname__)
            raise ChatFailed(request_id, message) from exc

        route = state.get("route", "security")
        status = "refused" if state.get("refused") else "ok"
        await self._record(recorder, status=status, routed=route == "security")
        tracing.annotate(status=status, route=route)
        runs = [AgentRunPublic.model_validate(run, from_attributes=True) for run in recorder.runs]
        costs = [run.cost_usd for run in runs]
        totals = Totals(
            input_tokens=sum(r.input_tokens for r in runs),
            output_tokens=sum(r.output_tokens for r in runs),
            total_tokens=sum(r.total_tokens for r in runs),
            cost_usd=None if any(c is None for c in costs) else round(sum(costs), 8),
            duration_ms=round(sum(r.duration_ms for r in runs), 3),
        )
        return ChatResponse(
            request_id=request_id, response=state.get("response", ""),
            simulated=any(r.simulated for r in runs), route=route,
            refused=bool(state.get("refused")), agents=runs, totals=totals,
            trace_id=recorder.trace_id,
        )

    async def _record(self, recorder: RunRecorder, *, status: str, routed: bool) -> None:
        # The response is sent only after the store has committed this request.
        await self.store.write(recorder.batch(status=status, routed_to_security=routed))
