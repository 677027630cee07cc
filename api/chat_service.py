"""The chat service: one request through the graph, measured and recorded, as a ChatResponse."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any

from agents.context import ConfigResolver, ConfigSource, PiiDetector, RequestContext
from agents.graph import GraphCache
from agents.models import ModelCache
from agents.support import SupportAgentError
from agents.tools.registry import Toolbox
from api.graph_metrics import graph_run, record_graph
from api.schemas import AgentRunPublic, ChatRequest, ChatResponse, Totals
from utils.flags.agent_graph import GRAPH_CONFIG
from utils.flags.client import (
    SECURITY_CONFIG,
    SUPERVISOR_CONFIG,
    SUPPORT_CONFIG,
    ConfigFlags,
    build_context,
)
from utils.flags.overrides import ConfigOverrides
from utils.providers import priced_model
from utils.settings import Settings
from utils.telemetry import tracing
from utils.telemetry.cost_calculator import PricingTable
from utils.telemetry.event_store import EventStore, RunMark
from utils.telemetry.instrumentation import ModelUsage, RunRecorder, RunTimer
from utils.telemetry.store_schema import Exposure

log = logging.getLogger(__name__)


_AGENT_OF_CONFIG = {SUPERVISOR_CONFIG: "supervisor", SECURITY_CONFIG: "security",
                    SUPPORT_CONFIG: "support"}
PROVIDER_HEALTH_WINDOW_S = 300.0  # a provider's last failure degrades /health this long


class ChatFailed(RuntimeError):
    """A provider failed while answering (502); the run was recorded with its error."""

    status_code = 502

    def __init__(self, request_id: str, message: str) -> None:
        super().__init__(message)
        self.request_id = request_id


class DeadlineExceeded(ChatFailed):
    """The request ran past REQUEST_DEADLINE_S (504); the unfinished run was recorded."""

    status_code = 504


@dataclass(frozen=True)
class ChatOutcome:
    """A request's response and the graph's final state (what the support agent read)."""

    response: ChatResponse
    state: dict[str, Any]


class ProviderHealth:
    """The last outcome of each provider's model calls, for /health."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, str | None]] = {}  # provider -> (ts, error)
        self._lock = threading.Lock()

    def observe(self, runs: list[Any]) -> None:
        now = time.time()
        with self._lock:
            for run in runs:
                self._last[run.provider] = (now, None if run.success else
                                            f"{run.agent} on {run.model}: {run.error}")

    def problems(self) -> list[str]:
        now = time.time()
        with self._lock:
            return [f"provider {provider}: the last call failed {now - ts:.0f} s ago ({error})"
                    for provider, (ts, error) in sorted(self._last.items())
                    if error is not None and now - ts <= PROVIDER_HEALTH_WINDOW_S]


