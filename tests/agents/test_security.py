"""The security agent fails closed: a model may redact more, never less."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from agents.context import PresidioPiiDetector, RequestContext
from agents.security import REFUSAL, security_node
from agents.tools.registry import Toolbox
from utils.flags.client import DEFAULT_CONFIGS, SECURITY_CONFIG
from utils.settings import get_settings
from utils.telemetry.cost_calculator import get_pricing_table
from utils.telemetry.instrumentation import RunRecorder

MESSAGE = "I'm Maria Gonzalez, card 4111 1111 1111 1111, mail maria.g@acme.de. What is TD?"
RAW_VALUES = ("Maria Gonzalez", "4111 1111 1111 1111", "maria.g@acme.de")


class FailingModel(FakeListChatModel):
    async def _agenerate(self, *args: Any, **kwargs: Any):
        raise TimeoutError("provider timed out")


class _Models:
    def __init__(self, model) -> None:
        self.model = model

    def get(self, provider: str, model: str, parameters) -> Any:
        return self.model


class _Configs:
    def __init__(self, policy: str) -> None:
        base = DEFAULT_CONFIGS[SECURITY_CONFIG]
        self.config = base.__class__(**{**base.__dict__, "custom": {"pii_policy": policy}})

    def get(self, key: str):
        return self.config


def run_security(model, *, policy: str = "basic", on_error: str = "redact") -> dict:
    """Run the security node alone; its state update plus the runs the recorder kept."""
    settings = get_settings().model_copy(update={"PII_ON_ERROR": on_error})
    recorder = RunRecorder("req-1", "u1", {}, pricing=get_pricing_table())
    context = RequestContext(request_id="req-1", user_key="u1", configs=_Configs(policy),
                             models=_Models(model), recorder=recorder,
                             pii=PresidioPiiDetector(), tools=Toolbox(settings),
                             settings=settings)
    state = {"message": MESSAGE, "history": []}
    update = asyncio.run(security_node(state, SimpleNamespace(context=context)))
    return {**update, "runs": recorder.runs}  # the node's state update and its recorded run


def test_model_that_redacts_more_is_used() -> None:
    stricter = ("I'm [PERSON], card [CREDIT_CARD], mail [EMAIL]. What is [TOPIC]?")
    result = run_security(FakeListChatModel(responses=[stricter]))
    assert result["safe_message"] == stricter


def test_model_that_leaves_pii_in_is_overruled_by_the_floor() -> None:
    result = run_security(FakeListChatModel(responses=[MESSAGE]))
    assert all(raw not in result["safe_message"] for raw in RAW_VALUES)
    assert "[CREDIT_CARD]" in result["safe_message"] and "[EMAIL]" in result["safe_message"]


def test_model_that_drops_a_placeholder_is_overruled() -> None:
    result = run_security(FakeListChatModel(responses=["What is TD?"]))
    assert "[EMAIL]" in result["safe_message"]


def test_model_error_sends_on_the_deterministic_redaction(caplog) -> None:
    with caplog.at_level(logging.DEBUG):
        result = run_security(FailingModel(responses=["unused"]))
    assert all(raw not in result["safe_message"] for raw in RAW_VALUES)
    assert result["runs"][0].success is False
    assert all(raw not in caplog.text for raw in RAW_VALUES)


def test_model_error_refuses_when_configured_to() -> None:
    result = run_security(FailingModel(responses=["unused"]), on_error="refuse")
    assert result["refused"] is True and result["response"] == REFUSAL
    assert result["safe_message"] == ""


@pytest.mark.parametrize("policy, kept", [("basic", True), ("strict", False)])
def test_policy_decides_what_else_is_redacted(policy: str, kept: bool) -> None:
    message = "I work at Acme GmbH in Munich as a data engineer. What is Q-learning?"
    settings = get_settings()
    recorder = RunRecorder("req-2", "u2", {}, pricing=get_pricing_table())
    context = RequestContext(request_id="req-2", user_key="u2", configs=_Configs(policy),
                             models=_Models(FakeListChatModel(responses=["x"])),
                             recorder=recorder, pii=PresidioPiiDetector(), tools=Toolbox(settings),
                             settings=settings)
    result = asyncio.run(security_node({"message": message, "history": []},
                                       SimpleNamespace(context=context)))
    assert ("Munich" in result["safe_message"]) is kept
    assert ("Acme GmbH" in result["safe_message"]) is kept
    assert "Q-learning" in result["safe_message"]


def test_model_that_rewrites_the_request_is_overruled() -> None:
    rewrite = "Please explain temporal-difference learning to a customer of ours in detail."
    result = run_security(FakeListChatModel(responses=[rewrite]))
    assert result["safe_message"] != rewrite
    assert "What is TD?" in result["safe_message"]
