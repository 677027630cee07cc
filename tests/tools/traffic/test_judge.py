"""The judges: verdict parsing, failures counted not hidden, the offline scorer's behaviour."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from tools.traffic.judge import (
    NEGATIVE_THRESHOLD,
    POSITIVE_THRESHOLD,
    JudgeVerdict,
    LLMJudge,
    SimulatedJudge,
    make_judge,
    parse_verdict,
)
from utils.knowledge.sections import KBSection

SECTIONS = [
    KBSection("bandits.md", "Exploration", "Thompson sampling",
              "Thompson sampling keeps a Beta posterior over each arm's success probability, "
              "samples a value from every posterior and pulls the arm with the highest sample. "
              "Posterior uncertainty drives exploration and regret grows logarithmically."),
    KBSection("bandits.md", "Exploration", "Epsilon-greedy",
              "Epsilon-greedy picks a random arm with probability epsilon and the greedy arm "
              "otherwise. A constant epsilon gives linear regret."),
    KBSection("td.md", "TD learning", "The TD error",
              "The temporal-difference error compares the bootstrapped target reward plus "
              "discounted next value with the current estimate of the state value."),
]
QUESTION = "How does Thompson sampling choose which arm to pull?"
GOOD = ("Thompson sampling keeps a Beta posterior for each arm, samples a value from every "
        "posterior and pulls the arm with the highest sample; posterior uncertainty drives "
        "exploration, so regret grows only logarithmically.")
VAGUE = "Thompson sampling is one way to choose an arm."
OFF_TOPIC = "Our office is closed on public holidays; please contact billing for invoices."


@pytest.mark.parametrize("raw, verdict", [
    (JudgeVerdict(verdict="positive", reason="ok"), "positive"),
    ({"verdict": "negative", "reason": "wrong"}, "negative"),
    ('{"verdict": "none"}', "none"),
    ("Positive.", "positive"),
])
def test_well_formed_outputs_parse_to_their_verdict(raw, verdict):
    result = parse_verdict(raw)
    assert not result.failed and result.verdict == verdict


@pytest.mark.parametrize("raw", ["great answer!", {"verdict": "maybe"}, '{"verdict": 1}', None])
def test_unclear_outputs_are_failures_not_silent_nones(raw):
    result = parse_verdict(raw)
    assert result.failed and result.error


class _FakeModel:
    """Stands in for a LangChain chat model: with_structured_output returns a runnable."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.schema = None
        self.messages = None

    def with_structured_output(self, schema):
        self.schema = schema
        return self

    async def ainvoke(self, messages):
        self.messages = messages
        return await self.behaviour()


async def test_llm_judge_returns_the_structured_verdict_and_sends_the_rubric():
    async def answer():
        return JudgeVerdict(verdict="positive", reason="specific and correct")

    model = _FakeModel(answer)
    result = await LLMJudge(model).judge(QUESTION, GOOD)
    assert model.schema is JudgeVerdict
    assert result.verdict == "positive" and not result.failed
    assert "positive" in model.messages[0][1] and QUESTION in model.messages[1][1]


async def test_llm_judge_timeouts_and_errors_are_counted_as_failures():
    async def slow():
        await asyncio.sleep(5)

    async def broken():
        raise RuntimeError("rate limited")

    timed_out = await LLMJudge(_FakeModel(slow), timeout_s=0.01).judge(QUESTION, GOOD)
    errored = await LLMJudge(_FakeModel(broken)).judge(QUESTION, GOOD)
    assert timed_out.failed and "timed out" in timed_out.error
    assert errored.failed and "rate limited" in errored.error


def test_llm_judge_default_timeout_is_long_enough_for_real_models():
    assert LLMJudge(_FakeModel(None)).timeout_s >= 60


def test_judges_read_only_the_question_and_the_answer():
    for judge_cls in (SimulatedJudge, LLMJudge):
        params = list(inspect.signature(judge_cls.judge).parameters)
        assert params == ["self", "question", "answer"]


def test_simulated_judge_ranks_grounded_answers_above_vague_and_off_topic_ones():
    judge = SimulatedJudge(SECTIONS, seed=0)
    good, _ = judge.score(QUESTION, GOOD)
    vague, _ = judge.score(QUESTION, VAGUE)
    off, _ = judge.score(QUESTION, OFF_TOPIC)
    assert good > vague > off


def test_thresholds_map_scores_to_positive_none_and_negative():
    judge = SimulatedJudge(SECTIONS, seed=0, noise_sd=0.0)
    assert judge.judge_sync(QUESTION, GOOD).verdict == "positive"
    assert judge.judge_sync(QUESTION, VAGUE).verdict == "negative"
    assert judge.judge_sync(QUESTION, OFF_TOPIC).verdict == "negative"
    assert judge.judge_sync(QUESTION, "  ").verdict == "negative"
    middling = ("Thompson sampling samples from each arm's posterior and pulls the arm with "
                "the highest sample.")
    score = judge.judge_sync(QUESTION, middling).score
    assert POSITIVE_THRESHOLD > score >= NEGATIVE_THRESHOLD
    assert judge.judge_sync(QUESTION, middling).verdict == "none"


def test_simulated_judge_is_deterministic_per_seed_and_noise_varies_with_the_seed():
    a = [SimulatedJudge(SECTIONS, seed=1).judge_sync(QUESTION, VAGUE).score for _ in range(3)]
    assert len(set(a)) == 1
    scores = {SimulatedJudge(SECTIONS, seed=s).judge_sync(QUESTION, VAGUE).score
              for s in range(10)}
    assert len(scores) > 5  # rater disagreement: a seeded noise term


def test_simulated_judge_noise_does_not_depend_on_call_order():
    judge = SimulatedJudge(SECTIONS, seed=4)
    first = judge.judge_sync(QUESTION, VAGUE)
    judge.judge_sync(QUESTION, GOOD)
    assert judge.judge_sync(QUESTION, VAGUE) == first


def test_pii_in_the_question_does_not_change_the_score():
    judge = SimulatedJudge(SECTIONS, seed=0)
    plain, _ = judge.score(QUESTION, GOOD)
    with_pii, _ = judge.score(f"Hi, I'm Jana Novak (jana@example.com). {QUESTION}", GOOD)
    assert with_pii == pytest.approx(plain)


def test_auto_judge_is_simulated_without_keys_and_llm_without_a_key_is_an_error(monkeypatch):
    from utils.settings import get_settings

    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.setenv(key, "")
    get_settings.cache_clear()
    try:
        assert make_judge("auto").name == "simulated"
        with pytest.raises(ValueError, match="--judge llm needs"):
            make_judge("llm")
    finally:
        get_settings.cache_clear()
