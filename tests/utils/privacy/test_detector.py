"""Behaviour of utils.privacy.detector: policies, byte-for-byte safety, fail-closed helpers, corpus scores."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import pytest  # noqa: E402

from utils.privacy import detector as pii  # noqa: E402
from utils.privacy.detector import (  # noqa: E402
    BASIC_TYPES,
    STRICT_TYPES,
    Entity,
    PiiDetectionError,
    count_exposed,
    detect_pii,
    evaluate,
    format_report,
    redact_pii,
    surviving_entities,
    warm_up,
)

CORPUS = Path(__file__).resolve().parents[2] / "data" / "pii_corpus.jsonl"
DONE_WHEN = ("Hi, I'm Maria Gonzalez from Acme GmbH in Munich, card 4111 1111 1111 1111, mail "
             "maria.g@acme.de — how does Q-learning work?")
RAW_VALUES = ["Maria Gonzalez", "Acme GmbH", "Munich", "4111 1111 1111 1111", "maria.g@acme.de"]


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text("utf-8").splitlines() if line]


def test_strict_set_contains_basic_set_and_named_types():
    assert BASIC_TYPES < STRICT_TYPES
    assert {"LOCATION", "ORGANIZATION", "JOB_TITLE", "DATE_OF_BIRTH",
            "REFERENCE_NUMBER"} == STRICT_TYPES - BASIC_TYPES


def test_unknown_policy_raises_value_error_naming_allowed_policies():
    with pytest.raises(ValueError, match="basic, strict"):
        redact_pii("hello", "STRICT")


def test_strict_policy_redacts_name_company_city_card_and_email():
    red = redact_pii(DONE_WHEN, "strict")
    assert red.text == ("Hi, I'm [PERSON] from [ORGANIZATION] in [LOCATION], card [CREDIT_CARD], "
                        "mail [EMAIL] — how does Q-learning work?")
    assert red.types == ["CREDIT_CARD", "EMAIL", "LOCATION", "ORGANIZATION", "PERSON"]
    assert red.policy == "strict"


def test_basic_policy_keeps_company_and_city():
    red = redact_pii(DONE_WHEN, "basic")
    assert red.text == ("Hi, I'm [PERSON] from Acme GmbH in Munich, card [CREDIT_CARD], "
                        "mail [EMAIL] — how does Q-learning work?")


def test_entities_index_into_the_original_text():
    red = redact_pii(DONE_WHEN, "strict")
    assert [DONE_WHEN[e.start:e.end] for e in red.entities] == RAW_VALUES


@pytest.mark.parametrize("text", [
    "How does Q-learning work?",
    "Bellman, Markov, Monte Carlo, Thompson sampling, Bayes, Nash, Gauss, Boltzmann, Dyna, "
    "SARSA, Adam, TD(λ), Watkins, Sutton and Barto.",
    "Richard Bellman coined dynamic programming; see https://arxiv.org/abs/1707.06347 (2017).",
    "pip install torch==2.3.1 costs $0; lr=3e-4, gamma=0.99, step 250000.",
])
def test_rl_vocabulary_passes_byte_for_byte_under_strict(text):
    assert redact_pii(text, "strict").text == text


def test_text_around_entities_is_unchanged():
    text = "  Mail:\tjo+rl@mail.example.org\n(ok?) ü "
    red = redact_pii(text, "basic")
    assert red.text == "  Mail:\t[EMAIL]\n(ok?) ü "


def test_empty_text_has_no_entities():
    assert redact_pii("", "strict").entities == ()


def test_count_exposed_ignores_placeholders():
    assert count_exposed(redact_pii(DONE_WHEN, "strict").text) == 0
    assert count_exposed("[PERSON] [EMAIL] [LOCATION] [ORGANIZATION]") == 0
    assert count_exposed(DONE_WHEN) == 5


def test_count_exposed_counts_what_basic_leaves():
    assert count_exposed(redact_pii(DONE_WHEN, "basic").text) == 2  # company and city


def test_surviving_entities_empty_for_full_redaction():
    entities = detect_pii(DONE_WHEN, "strict")
    assert surviving_entities(DONE_WHEN, entities, redact_pii(DONE_WHEN, "strict").text) == []


def test_security_model_that_leaves_pii_in_is_caught():
    entities = detect_pii(DONE_WHEN, "strict")
    leaky = "Hi, I'm [NAME] from ACME GMBH in [CITY], card 4111-1111-1111-1111, mail [EMAIL]"
    survivors = {DONE_WHEN[e.start:e.end] for e in surviving_entities(DONE_WHEN, entities, leaky)}
    assert survivors == {"Acme GmbH", "4111 1111 1111 1111"}


def test_security_model_error_output_counts_as_leaking_everything():
    entities = detect_pii(DONE_WHEN, "strict")
    assert surviving_entities(DONE_WHEN, entities, None) == entities


def test_detector_error_raises_without_raw_text(monkeypatch, caplog):
    warm_up()
    analyzer = pii._engines[0]

    def explode(*args, **kwargs):
        raise RuntimeError("boom " + DONE_WHEN)

    monkeypatch.setattr(analyzer, "analyze", explode)
    monkeypatch.setattr(pii, "_scan_cache", OrderedDict())  # scan afresh, not from memo
    with caplog.at_level(logging.DEBUG), pytest.raises(PiiDetectionError) as info:
        redact_pii(DONE_WHEN, "strict")
    assert info.value.__cause__ is None and info.value.__context__ is not None
    for raw in RAW_VALUES:
        assert raw not in str(info.value)
        assert raw not in caplog.text


def test_module_never_logs_raw_text(caplog):
    with caplog.at_level(logging.DEBUG):
        redact_pii(DONE_WHEN, "strict")
        detect_pii(DONE_WHEN, "basic")
    assert not any(raw in caplog.text for raw in RAW_VALUES)


def test_detection_is_thread_safe():
    expected = redact_pii(DONE_WHEN, "strict").text
    results: list[str] = []

    def work():
        results.extend(redact_pii(DONE_WHEN, "strict").text for _ in range(20))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 80


def test_entity_is_frozen():
    with pytest.raises(AttributeError):
        Entity("EMAIL", 0, 1).type = "PHONE"


def test_corpus_has_enough_labelled_and_clean_sentences(corpus):
    assert sum(r["kind"] == "pii" for r in corpus) >= 300
    assert sum(r["kind"] == "clean" for r in corpus) >= 100
    for row in corpus:
        for e in row["entities"]:
            assert 0 <= e["start"] < e["end"] <= len(row["text"])


def test_strict_recall_meets_the_issue_thresholds(corpus):
    pii_rows = [r for r in corpus if r["kind"] == "pii"]
    scores = {policy: evaluate(pii_rows, policy) for policy in ("basic", "strict")}
    for policy, table in scores.items():
        print("\n" + format_report(table, policy))
    strict = scores["strict"]
    for t in ("EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN"):
        assert strict[t].recall >= 0.95, (t, strict[t])
    for t in ("PERSON", "LOCATION", "ORGANIZATION"):
        assert strict[t].recall >= 0.85, (t, strict[t])


def test_basic_policy_leaves_locations_organisations_and_titles_alone(corpus):
    kept = total = 0
    for row in corpus:
        spans = [e for e in row["entities"]
                 if e["type"] in ("LOCATION", "ORGANIZATION", "JOB_TITLE")]
        if not spans:
            continue
        found = detect_pii(row["text"], "basic")
        assert not {e.type for e in found} - BASIC_TYPES
        for span in spans:
            total += 1
            kept += not any(e.start < span["end"] and span["start"] < e.end for e in found)
    print(f"\nbasic kept {kept}/{total} location/organisation/title spans intact")
    assert kept / total >= 0.9


def test_false_positives_on_pii_free_sentences_at_most_five_percent(corpus):
    clean = [r for r in corpus if r["kind"] == "clean"]
    flagged = [r["text"] for r in clean if detect_pii(r["text"], "strict")]
    print(f"\nclean sentences flagged under strict: {len(flagged)}/{len(clean)}")
    assert len(flagged) <= 0.05 * len(clean), flagged
    for row in clean:  # what is not PII stays byte-for-byte intact
        if row["text"] not in flagged:
            assert redact_pii(row["text"], "strict").text == row["text"]


def test_repeated_scans_of_one_text_are_memoised_without_keeping_the_text(monkeypatch):
    calls = []
    warm_up()
    analyzer = pii._engines[0]
    original = analyzer.analyze
    monkeypatch.setattr(pii, "_scan_cache", OrderedDict())
    monkeypatch.setattr(analyzer, "analyze", lambda *a, **k: calls.append(1) or original(*a, **k))
    first = redact_pii(DONE_WHEN, "strict")
    assert detect_pii(DONE_WHEN, "basic") and redact_pii(DONE_WHEN, "strict") == first
    assert len(calls) == 1
    assert all(isinstance(key, bytes) and DONE_WHEN.encode() not in key
               for key in pii._scan_cache)


@pytest.mark.parametrize("card", ["4564962313332056013", "676274931069",
                                  "4564 9623 1333 2056 013"])
def test_cards_of_every_iso_length_are_redacted(card):
    redaction = redact_pii(f"I was charged on card {card} for the course.", "basic")
    assert card not in redaction.text and "[CREDIT_CARD]" in redaction.text


def test_long_numbers_failing_luhn_are_not_cards():
    assert not [e for e in detect_pii("Build 4564962313332056014 failed.", "basic")
                if e.type == "CREDIT_CARD"]


def test_every_generated_pii_query_is_detected():
    from tools.traffic.queries import generate_queries
    from tools.traffic.topics import Topic

    topics = [Topic("Q-learning", "q.md", "Q-learning"), Topic("PPO", "ppo.md", "PPO")]
    missed = [q.pii_kinds for q in generate_queries(400, topics, 100, seed=11)
              if not detect_pii(q.text, "strict")]
    assert missed == []
