"""Deterministic PII detection and redaction with two policies, `basic` and `strict`.

Built on Presidio: an `AnalyzerEngine` with the no-op NLP engine (no spaCy model, no network)
and only the recognizers of `utils.privacy.catalog`, plus the anonymizer's `replace` operator.
Each text is scanned as typed and, when `utils.privacy.normalize` changes it (NFKC,
zero-width characters, URL escapes, "at"/"dot" forms, spelled-out digits), once more in its
normalised form, with those detections mapped back onto the original characters.
Replacements name the type (`[EMAIL]`, `[PERSON]`); everything else stays byte-for-byte.
Nothing here logs or raises with raw text in it: messages carry types, counts and offsets only.

Run `python -m utils.privacy.detector --report` for per-type recall/precision on the labelled corpus.
"""

from __future__ import annotations

import os

# tldextract (used by Presidio's email check) must never try to download the suffix list.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import hashlib  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
from collections import OrderedDict  # noqa: E402
from collections.abc import Iterable  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from utils.privacy.normalize import normalize  # noqa: E402
from utils.privacy.placeholders import placeholder  # noqa: E402

log = logging.getLogger(__name__)

BASIC_TYPES: frozenset[str] = frozenset({
    "EMAIL", "PHONE", "US_SSN", "CREDIT_CARD", "IBAN", "IP_ADDRESS", "PERSON",
    "STREET_ADDRESS", "PASSPORT", "NATIONAL_ID", "DRIVER_LICENSE"})
STRICT_TYPES: frozenset[str] = BASIC_TYPES | frozenset({
    "LOCATION", "ORGANIZATION", "JOB_TITLE", "DATE_OF_BIRTH", "REFERENCE_NUMBER"})
POLICIES: dict[str, frozenset[str]] = {"basic": BASIC_TYPES, "strict": STRICT_TYPES}
ALL_TYPES = STRICT_TYPES

# When two detections overlap, the more specific type wins ties on score.
_PRIORITY = {t: i for i, t in enumerate((
    "EMAIL", "IBAN", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "PASSPORT", "NATIONAL_ID",
    "DRIVER_LICENSE",
    "DATE_OF_BIRTH", "PHONE", "STREET_ADDRESS", "REFERENCE_NUMBER", "ORGANIZATION", "PERSON",
    "JOB_TITLE", "LOCATION"))}


class PiiDetectionError(RuntimeError):
    """The detector failed; callers must fail closed (treat the text as containing PII)."""


@dataclass(frozen=True)
class Entity:
    """One detected PII span: `text[start:end]` in the original text is of `type`."""

    type: str
    start: int
    end: int
    score: float = 1.0


@dataclass(frozen=True)
class Redaction:
    """A redacted text, the entities found in the original, and the policy applied."""

    text: str
    entities: tuple[Entity, ...]
    policy: str

    @property
    def types(self) -> list[str]:
        """Sorted unique entity types that were redacted."""
        return sorted({e.type for e in self.entities})


_WORDS = re.compile(r"\w+")
_lock = threading.Lock()
_engines: tuple | None = None


def _policy_types(policy: str) -> frozenset[str]:
    try:
        return POLICIES[policy]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown PII policy {policy!r}; use one of: {', '.join(sorted(POLICIES))}"
        ) from None


def warm_up() -> None:
    """Build the analyzer and anonymizer once and compile every pattern; idempotent, thread-safe."""
    global _engines
    if _engines is not None:
        return
    with _lock:
        if _engines is not None:
            return
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
        from presidio_analyzer.nlp_engine import NoOpNlpEngine
        from presidio_anonymizer import AnonymizerEngine
        from presidio_anonymizer.entities import OperatorConfig

        from utils.privacy.catalog import build_recognizers

        nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
        nlp.load()
        registry = RecognizerRegistry(supported_languages=["en"])
        for recognizer in build_recognizers():
            registry.add_recognizer(recognizer)

        class _NoContextEnhancer(ContextAwareEnhancer):
            # The default lemma enhancer is inert without an NLP model yet deep-copies every
            # result (~1 ms a call); our recognizers check their own cue words instead.
            def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers,
                                      context=None):
                return raw_results

        analyzer = AnalyzerEngine(
            registry=registry, nlp_engine=nlp, supported_languages=["en"],
            context_aware_enhancer=_NoContextEnhancer(0, 0, 0, 0))
        operators = {t: OperatorConfig("replace", {"new_value": placeholder(t)})
                     for t in ALL_TYPES}
        anonymizer = AnonymizerEngine()
        # Compile every lazily compiled pattern now, before requests share the recognizers.
        analyzer.analyze("warm up 555-0100 a@b.co Maria in Berlin", language="en")
        _engines = (analyzer, anonymizer, operators)
        log.info("PII analyzer ready with %d recognizers", len(registry.recognizers))


