"""On-disk cache of document vectors under `DATA_DIR/index/`: `.npz` + `.json`, never pickle.

A cache is used only when the KB content hash, the chunk ids and the backend all match.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import numpy as np

from utils.knowledge.documents import KnowledgeBase
from utils.knowledge.embeddings import EmbeddingBackend, LsaBackend

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


def _cache_paths(cache_dir: Path, backend_name: str) -> tuple[Path, Path]:
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", backend_name)
    return cache_dir / f"vectors-{stem}.npz", cache_dir / f"vectors-{stem}.json"


def load_cached_vectors(cache_dir: Path, backend: EmbeddingBackend, kb: KnowledgeBase
                        ) -> np.ndarray | None:
    """The cached vectors of `kb` for `backend`, or None when missing, stale or unreadable."""
    npz_path, meta_path = _cache_paths(cache_dir, backend.name)
    try:
        meta = json.loads(meta_path.read_text())
        if (meta.get("format") != CACHE_FORMAT or meta.get("kb_hash") != kb.content_hash
                or meta.get("backend") != backend.name
                or meta.get("chunk_ids") != [c.chunk_id for c in kb.chunks]):
            return None
        with np.load(npz_path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        if isinstance(backend, LsaBackend):
            backend.load_state(arrays, meta)
        return arrays["embeddings"]
    except FileNotFoundError:
        return None
    except Exception as exc:  # a corrupt or foreign cache is rebuilt, never trusted
        log.warning("ignoring unreadable vector cache %s: %s", npz_path, exc)
        return None


def save_vectors(cache_dir: Path, backend: EmbeddingBackend, kb: KnowledgeBase,
                 embeddings: np.ndarray) -> None:
    """Write the vectors (and LSA state) atomically; a failed write is logged, not raised."""
    npz_path, meta_path = _cache_paths(cache_dir, backend.name)
    arrays: dict[str, np.ndarray] = {"embeddings": embeddings}
    meta: dict[str, object] = {"format": CACHE_FORMAT, "kb_hash": kb.content_hash,
                               "backend": backend.name,
                               "chunk_ids": [c.chunk_id for c in kb.chunks],
                               "created": time.time()}
    if isinstance(backend, LsaBackend):
        extra_arrays, extra_meta = backend.state()
        arrays.update(extra_arrays)
        meta.update(extra_meta)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # Write to temporary names then rename: readers in other processes never see half a file.
        tmp_npz = npz_path.with_name(npz_path.name + ".tmp.npz")
        np.savez(tmp_npz, **arrays)
        tmp_meta = meta_path.with_suffix(".json.tmp")
        tmp_meta.write_text(json.dumps(meta))
        tmp_npz.replace(npz_path)
        tmp_meta.replace(meta_path)  # meta last: it is what marks the cache valid
    except OSError as exc:
        log.warning("could not write vector cache under %s (%s); it will be rebuilt next "
                    "start", cache_dir, exc)
