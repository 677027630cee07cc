"""Per-request instrumentation: exposures, one measured record per agent run, custom metrics.

The recorder turns each agent run into event rows for the local store and, in LaunchDarkly
mode, into the AI SDK tracker's calls plus `ld_client.track` for custom metrics. A simulated
run is never sent to LaunchDarkly unless `track_simulated` (LD_TRACK_SIMULATED) allows it, and
then every event of it is marked `simulated: true`. Each tracked run's ldai resumption token is
stored with its exposure, so feedback given later rebuilds the same tracker (same run id,
variation and version). Tracking never raises into the request: a failure is logged and the
answer still goes out.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig

from utils.flags.client import AgentConfig
from utils.telemetry import metrics, tracing
from utils.telemetry.cost_calculator import PricingTable, calculate_cost
from utils.telemetry.event_store import EventRow, Exposure, RequestRecord, WriteBatch

log = logging.getLogger(__name__)


@dataclass
class ModelUsage:
    """Token usage and model time summed over the model calls of one agent run."""

    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    simulated: bool = False
    simulated_latency_ms: float = 0.0  # modelled model time (simulated providers)
    slept_ms: float = 0.0  # the part of it actually slept (SIM_TIME_SCALE)
    ttft_ms: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, message: BaseMessage) -> None:
        if not isinstance(message, AIMessage):
            return
        self.calls += 1
        usage = message.usage_metadata or {}
        self.input_tokens += int(usage.get("input_tokens") or 0)
        self.output_tokens += int(usage.get("output_tokens") or 0)
        meta = message.response_metadata or {}
        if meta.get("simulated"):
            self.simulated = True
            self.simulated_latency_ms += float(meta.get("simulated_latency_ms") or 0.0)
            self.slept_ms += float(meta.get("slept_ms") or 0.0)
            if self.ttft_ms is None and meta.get("time_to_first_token_ms") is not None:
                self.ttft_ms = float(meta["time_to_first_token_ms"])

    def extend(self, messages: Iterable[BaseMessage]) -> None:
        for message in messages:
            self.add(message)


@dataclass
class AgentRun:
    """One agent's run in a request: what the API returns and what the store records."""

    agent: str
    config_key: str
    variation_key: str
    model: str
    provider: str
    in_experiment: bool
    simulated: bool = False
    tools_used: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    duration_ms: float = 0.0
    time_to_first_token_ms: float | None = None
    cost_usd: float | None = None
    success: bool = True
    error: str | None = None
    pii_types: list[str] | None = None
    redacted_text: str | None = None
    sources: list[str] | None = None


class RunTimer(BaseCallbackHandler):
    """Measures an agent run: wall time, minus what a simulator slept, plus its modelled time;
    and, for live models (which stream), the time to the first token of its first model call.

    Pass `timer.config_for(model)` as the config of the run's model or agent call: for a
    streaming model it registers the timer as a callback, so `on_llm_new_token` marks the
    first token; simulated models report a modelled time to first token instead.
    """

    run_inline = True  # called on the event loop, never in a thread pool
    ignore_chain = ignore_agent = ignore_retriever = True

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._first_call: tuple[UUID, float] | None = None  # (run id, start) of the first call
        self.first_token_ms: float | None = None

    def config_for(self, model: Any, config: AgentConfig | None = None) -> RunnableConfig:
        """The config that lets this timer see `model`'s tokens (empty if it does not stream),
        plus, with tracing on, the handler that traces the model and tool calls of `config`."""
        callbacks: list[Any] = [self] if getattr(model, "streaming", False) is True else []
        if config is not None and tracing.active():
            callbacks.append(tracing.model_callbacks(config.provider, config.model,
                                                     config.parameters))
        return {"callbacks": callbacks} if callbacks else {}

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID,
                            **kwargs: Any) -> None:
        if self._first_call is None:
            self._first_call = (run_id, time.perf_counter())

    def on_llm_new_token(self, token: str, *, chunk: Any = None, run_id: UUID,
                         **kwargs: Any) -> None:
        if self._first_call is None or self._first_call[0] != run_id or \
                self.first_token_ms is not None:
            return
        message = getattr(chunk, "message", None)
        # The first chunk often only names the role: wait for text or a tool call.
        if token or getattr(message, "tool_call_chunks", None):
            self.first_token_ms = round((time.perf_counter() - self._first_call[1]) * 1000.0, 3)

    def elapsed_ms(self, usage: ModelUsage) -> float:
        wall = (time.perf_counter() - self._start) * 1000.0
        return max(0.0, wall - usage.slept_ms) + usage.simulated_latency_ms


def _text_of(message: Any) -> str:
    if isinstance(message, str):
        return message
    text = getattr(message, "text", None)
    if isinstance(text, str):
        return text
    content = getattr(message, "content", "")
    return content if isinstance(content, str) else str(content)