def _resolve_overlaps(candidates: Iterable[Entity]) -> list[Entity]:
    """Keep non-overlapping spans: higher score first, then longer, then the more specific type."""
    ranked = sorted(candidates, key=lambda e: (-e.score, -(e.end - e.start),
                                               _PRIORITY.get(e.type, 99), e.start))
    kept: list[Entity] = []
    for entity in ranked:
        if all(entity.end <= k.start or entity.start >= k.end for k in kept):
            kept.append(entity)
    return sorted(kept, key=lambda e: e.start)


_SCAN_CACHE_SIZE = 2048
_scan_cache: OrderedDict[bytes, tuple[Entity, ...]] = OrderedDict()
_scan_lock = threading.Lock()


def _detect_all(text: str) -> list[Entity]:
    """All entities of `text`, memoised by the text's digest.

    One request asks about the same text several times (routing, redaction with the served
    policy, exposure count); the cache keeps only digests and offsets, never the text.
    """
    key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    with _scan_lock:
        cached = _scan_cache.get(key)
        if cached is not None:
            _scan_cache.move_to_end(key)
            return list(cached)
    found = _scan(text)
    with _scan_lock:
        _scan_cache[key] = tuple(found)
        if len(_scan_cache) > _SCAN_CACHE_SIZE:
            _scan_cache.popitem(last=False)
    return found


def _scan(text: str) -> list[Entity]:
    warm_up()
    analyzer = _engines[0]
    try:
        results = [(r, None) for r in analyzer.analyze(text, language="en")]
        norm = normalize(text)
        if norm.text != text:
            results += [(r, norm) for r in analyzer.analyze(norm.text, language="en")]
    except Exception as exc:  # fail closed: the caller decides, but never sees raw text
        raise PiiDetectionError(
            f"PII detector failed ({type(exc).__name__}) on a {len(text)}-character text"
        ) from None
    # Overlaps are resolved across all types before the policy filter, so a company name
    # that contains a surname stays one ORGANIZATION span (kept as is by the basic policy).
    return _resolve_overlaps(
        Entity(r.entity_type, *(norm.span(r.start, r.end) if norm else (r.start, r.end)),
               round(float(r.score), 3))
        for r, norm in results if r.entity_type in ALL_TYPES and r.end > r.start)


def detect_pii(text: str, policy: str) -> list[Entity]:
    """Entities of the policy's types in `text`, sorted by start, non-overlapping.

    Raises ValueError for an unknown policy and PiiDetectionError if the detector fails.
    """
    types = _policy_types(policy)
    if not isinstance(text, str):
        raise TypeError(f"detect_pii expects str text, got {type(text).__name__}")
    if not text:
        return []
    return [e for e in _detect_all(text) if e.type in types]


def redact_pii(text: str, policy: str) -> Redaction:
    """Replace every entity of the policy's types with `[TYPE]`; other bytes stay intact."""
    entities = detect_pii(text, policy)
    if not entities:
        return Redaction(text=text, entities=(), policy=policy)
    from presidio_anonymizer.entities import RecognizerResult

    _, anonymizer, operators = _engines
    results = [RecognizerResult(e.type, e.start, e.end, e.score) for e in entities]
    redacted = anonymizer.anonymize(text=text, analyzer_results=results, operators=operators)
    return Redaction(text=redacted.text, entities=tuple(entities), policy=policy)


