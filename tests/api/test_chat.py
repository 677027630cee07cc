"""POST /chat and GET /health through the HTTP layer."""

from __future__ import annotations

import pytest

from utils.settings import get_settings

US_PAID = {"country": "US", "plan": "paid"}


def test_chat_answers_with_per_agent_details(client) -> None:
    body = {"user_id": "u1", "message": "What is Q-learning?", "user_context": US_PAID}
    response = client.post("/chat", json=body)
    assert response.status_code == 200
    data = response.json()
    assert data["response"].strip() and data["simulated"] is True
    agents = {run["agent"]: run for run in data["agents"]}
    assert set(agents) == {"supervisor", "support"}
    assert agents["support"]["variation_key"] == "other-paid"
    assert agents["supervisor"]["variation_key"] == "supervisor-basic"
    for run in agents.values():
        assert run["input_tokens"] > 0 and run["output_tokens"] > 0
        assert run["total_tokens"] == run["input_tokens"] + run["output_tokens"]
        assert run["duration_ms"] > 0 and run["cost_usd"] > 0
    assert data["totals"]["total_tokens"] == sum(r["total_tokens"] for r in data["agents"])


def test_sarsa_question_is_answered_from_the_kb_with_sources(client) -> None:
    body = {"user_id": "u2", "message": "How does SARSA differ from Q-learning?",
            "user_context": US_PAID}
    support = next(r for r in client.post("/chat", json=body).json()["agents"]
                   if r["agent"] == "support")
    assert {"search_v1", "search_v2"} & set(support["tools_used"])
    assert any("sarsa" in source or "q-learning" in source for source in support["sources"])


def test_email_goes_through_security_and_never_reaches_support(client) -> None:
    body = {"user_id": "u3", "message": "Reach me at maria.g@acme.de - what is a policy?",
            "user_context": US_PAID}
    data = client.post("/chat", json=body).json()
    security = next(r for r in data["agents"] if r["agent"] == "security")
    assert "maria.g@acme.de" not in security["redacted_text"]
    assert "EMAIL" in security["pii_types"]


@pytest.mark.parametrize("body, field", [
    ({"user_id": "u", "message": "   "}, "message"),
    ({"user_id": "u", "message": ""}, "message"),
    ({"user_id": "u", "message": "x" * 8001}, "message"),
    ({"message": "What is Q-learning?"}, "user_id"),
])
def test_bad_input_is_a_422_naming_the_field(client, body, field) -> None:
    response = client.post("/chat", json=body)
    assert response.status_code == 422
    assert any(field in error["loc"] for error in response.json()["detail"])


def test_allow_listed_extra_context_attributes_are_allowed(client, monkeypatch) -> None:
    monkeypatch.setenv("USER_CONTEXT_ATTRIBUTES", "beta_tester, language")
    get_settings.cache_clear()
    body = {"user_id": "u4", "message": "What is an MDP?",
            "user_context": {"country": "US", "plan": "paid", "beta_tester": True}}
    assert client.post("/chat", json=body).status_code == 200


def test_health_reports_flags_llm_mode_and_no_secrets(client, monkeypatch) -> None:
    data = client.get("/health").json()
    assert data["flags"]["mode"] == "local-file" and data["flags"]["flags_file_exists"]
    assert set(data["llm_mode"].values()) == {"simulated"}
    assert "search_v1" in data["tools"]


def test_openapi_docs_are_served(client) -> None:
    assert client.get("/docs").status_code == 200
    assert "/chat" in client.get("/openapi.json").json()["paths"]
