"""Hostile input end to end: nothing raw reaches the support model, the response or the store.

Four messages of every family of tests/data/pii_adversarial.jsonl (56, values split across
turns sent as history plus message) go through /chat under the basic (US paid) and strict
(DE paid) policies; the support model's inputs are captured as it receives them.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

import agents.support as support
from utils.settings import get_settings

CORPUS = Path(__file__).resolve().parents[1] / "data" / "pii_adversarial.jsonl"
POLICIES = {"basic": {"country": "US", "plan": "paid"},
            "strict": {"country": "DE", "plan": "paid"}}
STRICT_ONLY_TYPES = {"LOCATION", "ORGANIZATION", "JOB_TITLE", "DATE_OF_BIRTH",
                     "REFERENCE_NUMBER"}


def _messages() -> list[dict]:
    rows = [json.loads(line) for line in CORPUS.read_text("utf-8").splitlines() if line]
    picked: dict[str, list[dict]] = {}
    for row in rows:
        if len(picked.setdefault(row["family"], [])) < 4:
            picked[row["family"]].append(row)
    return [row for family in picked.values() for row in family]


MESSAGES = _messages()


def _needles(row: dict, policy: str) -> list[str]:
    """Every form in which a value could leak: as typed, plain, and its digits."""
    out = []
    for e in row["entities"]:
        if policy == "basic" and e["type"] in STRICT_ONLY_TYPES:
            continue
        raw = row["turns"][e["turn"]][e["start"]:e["end"]]
        out += [raw.casefold(), e["value"].casefold()]
        digits = re.sub(r"\D", "", e["value"])
        if len(digits) >= 7:
            out.append(digits)
    return out


def _leaks(text: str, needles: list[str]) -> list[str]:
    folded, digits = text.casefold(), re.sub(r"\D", "", text)
    return [n for n in needles if n in folded or (n.isdigit() and n in digits)]


@pytest.fixture
def support_inputs(monkeypatch) -> list[str]:
    """Everything the support agent is invoked with, as text."""
    seen: list[str] = []
    original = support._AgentCache.get

    def get(self, *args, **kwargs):
        agent = original(self, *args, **kwargs)

        class Recording:
            async def ainvoke(self, inputs, *a, **k):
                seen.extend(str(m.content) for m in inputs["messages"])
                return await agent.ainvoke(inputs, *a, **k)

        return Recording()

    monkeypatch.setattr(support._AgentCache, "get", get)
    return seen


def test_the_adversarial_set_is_large_enough():
    assert len(MESSAGES) >= 45 and len({r["family"] for r in MESSAGES}) >= 14


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_nothing_raw_reaches_support_the_response_or_the_store(client, support_inputs,
                                                               policy) -> None:
    leaked = []
    for i, row in enumerate(MESSAGES):
        *history, message = row["turns"]
        support_inputs.clear()
        response = client.post("/chat", json={
            "user_id": f"adv-{policy}-{i}", "message": message,
            "history": [{"role": "user", "content": t} for t in history],
            "user_context": POLICIES[policy]})
        assert response.status_code == 200, response.text
        data = response.json()
        assert not data["refused"] and data["route"] == "security", row["family"]
        assert support_inputs, "the support model was never called"
        needles = _needles(row, policy)
        for where, text in (("support", "\n".join(support_inputs)),
                            ("response", data["response"])):
            if _leaks(text, needles):
                leaked.append((row["family"], where, _leaks(text, needles)))
    assert leaked == []
    with sqlite3.connect(get_settings().events_db) as conn:
        dump = "\n".join(conn.iterdump()).casefold()
    stored = [n for row in MESSAGES for n in _needles(row, policy) if n in dump]
    assert stored == []


@pytest.mark.parametrize("user_id", ["maria.g@acme.de", "+49 170 1234567",
                                     "user-maria%40acme.de", "ｍａｒｉａ＠ａｃｍｅ．ｄｅ"])
def test_a_user_id_with_pii_is_a_422_naming_the_field_and_stores_nothing(client, user_id):
    response = client.post("/chat", json={"user_id": user_id, "message": "What is PPO?"})
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any("user_id" in e["loc"] and "personal data" in e["msg"] for e in errors)
    feedback = client.post("/feedback", json={"request_id": "r1", "user_id": user_id,
                                              "kind": "positive"})
    assert feedback.status_code == 422
    with sqlite3.connect(get_settings().events_db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 0


@pytest.mark.parametrize(("context", "named"), [
    ({"country": "US", "plan": "paid", "email": "x"}, "email"),
    ({"country": "US", "notes": "call me on +44 20 7946 0958"}, "notes"),
    ({"country": "US", "plan": "maria.g@acme.de"}, "plan"),
    ({"country": "US", "region": "x" * 65}, "region"),
    ({"country": "US", "plan": {"nested": "value"}}, "plan"),
])
def test_user_context_outside_the_allow_list_is_a_422_naming_it(client, context, named):
    response = client.post("/chat", json={"user_id": "u-ctx", "message": "What is PPO?",
                                          "user_context": context})
    assert response.status_code == 422
    assert any("user_context" in e["loc"] and (named in e["msg"] or named in e["loc"])
               for e in response.json()["detail"])


def test_stored_context_holds_only_allowed_attributes(client, monkeypatch):
    monkeypatch.setenv("USER_CONTEXT_ATTRIBUTES", "language")
    get_settings.cache_clear()
    response = client.post("/chat", json={
        "user_id": "u-ctx2", "message": "What is PPO?",
        "user_context": {"country": "US", "plan": "paid", "language": "en"}})
    assert response.status_code == 200
    with sqlite3.connect(get_settings().events_db) as conn:
        stored = {json.loads(r[0]) == {"country": "US", "plan": "paid", "language": "en"}
                  for r in conn.execute("SELECT context_json FROM requests UNION ALL "
                                        "SELECT context_json FROM exposures")}
    assert stored == {True}
