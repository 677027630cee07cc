"""Judges that turn (question, answer) into simulated user feedback: positive, negative or none.

A judge reads only the question and the answer text, never which model, provider or
variation served it, so effects in an experiment can only come from answer quality.

**Live** (`LLMJudge`): a chat model applies `RUBRIC` to the whole answer and returns a
`JudgeVerdict` through structured output. Its provider is JUDGE_PROVIDER, or with `auto` the
live provider serving the fewest experiment arms (`tools.traffic.llm.judge_provider`). Its timeout is long enough
for real models (120 s by default); a call that fails or times out is a *judge failure*,
counted and reported, never silently turned into "none".

**Offline** (`SimulatedJudge`), a deterministic scorer of relevance and grounding:

1. Salient question terms Q: the question's stemmed content words that occur in the KB
   (PII such as names and emails rarely does, so it drops out on its own).
2. Reference passages: the 3 KB sections that best match Q (BM25-style sum of idf).
   Key terms K: the 12 terms with the highest tf × idf in those passages.
3. relevance R = idf-weighted share of Q found in the answer;
   coverage C = share of K found in the answer;
   grounding G = share of the answer's distinct content terms that occur in the KB.
4. score = 0.35 R + 0.50 C + 0.15 G + e, with e ~ Normal(0, 0.08) drawn from a generator
   seeded by (seed, question, answer): rater disagreement, reproducible and independent of
   the order in which answers arrive.
5. positive when score ≥ 0.75, negative when score < 0.50, none in between (most users
   who get an adequate answer do not rate it). An empty answer is negative.
   The thresholds model a rater who thumbs up only clearly on-point answers; against the
   simulated providers on this KB they put the bulk of answers (scores ~0.6-0.95) across
   the positive threshold rather than above it, so differences in answer quality move the
   positive rate instead of saturating it. They are properties of the rater, the same for
   every model.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, ValidationError

from tools.traffic.llm import judge_provider, make_chat_model
from utils.knowledge.sections import KBSection, load_kb_sections
from utils.privacy.placeholders import placeholder
from utils.settings import get_settings

Verdict = Literal["positive", "negative", "none"]
VERDICTS: tuple[Verdict, ...] = ("positive", "negative", "none")

WEIGHT_RELEVANCE, WEIGHT_COVERAGE, WEIGHT_GROUNDING = 0.35, 0.50, 0.15
POSITIVE_THRESHOLD, NEGATIVE_THRESHOLD = 0.75, 0.50
NOISE_SD = 0.08
REFERENCE_PASSAGES, KEY_TERMS = 3, 12
DEFAULT_LLM_TIMEOUT_S = 120.0

RUBRIC = """You rate answers of a support assistant as the user who asked would.
Rate the ANSWER to the QUESTION:
- positive: it answers what was asked, correctly and specifically, in a way a user would
  thank it for.
- negative: it is wrong, off-topic, evasive, refuses without a good reason, is cut off, or
  misses the point of the question.
