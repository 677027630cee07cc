"""Fault injection, hostile input: invalid Unicode, oversized fields and bodies, bad countries.

Every bad input is a 4xx naming the field; a 422 never carries the input back.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from utils.settings import get_settings

SURROGATE = "hi \ud800 there"
EMAIL = "maria.g@acme.de"


def _chat(client: Any, **fields: Any) -> Any:
    body = {"user_id": "u1", "message": "What is Q-learning?",
            "user_context": {"country": "US", "plan": "paid"}, **fields}
    # json.dumps writes the lone surrogate as the escape "\ud800", as a client would send it.
    return client.post("/chat", content=json.dumps(body),
                       headers={"content-type": "application/json"})


@pytest.mark.parametrize("fields, loc", [
    ({"message": SURROGATE}, ["body", "message"]),
    ({"user_id": SURROGATE}, ["body", "user_id"]),
    ({"history": [{"role": "user", "content": SURROGATE}]}, ["body", "history", 0, "content"]),
    ({"user_context": {"country": SURROGATE}}, ["body", "user_context", "country"]),
    ({"user_context": {"country": "US", "team": SURROGATE}}, ["body", "user_context"]),
    ({"user_context": {"country": "US", "\udfff": "x"}}, ["body", "user_context"]),
])
def test_a_lone_surrogate_anywhere_is_a_clean_422(client: Any, fields: dict,
                                                  loc: list) -> None:
    response = _chat(client, **fields)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail[0]["loc"] == loc
    assert "unicode" in detail[0]["msg"].lower() or "surrogate" in detail[0]["msg"]
    response.content.decode("utf-8")  # the answer itself is valid UTF-8


def test_a_lone_surrogate_in_feedback_is_a_clean_422(client: Any) -> None:
    response = client.post("/feedback", content=json.dumps(
        {"request_id": SURROGATE, "user_id": "u1", "kind": "positive"}),
        headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == \
        ["body", "request_id"]


def test_a_422_never_echoes_the_input(client: Any) -> None:
    long_message = f"Please write to {EMAIL}. " + "word " * 3_000  # over the 8,000 limit
    history = [{"role": "user", "content": f"I am {EMAIL} " + "x" * 9_000}] * 25
    for response in (_chat(client, message=long_message), _chat(client, history=history)):
        assert response.status_code == 422
        assert EMAIL not in response.text and "word word" not in response.text
        assert len(response.content) < 2_000
        assert "characters" in response.text or "items" in response.text  # input summarised


# Extra attributes must be allowed by name (USER_CONTEXT_ATTRIBUTES), and then stay bounded.
_EXTRA_NAMES = ",".join([*(f"a{i}" for i in range(21)), "blob", "nested", "tags", "n" * 65])


@pytest.mark.parametrize("context, words", [
    ({"country": "US", **{f"a{i}": i for i in range(21)}}, "more than 20"),
    ({"country": "US", "blob": "x" * 65}, "longer than 64"),
    ({"country": "US", "nested": {"deep": 1}}, "string, number, boolean"),
    ({"country": "US", "tags": ["t"] * 21}, "more than 20 items"),
    ({"country": "US", "n" * 65: 1}, "at most 64"),
    ({"country": "US", "team": "x"}, "not allowed: team"),
    ({"country": "Germany"}, "alpha-2"),
    ({"country": "XX"}, "alpha-2"),
    ({"plan": "p" * 65}, "longer than 64"),
])
def test_user_context_is_bounded(client: Any, monkeypatch: pytest.MonkeyPatch, context: dict,
                                 words: str) -> None:
    monkeypatch.setenv("USER_CONTEXT_ATTRIBUTES", _EXTRA_NAMES)
    get_settings.cache_clear()
    response = _chat(client, user_context=context)
    assert response.status_code == 422, response.text
    assert words in response.json()["detail"][0]["msg"]


def test_country_codes_are_case_insensitive(client: Any) -> None:
    data = _chat(client, message=f"I am Maria, mail {EMAIL}",
                 user_context={"country": " de ", "plan": "paid"}).json()
    security = next(run for run in data["agents"] if run["agent"] == "security")
    assert security["variation_key"] == "strict-security"  # "de" is Germany, in the EU


def test_undeclared_context_attributes_are_refused_and_nothing_is_stored(client: Any) -> None:
    response = _chat(client, user_context={"country": "US", "plan": "paid", "beta": True})
    assert response.status_code == 422
    assert "not allowed: beta" in response.json()["detail"][0]["msg"]
    with sqlite3.connect(get_settings().events_db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 0


@pytest.fixture
def small_body_client(flags_file, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from api.main import create_app

    monkeypatch.setenv("MAX_BODY_BYTES", "2048")
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        yield client


def test_the_body_limit_is_a_setting(small_body_client: Any) -> None:
    fits = _chat(small_body_client, message="x" * 1_500)
    too_big = _chat(small_body_client, message="x" * 2_500)
    assert fits.status_code == 200
    assert too_big.status_code == 413 and "2048 bytes" in too_big.json()["detail"]
