"""Knowledge base: load Markdown, plain-text and PDF documents and cut them into cited chunks.

Chunks follow the documents' own structure: a chunk starts at a heading when the one before
has reached `min_tokens`, grows paragraph by paragraph up to `max_tokens`, and a chunk that
continues a section past a paragraph break repeats the tail of the previous one
(`overlap_tokens`) so that a sentence cut at the boundary is still readable in context.
Token counts are real o200k_base counts (`utils.tokens`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from utils.tokens import count_tokens, decode, encode

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".pdf")
# Bump when the chunking rules change, so every cache keyed on the KB hash is rebuilt.
CHUNKER_VERSION = "2"

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`(\"'])")


@dataclass(frozen=True)
class ChunkingConfig:
    """Chunk size rules, in o200k_base tokens."""

    min_tokens: int = 300
    max_tokens: int = 500
    overlap_tokens: int = 50

    def __post_init__(self) -> None:
        if not 0 < self.min_tokens <= self.max_tokens:
            raise ValueError(
                f"chunking needs 0 < min_tokens <= max_tokens, got {self.min_tokens}, "
                f"{self.max_tokens}")
        if not 0 <= self.overlap_tokens < self.min_tokens:
            raise ValueError(
                f"overlap_tokens must be in [0, min_tokens), got {self.overlap_tokens}")


@dataclass(frozen=True)
class Chunk:
    """One retrievable passage with its citation (document, title, section)."""

    chunk_id: str
    doc_id: str
    title: str
    section: str
    text: str
    n_tokens: int
    ordinal: int

    @property
    def search_text(self) -> str:
        """What the indexes see: title and section add the words a heading carries."""
        return f"{self.title}\n{self.section}\n{self.text}"


@dataclass(frozen=True)
class Document:
    """A loaded source file: `doc_id` is its path relative to the KB folder."""

    doc_id: str
    title: str
    sections: tuple[tuple[str, str], ...]  # (section heading path, body text)
    content_hash: str
    n_tokens: int


@dataclass
class KnowledgeBase:
    """Documents and their chunks, with a hash of everything that shapes the chunks."""

    root: Path
    documents: list[Document]
    chunks: list[Chunk]
    content_hash: str
    config: ChunkingConfig = field(default_factory=ChunkingConfig)

    @property
    def n_tokens(self) -> int:
        return sum(d.n_tokens for d in self.documents)

    def chunk_by_id(self) -> dict[str, Chunk]:
        return {c.chunk_id: c for c in self.chunks}

    def titles(self) -> dict[str, str]:
        return {d.doc_id: d.title for d in self.documents}


# --------------------------------------------------------------------------- loading

def _humanize(stem: str) -> str:
    words = re.sub(r"^\d+[-_ ]*", "", stem).replace("_", " ").replace("-", " ").strip()
    return (words or stem)[:1].upper() + (words or stem)[1:]


def _split_markdown(text: str, fallback_title: str) -> tuple[str, list[tuple[str, str]]]:
    """Title (first H1) and (heading path, body) sections; headings inside code fences ignored."""
    title = ""
    sections: list[tuple[str, str]] = []
    path: list[tuple[int, str]] = []
    current: list[str] = []
    in_fence = False

    def flush() -> None:
        body = "\n".join(current).strip()
        if body:
            sections.append((" › ".join(h for _, h in path), body))
        current.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            current.append(line)
            continue
        level, heading = len(match.group(1)), match.group(2).strip()
        flush()
        if level == 1 and not title:
            title = heading
            path = []
            continue
        # An H1 after the title behaves like a top-level section.
        path = [(lvl, h) for lvl, h in path if lvl < level] + [(level, heading)]
    flush()
    title = title or fallback_title
    return title, [(section or "Introduction", body) for section, body in sections]


def _read_pdf(path: Path) -> tuple[str, list[tuple[str, str]]]:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    meta_title = (reader.metadata.title if reader.metadata else None) or ""
    sections = []
    for number, page in enumerate(reader.pages, start=1):
        text = (page.extract_text() or "").strip()
        if text:
            sections.append((f"Page {number}", text))
    return meta_title.strip() or _humanize(path.stem), sections


def load_document(path: Path, root: Path) -> Document:
    """Read one supported file into a `Document` (raises ValueError on an unsupported type)."""
    suffix = path.suffix.lower()
    doc_id = path.relative_to(root).as_posix()
    raw = path.read_bytes()
    if suffix in (".md", ".markdown"):
        title, sections = _split_markdown(raw.decode("utf-8", errors="replace"),
                                          _humanize(path.stem))
    elif suffix == ".txt":
        text = raw.decode("utf-8", errors="replace").strip()
        title, sections = _humanize(path.stem), [("Text", text)] if text else []
    elif suffix == ".pdf":
        title, sections = _read_pdf(path)
    else:
        raise ValueError(
            f"unsupported knowledge-base file {path}: use one of {', '.join(SUPPORTED_SUFFIXES)}")
    n_tokens = sum(count_tokens(body) for _, body in sections)
    return Document(doc_id=doc_id, title=title, sections=tuple(sections),
                    content_hash=hashlib.sha256(raw).hexdigest(), n_tokens=n_tokens)


def iter_kb_files(root: Path) -> list[Path]:
    """Supported files under `root`, sorted; README files describe the KB and are skipped."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"knowledge-base folder {root} does not exist: set KB_DIR to a folder of "
            f"{', '.join(SUPPORTED_SUFFIXES)} files")
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
        and p.stem.lower() != "readme" and not any(part.startswith(".") for part in
                                                   p.relative_to(root).parts))


# --------------------------------------------------------------------------- chunking

