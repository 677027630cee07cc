"""Topics for simulated traffic, extracted from the knowledge base and cached per KB hash.

Live (a provider key is set): a chat model reads the KB's titles and headings and returns at
least 20 topics through structured output. Offline: keyphrases from the documents' titles,
section headings and salient (TF-IDF) terms. Either way the list is cached under
`DATA_DIR/topics/` keyed by the KB's content hash, so a changed KB gives fresh topics.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from tools.traffic.llm import live_provider, make_chat_model
from utils.knowledge.sections import KBSection, clean_heading, load_kb_sections
from utils.settings import Settings, get_settings

log = logging.getLogger(__name__)

MIN_LIVE_TOPICS = 20
TopicSource = Literal["llm", "offline"]

# Headings that name document furniture rather than a subject a user would ask about.
_GENERIC_HEADINGS = {
    "summary", "introduction", "overview", "conclusion", "conclusions", "references",
    "further reading", "key takeaways", "takeaways", "exercises", "history", "notes",
    "glossary", "see also", "background", "examples", "example", "in practice",
    "practical tips", "common pitfalls", "pitfalls", "where to go next", "next steps",
}
_GENERIC_PREFIXES = ("a worked example", "worked example", "common pitfalls", "a brief history",
                     "pitfalls", "further reading", "summary", "glossary")


@dataclass(frozen=True)
class Topic:
    """A subject users ask about, with the document it comes from."""

    name: str
    doc_id: str
    title: str
    terms: tuple[str, ...] = field(default_factory=tuple)


def kb_hash(kb_dir: Path) -> str:
    """SHA-256 over the KB's file names and contents (first 16 hex digits)."""
    from utils.knowledge.documents import iter_kb_files

    digest = hashlib.sha256()
    for path in iter_kb_files(kb_dir):
        digest.update(path.relative_to(kb_dir).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _salient_phrases(sections: list[KBSection], per_doc: int) -> dict[str, list[str]]:
    """Per document, the bold-marked terms it defines, most document-specific first.

    Authors bold the terms a section introduces ("the **return**"), which makes far better
    keyphrases than raw TF-IDF n-grams over text full of formulas. Specificity is the term's
    count in the document divided by the number of documents that mention it.
    """
    bold: dict[str, list[str]] = {}
    text_by_doc: dict[str, str] = {}
    for section in sections:
        bold.setdefault(section.doc_id, []).extend(
            clean_heading(m) for m in re.findall(r"\*\*([^*\n]{3,60})\*\*", section.text))
        text_by_doc[section.doc_id] = text_by_doc.get(section.doc_id, "") + "\n" + section.text
    lowered = {d: t.lower() for d, t in text_by_doc.items()}
    result: dict[str, list[str]] = {}
    for doc_id, terms in bold.items():
        scored: dict[str, float] = {}
        for term in terms:
            key = term.lower()
            if key in scored or (len(key) < 4 and " " not in key):  # "max", "kl": noise
                continue
            doc_freq = sum(1 for t in lowered.values() if key in t) or 1
            scored[key] = lowered[doc_id].count(key) / doc_freq
        result[doc_id] = sorted(scored, key=lambda k: -scored[k])[:per_doc]
    return result


# Words a topic cannot end on (a cut phrase: "better than or equal to"), words that start a
# clause rather than a subject ("Comparing DDPG and SAC"), and tails that mark an example.
_DANGLING = {"to", "of", "with", "for", "than", "and", "or", "a", "an", "the", "in", "on",
             "beyond"}
_CLAUSE_STARTS = {"how", "what", "why", "when", "where", "which", "is", "are", "do", "does",
                  "can", "should", "comparing", "measuring", "choosing", "solving", "training",
                  "treating", "missing", "ignoring", "using", "mixing", "ordering"}
_EXAMPLE_TAILS = {"intuition", "example", "examples"}
# Formula characters: "p(s', r | s, a)" is notation, not something a user names.
_FORMULA = re.compile(r"[|=\\^_{}$']")
# A lowercase defined term longer than this is a phrase from a list, not a term.
_MAX_TERM_WORDS = 4
# Bumped whenever the extraction rules change, so cached topic lists are rebuilt.
TOPICS_VERSION = 2


def topic_candidate(name: str) -> str | None:
    """`name` as a topic a person would ask about, or None when it reads as something else.

    "X: a subtitle" becomes "X" (or the subtitle, when X is "Worked intuition"); formulas,
    clauses, cut phrases, comma lists without a conjunction, adverbs and long phrases go.
    """
    name = " ".join(name.split()).rstrip("?.")
    if ":" in name:
        head, _, tail = (part.strip() for part in name.partition(":"))
        worked = head.lower().startswith(("worked intuition", "worked example"))
        # The subtitle of a worked example names its subject when short ("the small
        # gridworld"); a longer one is a sentence ("the discount factor decides").
        name = (tail if len(tail.split()) <= 3 else "") if worked else head
    words = name.split()
    if len(name) < 3 or not words or _FORMULA.search(name):
        return None
    key = name.lower()
    first, last = words[0].lower(), words[-1].lower()
    if (key in _GENERIC_HEADINGS or key.startswith(_GENERIC_PREFIXES)
            or first in _CLAUSE_STARTS or last in _DANGLING or last in _EXAMPLE_TAILS
            or (len(last) == 1 and len(words) > 1) or re.fullmatch(r"[vq]pi", last)
            or ("," in name and not re.search(r"\b(and|or)\b", name))
            or first.endswith("ly")
            or (len(words) == 1 and key.endswith(("ary", "ous", "ive")))
            or (name == key and len(words) > _MAX_TERM_WORDS)):
        return None
    return name


def _offline_topics(sections: list[KBSection], per_doc_terms: int = 4) -> list[Topic]:
    """Keyphrases: each document's title, its specific headings and its defined terms."""
    docs: dict[str, list[KBSection]] = {}
    for section in sections:
        docs.setdefault(section.doc_id, []).append(section)
    salient = _salient_phrases(sections, per_doc_terms)

    topics: list[Topic] = []
    seen: set[str] = set()

    def add(raw: str, doc_id: str) -> None:
        name = topic_candidate(raw)
        if name is None or name.lower() in seen:
            return
        seen.add(name.lower())
        topics.append(Topic(name, doc_id, docs[doc_id][0].title, tuple(salient[doc_id])))

    for doc_id, doc_sections in docs.items():
        title = doc_sections[0].title
        short_title = re.sub(r"^(what is|what are|an? |the )\s*", "", title, flags=re.I)
        short_title = short_title.partition(":")[0].strip().rstrip("?")
        add(short_title, doc_id)
        for section in doc_sections:
            heading = section.heading
            if heading == title:
                continue
            # A one-word heading ("Selection") only makes sense with its document's subject.
            add(f"{heading} in {short_title}" if len(heading.split()) == 1 else heading, doc_id)
        for phrase in salient[doc_id]:
            add(phrase, doc_id)
    return topics


def _live_topics(sections: list[KBSection], provider: str, settings: Settings,
                 timeout_s: float) -> list[Topic]:
    """Ask a chat model for at least 20 topics users would ask about, as structured output."""
    from pydantic import BaseModel, Field

    class ExtractedTopic(BaseModel):
        name: str = Field(description="a short noun phrase naming the topic")
        doc_id: str = Field(description="the id of the document that covers it best")

    class TopicList(BaseModel):
        topics: list[ExtractedTopic] = Field(min_length=MIN_LIVE_TOPICS)

    outline: dict[str, list[str]] = {}
    titles: dict[str, str] = {}
    for section in sections:
        titles[section.doc_id] = section.title
        outline.setdefault(section.doc_id, []).append(section.heading)
    listing = "\n".join(f"- {doc_id}: {titles[doc_id]} (sections: {'; '.join(heads[:12])})"
                        for doc_id, heads in outline.items())
    prompt = (
        f"Here is the outline of a support knowledge base, one document per line:\n{listing}\n\n"
        f"List at least {MIN_LIVE_TOPICS} distinct topics that users of the support assistant "
        "would ask questions about. Each topic is a short noun phrase covered by the knowledge "
        "base; give the id of the document that covers it best.")
    model = make_chat_model(provider, settings, timeout_s=timeout_s).with_structured_output(TopicList)
    result = model.invoke(prompt)
    topics = [Topic(t.name.strip(), t.doc_id, titles.get(t.doc_id, t.doc_id))
              for t in result.topics if t.name.strip()]
    if len(topics) < MIN_LIVE_TOPICS:
        raise ValueError(f"the model returned {len(topics)} topics, fewer than "
                         f"{MIN_LIVE_TOPICS}")
    return topics


def get_topics(kb_dir: Path | None = None, data_dir: Path | None = None,
               source: TopicSource | None = None, timeout_s: float = 120.0) -> list[Topic]:
    """Topics for the KB: from the cache when the KB is unchanged, else extracted and cached.

    `source` None means live when a provider key is set, offline otherwise. A live extraction
    that fails is logged and replaced by the offline one (traffic must still run).
    """
    settings = get_settings()
    kb_dir = Path(kb_dir or settings.KB_DIR)
    data_dir = Path(data_dir or settings.DATA_DIR)
    provider = live_provider(settings)
    if source is None:
        source = "llm" if provider else "offline"
    cache = data_dir / "topics" / f"topics-v{TOPICS_VERSION}-{kb_hash(kb_dir)}-{source}.json"
    if cache.exists():
        try:
            raw = json.loads(cache.read_text(encoding="utf-8"))
            return [Topic(t["name"], t["doc_id"], t["title"], tuple(t.get("terms", ())))
                    for t in raw["topics"]]
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable topic cache %s (%s); re-extracting", cache, exc)

    sections = load_kb_sections(kb_dir)
    if not sections:
        raise ValueError(f"knowledge-base folder {kb_dir} holds no .md or .txt documents")
    topics: list[Topic] | None = None
    if source == "llm":
        if provider is None:
            raise ValueError("live topic extraction needs OPENAI_API_KEY or ANTHROPIC_API_KEY")
        try:
            topics = _live_topics(sections, provider, settings, timeout_s)
        except Exception as exc:  # noqa: BLE001 - any provider failure falls back
            log.warning("live topic extraction with %s failed (%s); using offline keyphrases",
                        provider, exc)
            source = "offline"
            cache = cache.with_name(cache.name.replace("-llm.json", "-offline.json"))
    if topics is None:
        topics = _offline_topics(sections)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps({"source": source, "topics": [asdict(t) for t in topics]},
                              indent=1), encoding="utf-8")
    tmp.replace(cache)  # atomic: concurrent generators never read half a file
    return topics