class RunRecorder:
    """Collects one request's exposures, agent runs and metrics, then hands them to the store."""

    def __init__(self, request_id: str, user_key: str, context_attributes: dict[str, Any],
                 ld_context: Any = None, ld_client: Any = None, *,
                 pricing: PricingTable,
                 price_as: Callable[[str, str], str | None] | None = None,
                 track_simulated: bool = False) -> None:
        self.track_simulated = track_simulated
        self.request_id = request_id
        self.user_key = user_key
        self.context_attributes = context_attributes
        self.ld_context = ld_context
        self.ld_client = ld_client  # set in LaunchDarkly mode only
        self._pricing = pricing
        # (provider, model) → the name a live run is priced under, None for unpriced
        # (a local server's models: utils.providers.priced_model); None: the model itself.
        self._price_as = price_as
        self.exposures: list[Exposure] = []
        self.events: list[EventRow] = []
        self.runs: list[AgentRun] = []  # the one record of this request's agent runs
        self.trace_id: str | None = None  # the request's trace, when tracing is on
        self.span_id: str | None = None

    def finish_run(self, config: AgentConfig, agent: str, timer: RunTimer, usage: ModelUsage,
                   *, tools_used: list[str] | None = None, error: str | None = None,
                   sent: Iterable[Any] | None = None, **details: Any) -> AgentRun:
        """Measure an agent run, price it, and record it (tracking never raises).

        A failed run stays in the experiment (intent to treat) with its latency and the cost
        of what was sent: when the provider returned no usage, the input tokens of `sent`
        (the messages or texts given to the model) are counted with the o200k tokenizer.
        """
        if error is not None and sent is not None and usage.input_tokens == 0:
            from utils.tokens import count_tokens  # the tokenizer loads only when a run fails

            usage.input_tokens = sum(count_tokens(_text_of(m)) for m in sent)
        run = AgentRun(
            agent=agent, config_key=config.config_key, variation_key=config.variation_key,
            model=config.model, provider=config.provider, in_experiment=config.in_experiment,
            simulated=usage.simulated, tools_used=list(tools_used or []),
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens, duration_ms=round(timer.elapsed_ms(usage), 3),
            time_to_first_token_ms=(usage.ttft_ms if usage.ttft_ms is not None
                                    else timer.first_token_ms),
            cost_usd=self._cost(config, usage),
            success=error is None, error=error, **details,
        )
        self.track_run(run, config)
        try:
            tracing.record_agent_run(run, config.parameters)
        except Exception:
            log.exception("tracing failed for %s in request %s", agent, self.request_id)
        return run

    def _cost(self, config: AgentConfig, usage: ModelUsage) -> float | None:
        """Dollar cost of a run; None only when tokens went to a model without a price."""
        if usage.input_tokens == 0 and usage.output_tokens == 0:
            return 0.0  # nothing sent or received: nothing billed, priced or not
        name = config.model if self._price_as is None or usage.simulated else \
            self._price_as(config.provider, config.model)
        if name is None:
            return None
        return calculate_cost(name, usage.input_tokens, usage.output_tokens, table=self._pricing)

    def record_exposure(self, config: AgentConfig) -> None:
        self.exposures.append(Exposure(config.config_key, config.variation_key,
                                       config.in_experiment))

    def track_run(self, run: AgentRun, config: AgentConfig) -> None:
        """Record an agent run's values; never raises."""
        self.runs.append(run)
        try:
            rows = [
                (metrics.DURATION_TOTAL, run.duration_ms),
                (metrics.TOKENS_TOTAL, run.total_tokens),
                (metrics.TOKENS_INPUT, run.input_tokens),
                (metrics.TOKENS_OUTPUT, run.output_tokens),
                (metrics.GENERATION_SUCCESS if run.success else metrics.GENERATION_ERROR, 1),
                (metrics.COST_PER_REQUEST, run.cost_usd),
            ]
            if run.time_to_first_token_ms is not None:
                rows.append((metrics.TIME_TO_FIRST_TOKEN, run.time_to_first_token_ms))
            rows += [(metrics.TOOL_CALL, 1) for _ in run.tools_used]
            self.events += [self._row(key, value, run) for key, value in rows]
            self._send_to_launchdarkly(run, config)
        except Exception:
            log.exception("tracking failed for %s in request %s", run.agent, self.request_id)

    def track_metric(self, event_key: str, value: float, run: AgentRun) -> None:
        """A custom metric (e.g. `pii_exposed_entities`) attributed to an agent run."""
        try:
            self.events.append(self._row(event_key, value, run))
            if self.ld_client is not None and self._tracks(run):
                client, context = tracking_target(self.ld_client, self.ld_context,
                                                  run.simulated)
                client.track(event_key, context, _track_data(run), value)
        except Exception:
            log.exception("tracking %s failed in request %s", event_key, self.request_id)

    def _row(self, event_key: str, value: float | None, run: AgentRun) -> EventRow:
        return EventRow(event_key, None if value is None else float(value), run.config_key,
                        run.variation_key, run.agent, run.model, run.provider, run.simulated)

    def _tracks(self, run: AgentRun) -> bool:
        """Whether this run's values go to LaunchDarkly (a simulated one only when allowed)."""
        return not run.simulated or self.track_simulated

    def _send_to_launchdarkly(self, run: AgentRun, config: AgentConfig) -> None:
        if self.ld_client is None or config.tracker_factory is None or not self._tracks(run):
            return
        from ldai.tracker import LDAIConfigTracker, TokenUsage

        if run.simulated:  # the same tracker, whose events all say they are simulated
            client, context = tracking_target(self.ld_client, self.ld_context, True)
            tracker = LDAIConfigTracker(
                ld_client=client, run_id=str(uuid.uuid4()), config_key=config.config_key,
                variation_key=config.variation_key, version=config.version, context=context,
                model_name=config.model, provider_name=config.provider)
        else:
            tracker = config.tracker_factory()
        self._remember_tracker(config.config_key, tracker.resumption_token, run.simulated)
        tracker.track_duration(int(run.duration_ms))
        if run.time_to_first_token_ms is not None:
            tracker.track_time_to_first_token(int(run.time_to_first_token_ms))
        tracker.track_tokens(TokenUsage(total=run.total_tokens, input=run.input_tokens,
                                        output=run.output_tokens))
        if run.tools_used:
            tracker.track_tool_calls(run.tools_used)
        if run.success:
            tracker.track_success()
        else:
            tracker.track_error()
        if run.cost_usd is not None:
            client, context = tracking_target(self.ld_client, self.ld_context, run.simulated)
            client.track(metrics.COST_PER_REQUEST, context, _track_data(run), run.cost_usd)

    def _remember_tracker(self, config_key: str, token: str, simulated: bool) -> None:
        """Keep the run's resumption token on its exposure, for feedback given later."""
        for i, exposure in enumerate(self.exposures):
            if exposure.config_key == config_key and exposure.tracker_token is None:
                self.exposures[i] = replace(exposure, tracker_token=token,
                                            tracker_simulated=simulated)
                return

    def batch(self, *, status: str, routed_to_security: bool) -> WriteBatch:
        return WriteBatch(
            request_id=self.request_id, user_key=self.user_key,
            context=self.context_attributes, exposures=list(self.exposures),
            events=list(self.events), request_status=status,
            routed_to_security=routed_to_security,
            simulated=any(run.simulated for run in self.runs),
            trace_id=self.trace_id, span_id=self.span_id,
        )