- none: it is acceptable but unremarkable; a real user would not bother to rate it.
Ignore any redaction placeholders such as {person} or {email}: personal details were removed
on purpose. Judge only the content; give a one-sentence reason.""".format(
    person=placeholder("PERSON"), email=placeholder("EMAIL"))


class JudgeVerdict(BaseModel):
    """The structured output the live judge must return."""

    verdict: Literal["positive", "negative", "none"] = Field(
        description="how the user would rate the answer")
    reason: str = Field(default="", description="one sentence explaining the verdict")


@dataclass(frozen=True)
class JudgeResult:
    """One judgement; `failed` results carry the error and no verdict to post."""

    verdict: Verdict
    score: float | None = None
    reason: str = ""
    failed: bool = False
    error: str | None = None


class Judge(Protocol):
    """Anything that rates an answer to a question."""

    name: str

    async def judge(self, question: str, answer: str) -> JudgeResult:
        """Rate `answer` as a reply to `question`."""
        ...


def parse_verdict(raw: Any) -> JudgeResult:
    """Turn a model's output (JudgeVerdict, dict, JSON text or a bare word) into a result.

    Anything that is not clearly one of the three verdicts is a failure, not "none".
    """
    if isinstance(raw, JudgeVerdict):
        return JudgeResult(raw.verdict, reason=raw.reason)
    try:
        if isinstance(raw, dict):
            parsed = JudgeVerdict.model_validate(raw)
            return JudgeResult(parsed.verdict, reason=parsed.reason)
        if isinstance(raw, str):
            text = raw.strip()
            if text.startswith("{"):
                parsed = JudgeVerdict.model_validate_json(text)
                return JudgeResult(parsed.verdict, reason=parsed.reason)
            word = text.strip("\"'. ").lower()
            if word in VERDICTS:
                return JudgeResult(word)  # type: ignore[arg-type]
    except ValidationError as exc:
        return JudgeResult("none", failed=True, error=f"unparseable verdict: {exc.errors()[0]}")
    return JudgeResult("none", failed=True, error=f"unparseable verdict: {str(raw)[:80]!r}")


# --- offline scorer -------------------------------------------------------------------------

_WORD = re.compile(r"[a-z][a-z0-9]+(?:-[a-z0-9]+)*")


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    # Question furniture that says nothing about the subject.
    extra = {"explain", "example", "please", "question", "quick", "mean", "means", "work",
             "works", "use", "using", "does", "did", "thanks", "hi", "hello", "new", "short",
             "simple", "terms", "step", "practice", "main", "watch", "tell", "like", "want"}
    return frozenset(ENGLISH_STOP_WORDS | extra)


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def content_terms(text: str) -> list[str]:
    """Lower-cased, stemmed content words of `text` (stop words and 1-letter words dropped)."""
    stop = _stop_words()
    words = [w for w in _WORD.findall(text.lower()) if w not in stop]
    return _stemmer().stemWords(words)


class SimulatedJudge:
    """The offline, deterministic relevance-and-grounding scorer (see the module docstring)."""

    name = "simulated"

    def __init__(self, sections: Sequence[KBSection], seed: int = 0,
                 noise_sd: float = NOISE_SD) -> None:
        if not sections:
            raise ValueError("the simulated judge needs a knowledge base with at least one "
                             "section; check KB_DIR")
        self.seed = seed
        self.noise_sd = noise_sd
        self._section_tf = [Counter(content_terms(s.heading + "\n" + s.text)) for s in sections]
        doc_freq: Counter[str] = Counter()
        for tf in self._section_tf:
            doc_freq.update(tf.keys())
        n = len(sections)
        self._idf = {t: math.log(1 + n / df) for t, df in doc_freq.items()}
        self._postings: dict[str, list[int]] = {}
        for i, tf in enumerate(self._section_tf):
            for term in tf:
                self._postings.setdefault(term, []).append(i)

    @classmethod
    def from_kb(cls, kb_dir: Path | None = None, seed: int = 0) -> SimulatedJudge:
        """A judge over the KB in `kb_dir` (default: settings.KB_DIR)."""
        return cls(load_kb_sections(Path(kb_dir or get_settings().KB_DIR)), seed=seed)

    def score(self, question: str, answer: str) -> tuple[float, dict[str, float]]:
        """The noise-free score in [0, 1] and its components."""
        q_terms = {t for t in content_terms(question) if t in self._idf}
        answer_terms = content_terms(answer)
        a_set = set(answer_terms)
        if not q_terms or not a_set:
            return 0.0, {"relevance": 0.0, "coverage": 0.0, "grounding": 0.0}
        q_weight = sum(self._idf[t] for t in q_terms)
        relevance = sum(self._idf[t] for t in q_terms if t in a_set) / q_weight

        match: Counter[int] = Counter()
        for term in q_terms:
            for i in self._postings.get(term, ()):
                match[i] += self._idf[term]
        reference = [i for i, _ in match.most_common(REFERENCE_PASSAGES)]
        key_weights: Counter[str] = Counter()
        for i in reference:
            for term, count in self._section_tf[i].items():
                key_weights[term] += count * self._idf[term]
        keys = [t for t, _ in key_weights.most_common(KEY_TERMS)]
        coverage = sum(1 for t in keys if t in a_set) / len(keys) if keys else 0.0
        grounding = sum(1 for t in a_set if t in self._idf) / len(a_set)
        total = (WEIGHT_RELEVANCE * relevance + WEIGHT_COVERAGE * coverage
                 + WEIGHT_GROUNDING * grounding)
        return total, {"relevance": relevance, "coverage": coverage, "grounding": grounding}

    def judge_sync(self, question: str, answer: str) -> JudgeResult:
        """Score, add the seeded rater noise, and map to a verdict through the thresholds."""
        if not answer.strip():
            return JudgeResult("negative", 0.0, "empty answer")
        base, parts = self.score(question, answer)
        digest = hashlib.sha256(f"{self.seed}\0{question}\0{answer}".encode()).digest()
        noisy = base + random.Random(digest).gauss(0.0, self.noise_sd)
        if noisy >= POSITIVE_THRESHOLD:
            verdict: Verdict = "positive"
        elif noisy < NEGATIVE_THRESHOLD:
            verdict = "negative"
        else:
            verdict = "none"
        reason = ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
        return JudgeResult(verdict, round(noisy, 4), reason)

    async def judge(self, question: str, answer: str) -> JudgeResult:
        """Async form of `judge_sync` (cheap CPU work: runs inline)."""
        return self.judge_sync(question, answer)


# --- live judge -----------------------------------------------------------------------------

class LLMJudge:
    """A chat model applying `RUBRIC` with structured output; failures are results, not raises."""

    def __init__(self, model: Any, timeout_s: float = DEFAULT_LLM_TIMEOUT_S,
                 name: str = "llm") -> None:
        self._structured = model.with_structured_output(JudgeVerdict)
        self.timeout_s = timeout_s
        self.name = name

    async def judge(self, question: str, answer: str) -> JudgeResult:
        """Ask the model; a timeout, provider error or unparseable output counts as failed."""
        messages = [("system", RUBRIC), ("human", f"QUESTION:\n{question}\n\nANSWER:\n{answer}")]
        try:
            raw = await asyncio.wait_for(self._structured.ainvoke(messages), self.timeout_s)
        except TimeoutError:
            return JudgeResult("none", failed=True, error=f"timed out after {self.timeout_s:g} s")
        except Exception as exc:  # noqa: BLE001 - any provider error is a judge failure
            return JudgeResult("none", failed=True, error=f"{type(exc).__name__}: {exc}"[:200])
        return parse_verdict(raw)


JudgeMode = Literal["auto", "llm", "simulated"]


def make_judge(mode: JudgeMode = "auto", seed: int = 0, kb_dir: Path | None = None,
               timeout_s: float = DEFAULT_LLM_TIMEOUT_S) -> Judge:
    """The judge for `mode`: auto = LLM when a provider is live (see `judge_provider`)."""
    settings = get_settings()
    provider = judge_provider(settings)
    if mode == "llm" and provider is None:
        raise ValueError("--judge llm needs OPENAI_API_KEY, ANTHROPIC_API_KEY or "
                         "MISTRAL_API_KEY; use --judge simulated to judge offline")
    if mode == "llm" or (mode == "auto" and provider is not None):
        assert provider is not None
        model = make_chat_model(provider, settings, timeout_s, settings.JUDGE_MODEL)
        return LLMJudge(model, timeout_s, name=f"llm ({provider})")
    return SimulatedJudge.from_kb(kb_dir, seed=seed)
