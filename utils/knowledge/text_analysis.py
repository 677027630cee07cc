"""Text analysis shared by the keyword index and the LSA backend: stemmed, stop-word-free terms."""

from __future__ import annotations

import re
import threading
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS

_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_STOPWORDS = frozenset(STOPWORDS_EN_PLUS)  # NLTK-style list: drops "how", "does"
_stemmers = threading.local()  # PyStemmer objects must not be shared between threads


@lru_cache(maxsize=50_000)
def _stem(word: str) -> str:
    stemmer = getattr(_stemmers, "english", None)
    if stemmer is None:
        stemmer = _stemmers.english = Stemmer.Stemmer("english")
    return stemmer.stemWord(word)


def analyze(text: str) -> list[str]:
    """Lower-cased, stop-word-free terms, stemmed with Snowball English (PyStemmer).

    A hyphenated word yields its parts and the joined form ("q-learning" -> "q", "learn",
    "qlearn"), so "Q-learning", "Q learning" and "qlearning" all meet; single letters only
    survive inside such compounds, where they carry meaning (Q-learning, n-step).
    """
    terms: list[str] = []
    for word in _WORD.findall(text.lower()):
        if "-" in word or "'" in word:
            parts = [p for p in re.split(r"[-']", word) if p]
            if "'" in word:  # possessives and contractions: keep the stem word only
                parts = parts[:1]
            else:
                terms.append(_stem("".join(parts)))
            terms.extend(_stem(p) for p in parts if p not in _STOPWORDS and len(p) > 1
                         or (p.isalpha() and len(p) == 1 and "-" in word))
        elif len(word) > 1 and word not in _STOPWORDS:
            terms.append(_stem(word))
    return terms
