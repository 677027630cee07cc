"""Store-level faults: which SQLite errors mean the store cannot take writes, and why.

One bad batch (a constraint violation) is the batch's problem; a locked, read-only, full or
unreadable store is everyone's, and is answered 503 with the reason these messages give.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

# A write waits this long for a locked store (STORE_LOCK_TIMEOUT_S): with the request's own
# work, the 503 arrives within 5 s.
DEFAULT_LOCK_TIMEOUT_S = 4.0

# SQLite result codes that mean the store itself cannot take writes (not one bad batch).
_STORE_FAULTS = {
    "SQLITE_BUSY": "is locked by another writer",
    "SQLITE_LOCKED": "is locked by another writer",
    "SQLITE_READONLY": "is read-only",
    "SQLITE_PERM": "is read-only",
    "SQLITE_FULL": "is full (disk or size limit)",
    "SQLITE_IOERR": "cannot be written (disk I/O error)",
    "SQLITE_CANTOPEN": "cannot be opened",
    "SQLITE_CORRUPT": "is corrupt",
    "SQLITE_NOTADB": "is not a SQLite database",
}


class StoreUnavailable(RuntimeError):
    """The event store cannot take (or serve) rows right now; the message says why."""


def store_fault(path: Path, exc: BaseException, waited_s: float | None = None) -> str | None:
    """What is wrong with the store if `exc` is a store-level fault, else None (a bad batch)."""
    if isinstance(exc, StoreUnavailable):
        return str(exc)
    if not isinstance(exc, sqlite3.Error):
        return None
    name = getattr(exc, "sqlite_errorname", "") or ""
    kind = next((text for code, text in _STORE_FAULTS.items()
                 if name == code or name.startswith(code + "_")), None)
    if kind is None:
        return None
    wait = f" (waited {waited_s:g} s)" if waited_s is not None and "locked" in kind else ""
    return f"event store {path} {kind}{wait}: {exc}"