def _blocks(body: str) -> list[str]:
    """Paragraphs separated by blank lines; a fenced code block stays one block."""
    blocks: list[str] = []
    current: list[str] = []
    in_fence = False
    for line in body.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        if not line.strip() and not in_fence:
            if current:
                blocks.append("\n".join(current).strip())
                current = []
            continue
        current.append(line)
    if current:
        blocks.append("\n".join(current).strip())
    return [b for b in blocks if b]


def _split_long(block: str, max_tokens: int) -> list[str]:
    """Cut an over-long paragraph at sentence ends, and a sentence at token boundaries."""
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(block):
        candidate = f"{current} {sentence}".strip()
        if count_tokens(candidate) <= max_tokens:
            current = candidate
            continue
        if current:
            pieces.append(current)
        ids = encode(sentence)
        while len(ids) > max_tokens:
            pieces.append(decode(ids[:max_tokens]).strip())
            ids = ids[max_tokens:]
        current = decode(ids).strip()
    if current:
        pieces.append(current)
    return pieces


def _tail(text: str, overlap_tokens: int) -> str:
    """The last whole sentences of `text` that fit in `overlap_tokens` (or its last tokens)."""
    if overlap_tokens <= 0:
        return ""
    sentences = _SENTENCE_END.split(text)
    tail: list[str] = []
    used = 0
    for sentence in reversed(sentences):
        n = count_tokens(sentence)
        if used + n > overlap_tokens:
            break
        tail.insert(0, sentence)
        used += n
    if tail:
        return " ".join(tail)
    ids = encode(text)[-overlap_tokens:]
    words = decode(ids).split(" ", 1)  # drop a word cut in half at the start
    return words[-1].strip()


def chunk_document(doc: Document, config: ChunkingConfig | None = None) -> list[Chunk]:
    """Cut a document into chunks (see the module docstring for the rules)."""
    config = config or ChunkingConfig()
    drafts: list[tuple[str, list[str]]] = []  # (section where the chunk starts, blocks)
    size = 0

    for section, body in doc.sections:
        blocks = [p for b in _blocks(body) for p in (
            _split_long(b, config.max_tokens - config.overlap_tokens)
            if count_tokens(b) > config.max_tokens - config.overlap_tokens else [b])]
        heading = f"## {section.split(' › ')[-1]}"
        first_in_section = True
        for block in blocks:
            # +1 per block for the blank line that joins it to the one before.
            n = count_tokens(block) + 1
            extra = count_tokens(heading) + 1 if first_in_section else 0
            starts_new = (
                not drafts
                or size + n + extra > config.max_tokens
                or (first_in_section and size >= config.min_tokens))
            if starts_new:
                continues_section = bool(drafts) and not first_in_section
                prefix = _tail(drafts[-1][1][-1], config.overlap_tokens) if (
                    continues_section) else ""
                drafts.append((section, [prefix] if prefix else []))
                size = count_tokens(prefix) + 1 if prefix else 0
            elif first_in_section:
                # A short section joins the chunk before it: keep its heading in the text.
                drafts[-1][1].append(heading)
                size += extra
            drafts[-1][1].append(block)
            size += n
            first_in_section = False

    chunks = []
    for ordinal, (section, blocks) in enumerate(drafts):
        text = "\n\n".join(blocks)
        digest = hashlib.sha1(f"{section}\n{text}".encode()).hexdigest()[:6]
        chunks.append(Chunk(
            chunk_id=f"{doc.doc_id}#{ordinal}-{digest}", doc_id=doc.doc_id, title=doc.title,
            section=section, text=text, n_tokens=count_tokens(text), ordinal=ordinal))
    return chunks


# --------------------------------------------------------------------------- the KB

def kb_content_hash(documents: Iterable[Document], config: ChunkingConfig) -> str:
    """Hash of the files' bytes, their names and the chunking rules."""
    h = hashlib.sha256(f"chunker={CHUNKER_VERSION};{config}".encode())
    for doc in sorted(documents, key=lambda d: d.doc_id):
        h.update(f"\n{doc.doc_id}\0{doc.content_hash}".encode())
    return h.hexdigest()


def load_knowledge_base(
    root: Path | str,
    config: ChunkingConfig | None = None,
    on_document: Callable[[Document], None] | None = None,
) -> KnowledgeBase:
    """Load and chunk every supported file under `root`; unreadable files are logged and skipped."""
    root = Path(root)
    config = config or ChunkingConfig()
    documents: list[Document] = []
    chunks: list[Chunk] = []
    for path in iter_kb_files(root):
        try:
            doc = load_document(path, root)
        except Exception as exc:  # one broken PDF must not take the whole KB down
            log.warning("skipping knowledge-base file %s: %s", path, exc)
            continue
        documents.append(doc)
        chunks.extend(chunk_document(doc, config))
        if on_document is not None:
            on_document(doc)
    if not chunks:
        log.warning("knowledge base %s has no readable content", root)
    return KnowledgeBase(root=root, documents=documents, chunks=chunks,
                         content_hash=kb_content_hash(documents, config), config=config)


_lock = threading.Lock()
_cached: tuple[Path, KnowledgeBase] | None = None


def get_knowledge_base(kb_dir: Path | str) -> KnowledgeBase:
    """The process-wide KB of the folder `kb_dir` (setting KB_DIR), loaded once (thread-safe)."""
    global _cached
    root = Path(kb_dir).resolve()
    cached = _cached
    if cached is not None and cached[0] == root:
        return cached[1]
    with _lock:
        if _cached is None or _cached[0] != root:
            _cached = (root, load_knowledge_base(root))
        return _cached[1]


def reset_knowledge_base() -> None:
    """Forget the loaded KB (tests, or after editing KB files in a long-running process)."""
    global _cached
    with _lock:
        _cached = None