class ChatService:
    """Owns the compiled graph and the shared clients; answers one chat request at a time."""

    def __init__(self, *, settings: Settings, flags: ConfigFlags, store: EventStore,
                 graphs: GraphCache, pii: PiiDetector, models: ModelCache, tools: Toolbox,
                 pricing: PricingTable) -> None:
        self.settings = settings
        self.flags = flags
        self.store = store
        self.graphs = graphs
        self.pii = pii
        self.models = models
        self.tools = tools
        self.pricing = pricing
        self.providers = ProviderHealth()

    def close(self) -> None:
        """Flush and close the store and the flag client (server shutdown)."""
        try:
            self.store.close()
        finally:
            self.flags.close()

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """One request through the graph, inside its workflow span when tracing is on."""
        return (await self.run(request)).response

    async def run(self, request: ChatRequest, *, configs: ConfigSource | None = None,
                  overrides: ConfigOverrides | None = None, models: ModelCache | None = None,
                  mark: RunMark | None = None) -> ChatOutcome:
        """`chat` with its final state. `configs` replaces the flag client as the source of
        agent configs, `overrides` is applied over what it serves, `models` replaces the model
        cache (another simulator seed) and `mark` records the request as an experiment's run,
        which LaunchDarkly never hears of and online verdicts leave out."""
        request_id = uuid.uuid4().hex
        with tracing.workflow_span(request_id):
            return await self._chat(request, request_id, configs=configs, overrides=overrides,
                                    models=models, mark=mark)

    async def _chat(self, request: ChatRequest, request_id: str, *,
                    configs: ConfigSource | None, overrides: ConfigOverrides | None,
                    models: ModelCache | None, mark: RunMark | None) -> ChatOutcome:
        started = RunTimer()
        # Only declared attributes get this far (country, plan, region and the names in
        # USER_CONTEXT_ATTRIBUTES, each bounded and free of identifiers): safe to store.
        attributes = request.user_context.model_dump(exclude_none=True)
        ld_context = build_context(request.user_id, attributes)
        live_ld = self.flags.mode == "launchdarkly" and mark is None
        recorder = RunRecorder(
            request_id, request.user_id, attributes, ld_context,
            ld_client=self.flags.client if live_ld else None,
            pricing=self.pricing, price_as=partial(priced_model, settings=self.settings),
            track_simulated=self.settings.LD_TRACK_SIMULATED,
        )
        recorder.trace_id, recorder.span_id = tracing.current_ids()
        context = RequestContext(
            request_id=request_id, user_key=request.user_id,
            configs=ConfigResolver(configs or self.flags, ld_context, recorder, overrides),
            models=models or self.models, recorder=recorder, pii=self.pii, tools=self.tools,
            settings=self.settings,
        )
        state_in = {"message": request.message,
                    "history": [turn.model_dump() for turn in request.history]}
        served = self.flags.graph(ld_context)  # the topology, evaluated per request
        # The graph variation is an exposure like an agent config's: topology experiments
        # bucket users by it.
        recorder.exposures.append(Exposure(GRAPH_CONFIG, served.variation_key,
                                           served.in_experiment))
        graph = self.graphs.get(served.topology)  # compiled once per distinct topology
        deadline = asyncio.timeout(self.settings.REQUEST_DEADLINE_S)
        try:
            async with deadline:
                state = await graph.ainvoke(state_in, context=context)
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline.expired():
                message = (f"the request ran past its deadline of "
                           f"{self.settings.REQUEST_DEADLINE_S:g} s (REQUEST_DEADLINE_S)")
                self._finish_unfinished(context, started, message)
                record_graph(recorder, served, success=False)
                await self._record(recorder, status="timeout", routed=_routed(recorder),
                                   mark=mark)
                tracing.annotate(status="timeout")
                tracing.mark_current_error(DeadlineExceeded.__qualname__)
                raise DeadlineExceeded(request_id, message) from exc
            record_graph(recorder, served, success=False)
            routed = _routed(recorder)
            if isinstance(exc, SupportAgentError):
                message = str(exc)
            else:
                log.exception("request %s failed in the graph", request_id)
                message = f"internal error: {type(exc).__name__}"
            await self._record(recorder, status="error", routed=routed, mark=mark)
            tracing.annotate(status="error")
            tracing.mark_current_error(type(exc).__qualname__)
            raise ChatFailed(request_id, message) from exc

        route = state.get("route", "security")
        status = "refused" if state.get("refused") else "ok"
        # The graph events join the agents' rows in the one batch: committed together.
        record_graph(recorder, served, success=True)
        await self._record(recorder, status=status, routed=route == "security", mark=mark)
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
        response = ChatResponse(
            request_id=request_id, response=state.get("response", ""),
            simulated=any(r.simulated for r in runs), route=route,
            refused=bool(state.get("refused")), agents=runs, totals=totals,
            trace_id=recorder.trace_id, graph=graph_run(served, recorder.runs),
        )
        return ChatOutcome(response, dict(state))

    @staticmethod
    def _finish_unfinished(context: RequestContext, started: RunTimer, error: str) -> None:
        """Record the agents whose config was served but whose run the deadline cut short."""
        recorder = context.recorder
        done = {run.config_key for run in recorder.runs}
        for exposure in list(recorder.exposures):
            if exposure.config_key not in done and exposure.config_key in _AGENT_OF_CONFIG:
                recorder.finish_run(context.configs.get(exposure.config_key),
                                    _AGENT_OF_CONFIG[exposure.config_key], started,
                                    ModelUsage(), error=error)

    async def _record(self, recorder: RunRecorder, *, status: str, routed: bool,
                      mark: RunMark | None = None) -> None:
        self.providers.observe(recorder.runs)
        # The response is sent only after the store has committed this request; a store
        # fault raises StoreUnavailable (503), never a 200 for rows that were not written.
        batch = recorder.batch(status=status, routed_to_security=routed)
        batch.mark = mark
        await self.store.write(batch)


def _routed(recorder: RunRecorder) -> bool:
    return any(run.agent == "security" for run in recorder.runs)
