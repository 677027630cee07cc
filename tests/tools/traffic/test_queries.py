"""Query generation: seeded, varied, with an exact PII share; topics from the KB, cached."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools.traffic.queries import COMPLEXITIES, PII_WRAPPERS, generate_queries
from tools.traffic.topics import TOPICS_VERSION, Topic, _offline_topics, get_topics, kb_hash
from utils.knowledge.sections import load_kb_sections

TOPICS = [Topic("Q-learning", "q.md", "Q-learning"), Topic("SARSA", "q.md", "Q-learning"),
          Topic("The Markov property", "mdp.md", "MDPs"), Topic("PPO", "ppo.md", "PPO")]


@pytest.fixture
def tiny_kb(tmp_path):
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "01-bandits.md").write_text(
        "# Multi-Armed Bandits\n\nIntro on **exploration** and **regret**.\n\n"
        "## Epsilon-greedy exploration\n\nPick a random arm with probability epsilon.\n\n"
        "## Thompson sampling\n\nSample from the **posterior** of each arm's value.\n",
        encoding="utf-8")
    (kb / "02-td.md").write_text(
        "# Temporal-Difference Learning\n\n## The TD error\n\nThe **TD error** compares "
        "a bootstrapped target with the estimate.\n\n## Selection\n\nText.\n",
        encoding="utf-8")
    return kb


def test_same_seed_gives_the_same_queries_and_another_seed_does_not():
    first = generate_queries(40, TOPICS, 30, seed=5)
    assert first == generate_queries(40, TOPICS, 30, seed=5)
    assert first != generate_queries(40, TOPICS, 30, seed=6)


@pytest.mark.parametrize("n, pct, expected", [(100, 15, 15), (200, 100, 200), (50, 0, 0),
                                              (7, 50, 4), (0, 50, 0)])
def test_pii_share_is_exactly_the_requested_percentage(n, pct, expected):
    queries = generate_queries(n, TOPICS, pct, seed=1)
    assert len(queries) == n
    assert sum(q.has_pii for q in queries) == expected


def test_pii_queries_hold_realistic_details_of_the_kinds_they_claim():
    queries = [q for q in generate_queries(300, TOPICS, 100, seed=3)]
    kinds = {k for q in queries for k in q.pii_kinds}
    assert kinds == {"name", "email", "phone", "address", "company", "job_title", "credit_card"}
    for q in queries:
        if "email" in q.pii_kinds:
            assert re.search(r"[\w.+-]+@[\w-]+\.\w+", q.text)
        if "credit_card" in q.pii_kinds:
            assert re.search(r"\d{12,19}", q.text.replace(" ", "").replace("-", ""))
    assert all(not q.has_pii for q in generate_queries(50, TOPICS, 0, seed=3))


def test_queries_cover_every_complexity_and_many_phrasings():
    queries = generate_queries(300, TOPICS, 0, seed=11)
    assert {q.complexity for q in queries} == set(COMPLEXITIES)
    assert len({q.text for q in queries}) > 40
    assert all(q.topic in {t.name for t in TOPICS} for q in queries)


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="pii_percentage"):
        generate_queries(5, TOPICS, 150)
    with pytest.raises(ValueError, match="no topics"):
        generate_queries(5, [], 10)


def test_every_pii_wrapper_keeps_the_question():
    for wrapper in PII_WRAPPERS:
        assert "{question}" in wrapper.template


def test_offline_topics_come_from_titles_headings_and_defined_terms(tiny_kb, tmp_path):
    topics = get_topics(tiny_kb, tmp_path / "data", source="offline")
    names = {t.name for t in topics}
    assert {"Multi-Armed Bandits", "Thompson sampling", "The TD error", "posterior"} <= names
    # A one-word heading is qualified by its document's subject.
    assert "Selection in Temporal-Difference Learning" in names
    assert {t.doc_id for t in topics} == {"01-bandits.md", "02-td.md"}


def test_topics_are_cached_per_kb_hash_and_refreshed_when_the_kb_changes(tiny_kb, tmp_path):
    data = tmp_path / "data"
    get_topics(tiny_kb, data, source="offline")
    cache = data / "topics" / f"topics-v{TOPICS_VERSION}-{kb_hash(tiny_kb)}-offline.json"
    assert cache.exists()
    cache.write_text('{"source": "offline", "topics": [{"name": "cached", "doc_id": "x", '
                     '"title": "x"}]}', encoding="utf-8")
    assert [t.name for t in get_topics(tiny_kb, data, source="offline")] == ["cached"]
    (tiny_kb / "03-new.md").write_text("# Reward Shaping\n\n## Potential-based shaping\n\nx\n",
                                       encoding="utf-8")
    names = {t.name for t in get_topics(tiny_kb, data, source="offline")}
    assert "Potential-based shaping" in names and "cached" not in names


def test_the_project_kb_yields_at_least_20_offline_topics():
    sections = load_kb_sections(Path("kb"))
    assert len(_offline_topics(sections)) >= 20


def test_live_topics_come_from_the_model_and_are_cached_separately(tiny_kb, tmp_path,
                                                                    monkeypatch):
    import tools.traffic.topics

    class FakeStructured:
        def __init__(self, schema):
            self.schema = schema

        def invoke(self, prompt):
            assert "Thompson sampling" in prompt  # the model sees the KB outline
            return self.schema(topics=[{"name": f"topic {i}", "doc_id": "01-bandits.md"}
                                       for i in range(25)])

    class FakeModel:
        def with_structured_output(self, schema):
            return FakeStructured(schema)

    monkeypatch.setattr(tools.traffic.topics, "live_provider", lambda settings: "openai")
    monkeypatch.setattr(tools.traffic.topics, "make_chat_model",
                        lambda provider, settings, timeout_s: FakeModel())
    topics = get_topics(tiny_kb, tmp_path / "data", source="llm")
    assert len(topics) == 25 and topics[0].title == "Multi-Armed Bandits"
    assert (tmp_path / "data" / "topics" / f"topics-v{TOPICS_VERSION}-{kb_hash(tiny_kb)}-llm.json").exists()


def test_a_failing_live_extraction_falls_back_to_offline_keyphrases(tiny_kb, tmp_path,
                                                                     monkeypatch):
    import tools.traffic.topics

    def broken(provider, settings, timeout_s):
        raise RuntimeError("no network")

    monkeypatch.setattr(tools.traffic.topics, "live_provider", lambda settings: "openai")
    monkeypatch.setattr(tools.traffic.topics, "make_chat_model", broken)
    names = {t.name for t in get_topics(tiny_kb, tmp_path / "data", source="llm")}
    assert "Thompson sampling" in names


def test_loggable_text_never_holds_the_woven_personal_details():
    from utils.privacy.detector import detect_pii

    queries = generate_queries(200, TOPICS, pii_percentage=100, seed=5)
    for query in queries:
        assert query.question in query.text
        assert query.loggable.startswith("[PII: ")
        assert not detect_pii(query.loggable.split("] ", 1)[1], "basic"), query.loggable


@pytest.mark.parametrize("raw, topic", [
    ("Policies, values and models", "Policies, values and models"),
    ("p(s', r | s, a)", None), ("full-width, one-step", None), ("better than or equal to", None),
    ("Greedy with respect to v", None), ("The Bellman expectation equation for vpi", None),
    ("logarithmically", None), ("nonstationary", None), ("fully cooperative", None),
    ("Comparing DDPG, TD3 and SAC", None), ("Glossary terms A to C", None),
    ("treating time-limit truncations as terminal", None), ("Driving-home intuition", None),
    ("TRPO: a KL-constrained update", "TRPO"), ("Frame stacking: a cheap fix", "Frame stacking"),
    ("Worked intuition: the small gridworld", "the small gridworld"),
    ("Worked intuition: the discount factor decides", None),
    ("Thompson sampling", "Thompson sampling"), ("TD(0) prediction", "TD(0) prediction"),
])
def test_a_topic_is_something_a_person_would_name(raw, topic):
    from tools.traffic.topics import topic_candidate

    assert topic_candidate(raw) == topic


@pytest.mark.parametrize("topic, plural", [
    ("Policies, values and models", True), ("Markov games", True), ("Deep Q-Networks (DQN)", True),
    ("Thompson sampling", False), ("Initial bias", False), ("Q-Learning", False),
    ("Selection in Planning and Monte Carlo Tree Search", False), ("regret", False),
    ("Two kinds of uncertainty", True), ("Off-policy evaluation", False),
])
def test_the_verb_agrees_with_the_topic(topic, plural):
    from tools.traffic.queries import is_plural

    assert is_plural(topic) is plural
    verbs = set()
    for seed in range(60):
        q = generate_queries(1, [Topic(topic, "d.md", "D")], 0, seed=seed)[0]
        verbs |= set(_verbs_before_topic(q))
    assert verbs == ({"are", "do"} if plural else {"is", "does"}), verbs


def _verbs_before_topic(q) -> list[str]:
    """The verbs that directly precede the topic in a question ("What are Markov games")."""
    from tools.traffic.queries import _in_sentence

    return re.findall(rf"\b(is|are|does|do) {re.escape(_in_sentence(q.topic))}(?!\w)",
                      q.question)


def test_questions_over_the_project_kb_read_like_a_person_over_many_seeds():
    from tools.traffic.queries import is_plural

    topics = _offline_topics(load_kb_sections(Path(__file__).resolve().parents[3] / "kb"))
    questions = [q for seed in range(40) for q in generate_queries(100, topics, 0, seed=seed)]
    assert len({q.question for q in questions}) > 1500
    for q in questions:
        text = q.question
        # The two the issue measured, and what made them: notation, singular verbs on lists.
        assert "What is Policies" not in text and "p(s'" not in text, text
        assert not re.search(r"[|=\\^_{}$]", text), text
        assert ":" not in q.topic and not q.topic.lower().endswith((" to", " of", " with")), text
        for verb in _verbs_before_topic(q):
            assert (verb in ("are", "do")) == is_plural(q.topic), text