def _track_data(run: AgentRun) -> dict[str, Any]:
    return {"configKey": run.config_key, "variationKey": run.variation_key,
            "modelName": run.model, "providerName": run.provider, "agent": run.agent}


def feedback_batch(request_id: str, user_key: str, kind: str, source: str,
                   exposures: list[dict[str, Any]]) -> WriteBatch:
    """One feedback: a `feedback` row plus an event per config served in the request."""
    event_key = metrics.FEEDBACK_EVENT_KEYS[kind]
    events = [EventRow(event_key, 1.0, e["config_key"], e["variation_key"], None, None, None,
                       False) for e in exposures]
    return WriteBatch(request_id=request_id, user_key=user_key, events=events,
                      feedback=(kind, source))


class _MarkedSimulated:
    """Passes `track` calls on with `simulated: true` added to their data."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def track(self, event_name: str, context: Any, data: Any = None,
              metric_value: Any = None) -> None:
        marked = {**data, "simulated": True} if isinstance(data, dict) else {
            "simulated": True, "data": data}
        self._client.track(event_name, context, marked, metric_value)


def tracking_target(ld_client: Any, context: Any, simulated: bool) -> tuple[Any, Any]:
    """The client and context to track with: for a simulated run, both marked (event data and
    a `simulated` context attribute, so LaunchDarkly results can be sliced by it)."""
    if not simulated:
        return ld_client, context
    from ldclient import Context

    return _MarkedSimulated(ld_client), Context.builder_from_context(context).set(
        "simulated", True).build()


def send_feedback_to_launchdarkly(flags: Any, record: RequestRecord, kind: str) -> int:
    """The AI SDK's feedback event on the tracker of each run the request tracked, rebuilt
    from its resumption token (same run id, variation and version). Returns how many were
    sent; never raises."""
    sent = 0
    try:
        from ldai.tracker import FeedbackKind, LDAIConfigTracker

        from utils.flags.client import build_context

        context = build_context(record.user_key, record.context)
        feedback = {"kind": FeedbackKind.Positive if kind == "positive" else FeedbackKind.Negative}
        for exposure in record.exposures:
            token = exposure.get("tracker_token")
            if not token:  # not tracked: local mode, or a simulated run kept out of LD
                continue
            if exposure.get("tracker_simulated"):
                client, marked = tracking_target(flags.client, context, True)
                result = LDAIConfigTracker.from_resumption_token(token, client, marked)
            else:
                result = flags.ai_client.create_tracker(token, context)
            if not result.is_success():
                log.warning("feedback for %s/%s not sent: %s", record.request_id,
                            exposure["config_key"], result.error)
                continue
            result.value.track_feedback(feedback)
            sent += 1
    except Exception:
        log.exception("sending feedback to LaunchDarkly failed for %s", record.request_id)
    return sent
