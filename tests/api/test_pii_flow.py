"""The PII done-when: strict for EU paid, basic for US paid, and no raw value at rest."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from utils.settings import get_settings

MARIA = ("Hi, I'm Maria Gonzalez from Acme GmbH in Munich, card 4111 1111 1111 1111, mail "
         "maria.g@acme.de — how does Q-learning work?")
RAW = ("Maria Gonzalez", "Acme GmbH", "Munich", "4111 1111 1111 1111", "maria.g@acme.de")


def _security(data: dict) -> dict:
    return next(run for run in data["agents"] if run["agent"] == "security")


def test_eu_paid_user_gets_strict_redaction(client) -> None:
    data = client.post("/chat", json={"user_id": "maria-eu", "message": MARIA,
                                      "user_context": {"country": "DE", "plan": "paid"}}).json()
    security = _security(data)
    assert security["variation_key"] == "strict-security"
    assert {"PERSON", "ORGANIZATION", "LOCATION", "CREDIT_CARD", "EMAIL"} <= \
        set(security["pii_types"])
    assert all(raw not in security["redacted_text"] for raw in RAW)
    assert data["response"].strip()


def test_us_paid_user_gets_basic_redaction_keeping_company_and_city(client) -> None:
    data = client.post("/chat", json={"user_id": "maria-us", "message": MARIA,
                                      "user_context": {"country": "US", "plan": "paid"}}).json()
    security = _security(data)
    assert security["variation_key"] == "basic-security"
    text = security["redacted_text"]
    assert "Maria Gonzalez" not in text and "4111" not in text and "maria.g@" not in text
    assert "Acme GmbH" in text and "Munich" in text


def test_no_raw_pii_in_logs_or_store(client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        for country in ("DE", "US"):
            chat = client.post("/chat", json={
                "user_id": f"maria-{country}", "message": MARIA,
                "user_context": {"country": country, "plan": "paid"}}).json()
            client.post("/feedback", json={"request_id": chat["request_id"],
                                           "user_id": f"maria-{country}", "kind": "positive"})
    assert all(raw not in caplog.text for raw in RAW)
    with sqlite3.connect(get_settings().events_db) as conn:
        dump = "\n".join(conn.iterdump())
    assert all(raw not in dump for raw in RAW)
    assert "4111111111111111" not in dump


def test_pii_exposed_entities_counts_what_reached_support(client) -> None:
    counts = {}
    for country in ("DE", "US"):
        chat = client.post("/chat", json={"user_id": f"exp-{country}", "message": MARIA,
                                          "user_context": {"country": country,
                                                           "plan": "paid"}}).json()
        with sqlite3.connect(get_settings().events_db) as conn:
            counts[country] = conn.execute(
                "SELECT value FROM events WHERE request_id = ? AND event_key = "
                "'pii_exposed_entities'", (chat["request_id"],)).fetchone()[0]
    assert counts["DE"] == 0  # strict: nothing of the strict set left
    assert counts["US"] >= 2  # basic keeps the company and the city