def surviving_entities(original_text: str, entities: Iterable[Entity],
                       candidate_text: str) -> list[Entity]:
    """Detected entities whose raw value still appears in `candidate_text` (fail closed).

    Words are compared case-insensitively with punctuation ignored, and numbers by their
    digits, so "4111 1111 1111 1111" also survives as "4111-1111-1111-1111". A candidate
    that is not a string counts as leaking everything.
    """
    entities = list(entities)
    if not isinstance(candidate_text, str):
        return entities
    words = f" {' '.join(_WORDS.findall(candidate_text.casefold()))} "
    digits = "".join(ch for ch in candidate_text if ch.isdigit())
    survivors = []
    for entity in entities:
        raw = original_text[entity.start:entity.end]
        raw_digits = "".join(ch for ch in raw if ch.isdigit())
        needle = " ".join(_WORDS.findall(raw.casefold()))
        if not needle or f" {needle} " in words or (len(raw_digits) >= 5 and raw_digits in digits):
            survivors.append(entity)
    return survivors


def identifier_pii_types(value: str) -> list[str]:
    """Sorted types of the direct identifiers (the basic set) in a key or attribute value.

    Used to refuse user ids and context attributes that would carry PII into the store and
    into LaunchDarkly contexts; the detector's fail-closed error propagates.
    """
    return sorted({e.type for e in detect_pii(value, "basic")}) if value else []


def count_exposed(text: str) -> int:
    """Number of strict-set entities in `text`; `[TYPE]` placeholders do not count."""
    return len(detect_pii(text, "strict")) if text else 0


@dataclass(frozen=True)
class TypeScore:
    """Span-overlap counts for one entity type on a labelled corpus."""

    tp: int = 0
    fn: int = 0
    fp: int = 0

    @property
    def recall(self) -> float:
        """Share of labelled spans that a detection of the same type overlaps (1.0 if none)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def precision(self) -> float:
        """Share of detections that overlap a labelled span of the same type (1.0 if none)."""
        hits = self.tp + self.fp
        return (hits - self.fp) / hits if hits else 1.0


def evaluate(rows: Iterable[dict], policy: str) -> dict[str, TypeScore]:
    """Per-type scores of `detect_pii` on rows shaped like tests/data/pii_corpus.jsonl."""
    types = _policy_types(policy)
    counts: dict[str, list[int]] = {t: [0, 0, 0] for t in sorted(types)}
    for row in rows:
        found = detect_pii(row["text"], policy)
        gold = [g for g in row["entities"] if g["type"] in types]
        for g in gold:
            hit = any(e.type == g["type"] and e.start < g["end"] and g["start"] < e.end
                      for e in found)
            counts[g["type"]][0 if hit else 1] += 1
        for e in found:
            if not any(e.type == g["type"] and e.start < g["end"] and g["start"] < e.end
                       for g in gold):
                counts[e.type][2] += 1
    return {t: TypeScore(*c) for t, c in counts.items()}


def format_report(scores: dict[str, TypeScore], policy: str) -> str:
    """A fixed-width recall/precision table."""
    lines = [f"policy={policy}", f"{'type':18s} {'n':>4s} {'recall':>7s} {'precision':>9s}"]
    for t, s in scores.items():
        lines.append(f"{t:18s} {s.tp + s.fn:4d} {s.recall:7.3f} {s.precision:9.3f}")
    return "\n".join(lines)


def _main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(description="PII detector report on a labelled corpus.")
    parser.add_argument("--report", action="store_true", help="print per-type recall/precision")
    parser.add_argument("--corpus", default=str(
        Path(__file__).resolve().parents[2] / "tests" / "data" / "pii_corpus.jsonl"))
    args = parser.parse_args(argv)
    if not args.report:
        parser.print_help()
        return 0
    rows = [json.loads(line) for line in Path(args.corpus).read_text("utf-8").splitlines() if line]
    for policy in sorted(POLICIES):
        print(format_report(evaluate([r for r in rows if r["kind"] == "pii"], policy), policy))
        clean = [r for r in rows if r["kind"] == "clean"]
        flagged = sum(bool(detect_pii(r["text"], policy)) for r in clean)
        print(f"clean sentences flagged: {flagged}/{len(clean)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
