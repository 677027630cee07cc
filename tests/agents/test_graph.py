"""Routing through the compiled graph: PII → security → support, clean → support, fail closed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agents.context import PresidioPiiDetector
from agents.graph import route_after_supervisor
from api.chat_service import ChatService
from api.composition import build_service
from api.schemas import ChatRequest
from utils.settings import get_settings


class BrokenDetector(PresidioPiiDetector):
    def detect(self, text: str, policy: str):
        raise RuntimeError("detector exploded")

    def redact(self, text: str, policy: str):
        raise RuntimeError("detector exploded")


@pytest.fixture
def make_service(flags_file: Path):
    made = []

    def make(pii=None) -> ChatService:
        service = build_service(get_settings(), pii=pii)
        made.append(service)
        return service

    yield make
    for service in made:
        service.close()


def ask(service: ChatService, message: str, country: str = "US", plan: str = "paid"):
    request = ChatRequest(user_id="u-graph", message=message,
                          user_context={"country": country, "plan": plan})
    return asyncio.run(service.chat(request))


def test_pii_routes_through_security_before_support(make_service) -> None:
    response = ask(make_service(), "My email is jane.doe+rl@example.org, what is TD learning?")
    assert [run.agent for run in response.agents] == ["supervisor", "security", "support"]
    security = response.agents[1]
    assert "EMAIL" in security.pii_types
    assert "jane.doe+rl@example.org" not in security.redacted_text
    assert "[EMAIL]" in security.redacted_text
    assert response.route == "security"


def test_clean_message_goes_straight_to_support(make_service) -> None:
    response = ask(make_service(), "What is the Bellman optimality equation?")
    assert [run.agent for run in response.agents] == ["supervisor", "support"]
    assert response.route == "support"
    assert response.response.strip()


def test_detector_error_routes_to_security_and_never_passes_raw_text(make_service) -> None:
    response = ask(make_service(BrokenDetector()), "Call me at +44 20 7946 0958 about SARSA")
    assert response.route == "security"
    assert response.refused is True  # redaction impossible: refuse rather than leak
    assert [run.agent for run in response.agents] == ["supervisor", "security"]
    assert "+44 20 7946 0958" not in response.response


@pytest.mark.parametrize("route", [None, "Support", "SECURITY", "", "support "])
def test_router_fails_closed_on_anything_but_exact_support(route) -> None:
    assert route_after_supervisor({"route": route}) == "security"
    assert route_after_supervisor({"route": "support"}) == "support"


def test_history_is_sanitized_like_the_message(make_service) -> None:
    service = make_service()
    request = ChatRequest(
        user_id="u-hist", message="And how does SARSA compare?",
        user_context={"country": "US", "plan": "paid"},
        history=[{"role": "user", "content": "I am reachable at bob@example.com"},
                 {"role": "assistant", "content": "Noted."}])
    response = asyncio.run(service.chat(request))
    assert response.route == "security"
    rows = service.store.query("SELECT context_json FROM exposures")
    assert all("bob@example.com" not in row["context_json"] for row in rows)


@pytest.mark.parametrize(("reply_calls", "route"), [
    ([{"name": "RouteDecision", "args": {"needs_security": True}}], "security"),
    ([], "security"),  # the model ignored the forced tool: no decision, fail closed
    ([{"name": "RouteDecision", "args": {"needs_security": "maybe"}}], "security"),
    ([{"name": "RouteDecision", "args": {"needs_security": False}}], "support"),
])
def test_supervisor_model_can_add_the_security_route_never_remove_it(
        make_service, monkeypatch, reply_calls, route) -> None:
    from langchain_core.messages import AIMessage
    from langchain_core.runnables import RunnableLambda

    import agents.supervisor as supervisor

    calls = [{**call, "id": f"c{i}", "type": "tool_call"} for i, call in enumerate(reply_calls)]
    reply = AIMessage("", tool_calls=calls)
    monkeypatch.setattr(supervisor, "_classifier", lambda model: RunnableLambda(lambda _: reply))
    response = ask(make_service(), "What is the Bellman optimality equation?")
    assert response.route == route
