"""The live judge on the wire (OpenAI and Anthropic fakes), and which vendor judges."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.live_app import fake_env, live_settings
from tests.fakes.openai_server import FakeOpenAI
from tools.traffic.judge import LLMJudge, make_judge
from tools.traffic.llm import experiment_arm_providers, judge_provider, make_chat_model
from utils.settings import Settings

VERDICT = {"verdict": "negative", "reason": "it misses the clipping objective"}
QUESTION = "How does PPO keep policy updates small?"
# A long answer whose decisive part comes last: the judge must read all of it.
ANSWER = "PPO is a policy-gradient method. " * 600 + "FINAL: it clips the probability ratio."


def _judge(provider: str, fake, monkeypatch) -> LLMJudge:
    settings = live_settings(monkeypatch, **fake_env(**{provider: fake}))
    return LLMJudge(make_chat_model(provider, settings, timeout_s=10), timeout_s=10)


def test_openai_judge_reads_the_whole_answer_and_returns_its_structured_verdict(monkeypatch):
    with FakeOpenAI(answer=json.dumps(VERDICT)) as fake:
        result = asyncio.run(_judge("openai", fake, monkeypatch).judge(QUESTION, ANSWER))
    assert (result.verdict, result.reason, result.failed) == ("negative", VERDICT["reason"],
                                                              False)
    body = fake.requests[0]["body"]
    assert body["response_format"]["json_schema"]["name"] == "JudgeVerdict"
    sent = body["messages"][-1]["content"]
    assert ANSWER in sent and QUESTION in sent


def test_anthropic_judge_is_forced_to_its_verdict_tool(monkeypatch):
    with FakeAnthropic(tool_call=("JudgeVerdict", VERDICT)) as fake:
        result = asyncio.run(_judge("anthropic", fake, monkeypatch).judge(QUESTION, ANSWER))
    assert result.verdict == "negative" and not result.failed
    body = fake.requests[0]["body"]
    assert body["tool_choice"] == {"type": "tool", "name": "JudgeVerdict"}
    assert ANSWER in json.dumps(body["messages"])


@pytest.mark.parametrize("fault", ["500", "cut", "prose"])
def test_judge_failures_on_the_wire_are_failed_results_not_verdicts(fault, monkeypatch):
    with FakeOpenAI(answer="great answer!" if fault == "prose" else json.dumps(VERDICT)) \
            as fake:
        fake.fail_status = 500 if fault == "500" else None
        fake.cut_after = 2 if fault == "cut" else None
        result = asyncio.run(_judge("openai", fake, monkeypatch).judge(QUESTION, ANSWER))
    assert result.failed and result.error and result.verdict == "none"


def test_experiment_arms_are_read_from_the_manifest():
    # Security Level: Claude Haiku vs Mistral Small; Model comparison: GPT-4o vs Claude Opus.
    assert experiment_arm_providers() == {"anthropic": 2, "mistral": 1, "openai": 1}


def test_auto_judge_prefers_a_vendor_serving_the_fewest_arms():
    all_keys = {"OPENAI_API_KEY": "sk", "ANTHROPIC_API_KEY": "sk-ant", "MISTRAL_API_KEY": "m"}
    assert judge_provider(Settings(LLM_MODE="auto", **all_keys)) == "openai"
    two = {"ANTHROPIC_API_KEY": "sk-ant", "MISTRAL_API_KEY": "m"}
    assert judge_provider(Settings(LLM_MODE="auto", **two)) == "mistral"  # not Claude
    only = Settings(LLM_MODE="auto", ANTHROPIC_API_KEY="sk-ant")
    assert judge_provider(only) == "anthropic"  # the only key: better than no judge
    assert judge_provider(Settings(LLM_MODE="auto")) is None


def test_judge_provider_setting_is_obeyed_and_must_be_live():
    keys = {"OPENAI_API_KEY": "sk", "ANTHROPIC_API_KEY": "sk-ant"}
    chosen = Settings(LLM_MODE="auto", JUDGE_PROVIDER="anthropic", **keys)
    assert judge_provider(chosen) == "anthropic"
    with pytest.raises(ValueError, match="JUDGE_PROVIDER=mistral"):
        judge_provider(Settings(LLM_MODE="auto", JUDGE_PROVIDER="mistral", **keys))


def test_make_judge_names_its_vendor_and_uses_the_judge_model(monkeypatch):
    with FakeAnthropic(tool_call=("JudgeVerdict", VERDICT)) as fake:
        live_settings(monkeypatch, JUDGE_MODEL="claude-sonnet-4-5", **fake_env(anthropic=fake))
        judge = make_judge("llm")
        asyncio.run(judge.judge(QUESTION, "PPO clips the ratio."))
    assert judge.name == "llm (anthropic)"
    assert fake.requests[0]["body"]["model"] == "claude-sonnet-4-5"
