"""The support agent: tools from the variation, bounded by max_tool_calls."""

from __future__ import annotations

from tests.fakes.flagfile import standard_flags, write_flags

US_PAID = {"country": "US", "plan": "paid"}


def test_hitting_the_tool_call_bound_ends_with_a_clear_message(flags_file, monkeypatch) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app

    data = standard_flags()
    data["flags"]["support-agent"]["variations"][4]["model"]["custom"]["max_tool_calls"] = 1
    write_flags(flags_file, data)
    with TestClient(create_app()) as client:
        response = client.post("/chat", json={"user_id": "bound", "message": "What is PPO?",
                                              "user_context": US_PAID})
    assert response.status_code == 200
    body = response.json()
    support = next(r for r in body["agents"] if r["agent"] == "support")
    assert "tool call(s) your plan allows" in body["response"]
    assert support["tools_used"] == []  # the limit blocked both parallel searches


def test_a_partial_budget_runs_the_first_batch_and_stops_before_the_next(flags_file) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app

    # The simulated model searches with both tools in parallel (2 calls), then asks for
    # `reranking` (a 3rd): a budget of 2 lets the searches run and stops before reranking.
    data = standard_flags()
    data["flags"]["support-agent"]["variations"][4]["model"]["custom"]["max_tool_calls"] = 2
    write_flags(flags_file, data)
    with TestClient(create_app()) as client:
        body = client.post("/chat", json={"user_id": "partial", "message": "What is PPO?",
                                          "user_context": US_PAID}).json()
    support = next(r for r in body["agents"] if r["agent"] == "support")
    assert "2 tool call(s) your plan allows" in body["response"]
    assert sorted(support["tools_used"]) == ["search_v1", "search_v2"]
    assert support["success"] is True


def test_unknown_tool_in_a_variation_is_skipped(flags_file) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from tests.fakes.flagfile import ai_variation

    data = standard_flags()
    data["flags"]["support-agent"]["variations"][4] = ai_variation(
        "other-paid", "gpt-4o", "openai", tools=("search_v1", "no_such_tool"),
        custom={"max_tool_calls": 4})
    write_flags(flags_file, data)
    with TestClient(create_app()) as client:
        body = client.post("/chat", json={"user_id": "unknown-tool", "message": "What is PPO?",
                                          "user_context": US_PAID}).json()
    support = next(r for r in body["agents"] if r["agent"] == "support")
    assert support["tools_used"] == ["search_v1"]
