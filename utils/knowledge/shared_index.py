"""One search index per settings, built once and shared by the process (thread-safe).

The index is built on first use, or at server start-up by `warm_up`, from the knowledge base
in `settings.KB_DIR` with the embedding backend the settings choose; its vectors are cached
under `DATA_DIR/index/`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from utils.knowledge.documents import KnowledgeBase, get_knowledge_base
from utils.knowledge.embeddings import choose_backend
from utils.knowledge.search_index import SearchIndex
from utils.settings import Settings

log = logging.getLogger(__name__)


def build_search_index(
    settings: Settings,
    kb: KnowledgeBase | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> SearchIndex:
    """Build (or load from cache) the index for `kb` with the backend the settings choose."""
    kb = kb or get_knowledge_base(settings.KB_DIR)
    if on_stage:
        on_stage("embedding backend")
    backend = choose_backend(settings)
    if on_stage:
        on_stage(f"indexing with {backend.name}")
    index = SearchIndex(kb, backend, cache_dir=Path(settings.DATA_DIR) / "index")
    log.info("search index ready: %d chunks, backend %s%s (keyword %.0f ms, vectors %.0f ms)",
             len(kb.chunks), index.info.backend,
             " from cache" if index.info.vectors_from_cache else "",
             index.info.keyword_seconds * 1e3, index.info.vector_seconds * 1e3)
    return index


_lock = threading.Lock()
_cached: tuple[tuple[object, ...], SearchIndex] | None = None


def _settings_key(settings: Settings) -> tuple[object, ...]:
    key = settings.OPENAI_API_KEY.get_secret_value() if settings.OPENAI_API_KEY else ""
    return (str(Path(settings.KB_DIR).resolve()), str(Path(settings.DATA_DIR).resolve()),
            settings.EMBEDDING_BACKEND, bool(key), settings.OPENAI_BASE_URL)


_last_settings: tuple[Settings, tuple[object, ...]] | None = None


def _current_key(settings: Settings) -> tuple[object, ...]:
    # A service passes the same Settings object on every call: skip the path work.
    global _last_settings
    last = _last_settings
    if last is not None and last[0] is settings:
        return last[1]
    key = _settings_key(settings)
    _last_settings = (settings, key)
    return key


def get_search_index(settings: Settings) -> SearchIndex:
    """The process-wide index, built once per settings (thread-safe; cheap after the first)."""
    global _cached
    key = _current_key(settings)
    cached = _cached
    if cached is not None and cached[0] == key:
        return cached[1]
    with _lock:
        if _cached is None or _cached[0] != key:
            _cached = (key, build_search_index(settings))
        return _cached[1]


def reset_search_index() -> None:
    """Forget the process-wide index (tests; or after the KB changed on disk)."""
    global _cached
    from utils.knowledge.documents import reset_knowledge_base

    with _lock:
        _cached = None
    reset_knowledge_base()


def peek_search_index(settings: Settings) -> SearchIndex | None:
    """The process-wide index if it is already built for these settings, else None."""
    cached = _cached
    if cached is not None and cached[0] == _current_key(settings):
        return cached[1]
    return None


def warm_up(settings: Settings) -> SearchIndex:
    """Build the process-wide index now (server start-up) so no request pays for it."""
    return get_search_index(settings)
