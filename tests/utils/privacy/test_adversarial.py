"""PII typed the way people type it: normalisation, new recognizers, split turns, recall."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import pytest  # noqa: E402

from utils.privacy.conversation import detect_turns, family_recall, redact_turns  # noqa: E402
from utils.privacy.detector import detect_pii, redact_pii  # noqa: E402
from utils.privacy.intl_recognizers import iban_is_valid  # noqa: E402
from utils.privacy.normalize import normalize  # noqa: E402

ADVERSARIAL = Path(__file__).resolve().parents[2] / "data" / "pii_adversarial.jsonl"
STRICT_ONLY = ("lowercase_place",)


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [json.loads(line) for line in ADVERSARIAL.read_text("utf-8").splitlines() if line]


def test_corpus_covers_every_family_in_several_locales(rows):
    families = {r["family"] for r in rows}
    assert len(families) >= 14 and len(rows) >= 300
    assert len({r["locale"] for r in rows}) >= 10
    for row in rows:
        for e in row["entities"]:
            assert 0 <= e["start"] < e["end"] <= len(row["turns"][e["turn"]])


@pytest.mark.parametrize("policy", ["basic", "strict"])
def test_recall_per_family_meets_the_issue_thresholds(rows, policy):
    scores = family_recall(rows, policy)
    print(f"\n{policy}: " + ", ".join(f"{f} {c}/{n}" for f, (c, n) in scores.items()))
    direct = {f: s for f, s in scores.items() if f not in STRICT_ONLY}
    assert len(direct) == 13
    for family, (caught, total) in direct.items():
        assert caught / total >= 0.95, (policy, family, caught, total)
    if policy == "strict":
        for family in STRICT_ONLY:
            caught, total = scores[family]
            assert caught / total >= 0.9, (family, caught, total)
    else:
        assert not set(STRICT_ONLY) & set(scores)  # basic does not redact places


@pytest.mark.parametrize(("text", "plain"), [
    ("mail ma\u200bria.g@ac\u200dme.de now", "maria.g@acme.de"),
    ("ｍａｒｉａ＠ａｃｍｅ．ｄｅ", "maria@acme.de"),
    ("go to https://x.io/u/maria%40acme.de?n=maria+gonzalez",
     "go to https://x.io/u/maria@acme.de?n=maria gonzalez"),
    ("maria [at] acme [dot] de", "maria@acme.de"),
    ("maria dot g at acme dot de", "maria.g@acme.de"),
    ("call zero seven seven double zero nine oh one two three four", "call 07700901234"),
    ("plus vier neun drei null eins zwei drei vier", "+49301234"),
    ("电话13812345678", "电话 13812345678"),
    ("4111‐1111‐1111‐1111", "4111-1111-1111-1111"),
])
def test_normalisation_rewrites_the_forms_people_type(text, plain):
    norm = normalize(text)
    assert plain in norm.text
    assert len(norm.starts) == len(norm.ends) == len(norm.text)
    assert all(0 <= s <= e <= len(text) for s, e in zip(norm.starts, norm.ends, strict=True))


@pytest.mark.parametrize("text", [
    "How does Q-learning work at scale?", "I met her at the conference dot com party",
    "Is 100% exploration ever optimal? See https://example.org/a?q=rl+basics",
    "one or two episodes, then three more",
])
def test_normalisation_leaves_plain_text_alone(text):
    assert normalize(text).text == text or not detect_pii(text, "strict")
    assert redact_pii(text, "strict").text == text


@pytest.mark.parametrize(("text", "raw", "kind"), [
    ("mail ma\u200bria.g@acme.de now", "ma\u200bria.g@acme.de", "EMAIL"),
    ("card ４１１１ １１１１ １１１１ １１１１ ok", "４１１１ １１１１ １１１１ １１１１", "CREDIT_CARD"),
    ("write to maria [at] acme [dot] de today", "maria [at] acme [dot] de", "EMAIL"),
    ("see https://x.io/reset?email=maria.g%40acme.de&t=1", "maria.g%40acme.de", "EMAIL"),
    ("call me on zero seven seven zero zero nine zero zero one two three",
     "zero seven seven zero zero nine zero zero one two three", "PHONE"),
])
def test_redaction_maps_back_onto_exactly_the_original_characters(text, raw, kind):
    red = redact_pii(text, "basic")
    assert red.text == text.replace(raw, f"[{kind}]")
    assert [text[e.start:e.end] for e in red.entities] == [raw]


def test_iban_checksum_and_case():
    assert iban_is_valid("de89370400440532013000") and iban_is_valid("GB82WEST12345698765432")
    assert not iban_is_valid("DE89370400440532013001")  # one digit off
    assert not iban_is_valid("DE8937040044053201300")  # wrong length for DE
    assert redact_pii("iban de89 3704 0044 0532 0130 00 please", "basic").text == \
        "iban [IBAN] please"
    assert not detect_pii("iban de89 3704 0044 0532 0130 01 please", "basic")


@pytest.mark.parametrize(("text", "kind"), [
    ("Mein Reisepass: c01x00t47", "PASSPORT"), ("numéro de passeport 12AB34567", "PASSPORT"),
    ("pasaporte n.º XDA123456", "PASSPORT"), ("Мой паспорт 4510 123456", "PASSPORT"),
    ("DNI 12345678Z", "NATIONAL_ID"), ("Personalausweis L01X00T47", "NATIONAL_ID"),
    ("codice fiscale RSSMRA85T10A562S", "NATIONAL_ID"), ("身份证号11010519491231002X", "NATIONAL_ID"),
    ("national insurance number QQ 12 34 56 C", "NATIONAL_ID"),
    ("hi, my name is maria gonzalez", "PERSON"), ("je m'appelle jean dupont", "PERSON"),
    ("меня зовут иван петров", "PERSON"), ("我叫王伟，请问", "PERSON"),
    ("제 이름은 김민준입니다", "PERSON"), ("田中さんに連絡して", "PERSON"),
    ("send it to 10 downing street, london sw1a 2aa", "STREET_ADDRESS"),
    ("Flat 3, 12 Kings Road, Manchester M1 1AE", "STREET_ADDRESS"),
    ("我的手机号是13812345678，谢谢", "PHONE"), ("お電話は090-1234-5678まで", "PHONE"),
])
def test_each_family_is_detected(text, kind):
    assert kind in {e.type for e in detect_pii(text, "basic")}, text


@pytest.mark.parametrize("text", [
    "DNI 12345678A", "iban DE00 1234 5678 9012 3456 78", "my name is not important",
    "thanks, everyone!", "i'm stuck on chapter 3", "the a3 2nd layer", "我是学生",
    "Call the function twice: one two three four five times is too many?",
])
def test_near_misses_are_not_pii(text):
    assert not detect_pii(text, "basic"), text


def test_values_split_across_turns_are_redacted_in_every_turn():
    turns = ["my card is 4111 1111", "1111 1111, and my email is maria.g@", "acme.de"]
    assert [r.text for r in redact_turns(turns, "basic")] == [
        "my card is [CREDIT_CARD]", "[CREDIT_CARD], and my email is [EMAIL]", "[EMAIL]"]
    assert detect_turns(["my passport number is", "C01X00T47"], "basic")[1]
    assert detect_turns(["what is ppo?", "and sarsa?"], "strict") == [[], []]


def test_a_detector_failure_in_a_window_propagates():
    def broken(text, policy):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        redact_turns(["a", "b"], "basic", broken)
