"""Loading and chunking the knowledge base: sizes, boundaries, overlap, stable ids, formats."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from utils.knowledge.documents import (
    ChunkingConfig,
    chunk_document,
    get_knowledge_base,
    load_document,
    load_knowledge_base,
    reset_knowledge_base,
)
from utils.settings import get_settings
from utils.tokens import count_tokens


def _paragraph(topic: str, n: int) -> str:
    # Distinct sentences, so a chunk's text tells which paragraph it came from.
    return " ".join(f"The {topic} sentence number {i} explains one idea about {topic}."
                    for i in range(n))


def _write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture()
def long_doc(tmp_path: Path) -> Path:
    sections = [
        "# Long Guide\n\nA short introduction to the guide.",
        "## Alpha\n\n" + "\n\n".join(_paragraph(f"alpha{i}", 12) for i in range(8)),
        "## Beta\n\n" + _paragraph("beta", 5),
        "### Beta detail\n\n" + _paragraph("betadetail", 6),
        "## Gamma\n\n```python\n# not a heading inside a fence\nx = 1\n```\n\n"
        + "\n\n".join(_paragraph(f"gamma{i}", 10) for i in range(4)),
    ]
    return _write(tmp_path, "guide.md", "\n\n".join(sections))


def test_chunks_stay_within_the_token_budget(long_doc: Path) -> None:
    config = ChunkingConfig(min_tokens=300, max_tokens=500, overlap_tokens=50)
    chunks = chunk_document(load_document(long_doc, long_doc.parent), config)
    assert len(chunks) >= 4
    assert all(c.n_tokens <= config.max_tokens for c in chunks)
    assert all(c.n_tokens == count_tokens(c.text) for c in chunks)
    # Only a document's last chunk, or one closed because the next paragraph would overflow,
    # may fall under the minimum; most must be in the 300-500 band.
    in_band = [c for c in chunks if config.min_tokens <= c.n_tokens <= config.max_tokens]
    assert len(in_band) >= len(chunks) // 2


def test_long_section_continues_with_overlap_from_previous_chunk(long_doc: Path) -> None:
    chunks = chunk_document(load_document(long_doc, long_doc.parent))
    alpha = [c for c in chunks if c.section == "Alpha"]
    assert len(alpha) >= 2
    first, second = alpha[0], alpha[1]
    # The second chunk opens with the last sentence(s) of the first.
    opening = second.text.split("\n\n", 1)[0]
    assert opening and first.text.endswith(opening)
    assert 0 < count_tokens(opening) <= 50


def test_sections_start_new_chunks_and_short_ones_merge_with_their_heading(
        tmp_path: Path) -> None:
    path = _write(tmp_path, "s.md", "\n\n".join([
        "# Sections", "## One", _paragraph("one", 6), "## Two", _paragraph("two", 6),
        "## Three", "Three is short.", "## Four", "```python\n# not a heading\nx = 4\n```"]))
    config = ChunkingConfig(min_tokens=50, max_tokens=120, overlap_tokens=20)
    chunks = chunk_document(load_document(path, tmp_path), config)
    assert [c.section for c in chunks] == ["One", "Two", "Three"]
    # A chunk that starts at a heading carries no overlap from the section before.
    assert chunks[1].text.startswith("The two sentence number 0")
    # "Four" is too short for a chunk of its own: it joins "Three" with its heading, and the
    # commented line inside the code fence is not mistaken for a heading.
    assert chunks[2].text == "Three is short.\n\n## Four\n\n```python\n# not a heading\nx = 4\n```"
    assert all(c.title == "Sections" for c in chunks)


def test_chunk_ids_are_stable_and_local_to_their_document(tmp_path: Path) -> None:
    _write(tmp_path, "a.md", "# A\n\n## One\n\n" + _paragraph("apple", 20))
    _write(tmp_path, "b.md", "# B\n\n## Two\n\n" + _paragraph("banana", 20))
    first = load_knowledge_base(tmp_path)
    again = load_knowledge_base(tmp_path)
    assert [c.chunk_id for c in first.chunks] == [c.chunk_id for c in again.chunks]
    assert first.content_hash == again.content_hash
    assert len({c.chunk_id for c in first.chunks}) == len(first.chunks)
    assert all(c.chunk_id.startswith(f"{c.doc_id}#") for c in first.chunks)

    _write(tmp_path, "b.md", "# B\n\n## Two\n\n" + _paragraph("blueberry", 20))
    edited = load_knowledge_base(tmp_path)
    ids = {c.doc_id: [] for c in edited.chunks}
    for c in edited.chunks:
        ids[c.doc_id].append(c.chunk_id)
    assert ids["a.md"] == [c.chunk_id for c in first.chunks if c.doc_id == "a.md"]
    assert ids["b.md"] != [c.chunk_id for c in first.chunks if c.doc_id == "b.md"]
    assert edited.content_hash != first.content_hash


def test_chunking_rules_are_part_of_the_kb_hash(tmp_path: Path) -> None:
    _write(tmp_path, "a.md", "# A\n\n" + _paragraph("apple", 5))
    default = load_knowledge_base(tmp_path)
    smaller = load_knowledge_base(tmp_path, ChunkingConfig(min_tokens=100, max_tokens=200))
    assert default.content_hash != smaller.content_hash


def test_loads_text_and_skips_readme_hidden_and_unsupported_files(tmp_path: Path) -> None:
    _write(tmp_path, "notes/plain-notes.txt", "Plain text about discount factors.\n\nMore.")
    _write(tmp_path, "README.md", "# How to add documents")
    _write(tmp_path, ".drafts/secret.md", "# Draft")
    _write(tmp_path, "image.png", "not text")
    kb = load_knowledge_base(tmp_path)
    assert [d.doc_id for d in kb.documents] == ["notes/plain-notes.txt"]
    assert kb.documents[0].title == "Plain notes"
    assert kb.chunks[0].section == "Text"
    assert "discount factors" in kb.chunks[0].text


def _minimal_pdf(text: str) -> bytes:
    """A one-page PDF with one line of Helvetica text, offsets computed for a valid xref."""
    stream = zlib.compress(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode())
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def test_loads_pdf_pages_as_sections(tmp_path: Path) -> None:
    (tmp_path / "policy-gradient-notes.pdf").write_bytes(
        _minimal_pdf("REINFORCE uses the log-likelihood trick"))
    kb = load_knowledge_base(tmp_path)
    assert [d.doc_id for d in kb.documents] == ["policy-gradient-notes.pdf"]
    chunk = kb.chunks[0]
    assert chunk.section == "Page 1"
    assert "log-likelihood trick" in chunk.text


def test_broken_file_is_skipped_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    _write(tmp_path, "good.md", "# Good\n\nSome content about rewards.")
    kb = load_knowledge_base(tmp_path)
    assert [d.doc_id for d in kb.documents] == ["good.md"]


def test_missing_folder_error_names_kb_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="KB_DIR"):
        load_knowledge_base(tmp_path / "nope")


def test_process_wide_kb_follows_kb_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    _write(first, "a.md", "# A\n\nalpha")
    _write(second, "b.md", "# B\n\nbeta")
    try:
        monkeypatch.setenv("KB_DIR", str(first))
        get_settings.cache_clear()
        kb = get_knowledge_base(get_settings().KB_DIR)
        assert get_knowledge_base(get_settings().KB_DIR) is kb
        assert [d.doc_id for d in kb.documents] == ["a.md"]
        monkeypatch.setenv("KB_DIR", str(second))
        get_settings.cache_clear()
        assert [d.doc_id for d in get_knowledge_base(get_settings().KB_DIR).documents] == ["b.md"]
    finally:
        get_settings.cache_clear()
        reset_knowledge_base()
