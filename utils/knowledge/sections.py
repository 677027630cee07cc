"""A knowledge base read as heading-delimited sections (for topic extraction and judging)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from utils.knowledge.documents import iter_kb_files, load_document

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KBSection:
    """One heading-delimited section of a KB document."""

    doc_id: str
    title: str
    heading: str
    text: str


def clean_heading(text: str) -> str:
    """A heading without Markdown emphasis, numbering or trailing punctuation."""
    text = re.sub(r"[`*_]", "", text).strip()
    text = re.sub(r"^\d+(\.\d+)*[.)]?\s+", "", text)  # "3.2 Foo" -> "Foo"
    return text.rstrip(":?.!").strip()


def load_kb_sections(kb_dir: Path) -> list[KBSection]:
    """Every KB document's sections, read by the app's own KB loader (Markdown, text, PDF)."""
    sections: list[KBSection] = []
    for path in iter_kb_files(kb_dir):
        try:
            doc = load_document(path, kb_dir)
        except Exception as exc:  # noqa: BLE001 - one unreadable file must not stop traffic
            log.warning("skipping knowledge-base file %s: %s", path, exc)
            continue
        title = clean_heading(doc.title)
        for heading_path, body in doc.sections:
            # "Parent › Child" -> "Child"; the intro section is about the document itself.
            heading = clean_heading(heading_path.split(" › ")[-1])
            if heading.lower() in ("introduction", "text") or not heading:
                heading = title
            sections.append(KBSection(doc.doc_id, title, heading, body))
    return sections
