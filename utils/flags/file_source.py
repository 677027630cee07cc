"""The local flag file, fed to the SDK only once validated.

The SDK's file data source accepts any JSON, `{}` included, and would then serve every
agent's built-in default. So the SDK never reads `LOCAL_FLAGS_PATH` itself: this watcher
reads it, validates each new version, and copies only a valid one to a private file that the
SDK watches. A bad version (not JSON, half-written, incomplete) or a deleted file leaves the
last good configuration in service and is reported as the problem until a good one arrives.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class FlagFileRejected(ValueError):
    """A version of the flag file that must not be served; the message names the problem."""


class ValidatedFlagFile:
    """Watches `source`; keeps `served_path` equal to its last valid version.

    `validate(data)` raises FlagFileRejected for a version that must not be served and
    returns the problems a served version still has (e.g. one malformed variation, which
    then runs the built-in default), for /health.
    """

    def __init__(self, source: Path, validate: Callable[[Any], list[str]],
                 poll_interval_s: float) -> None:
        self.source = Path(source)
        self._validate = validate
        self._dir = Path(tempfile.mkdtemp(prefix="ld-flags-"))
        self.served_path = self._dir / "flags.json"
        self._lock = threading.Lock()
        self._last_digest: str | None = None  # of the last version read (good or bad)
        self.good: dict[str, Any] | None = None  # the version in service
        self.good_loaded_at: float | None = None
        self.rejected: str | None = None  # why the file on disk is not the one in service
        self.served_problems: list[str] = []
        # Nothing valid yet: the SDK serves no flags, so every agent runs its built-in default.
        self._write_served({})
        self.sync()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(poll_interval_s,),
                                        name="flag-file-watcher", daemon=True)
        self._thread.start()

    @property
    def ever_loaded(self) -> bool:
        return self.good is not None

    def problems(self) -> list[str]:
        """Why the configuration in service is not the file on disk, or is incomplete."""
        self.sync()  # so /health is current the moment it is asked, not one poll later
        with self._lock:
            return ([self.rejected] if self.rejected else []) + list(self.served_problems)

    def sync(self) -> None:
        """Read the file once; serve it if it is new and valid, else record why not."""
        with self._lock:
            try:
                raw = self.source.read_bytes()
            except FileNotFoundError:
                self._last_digest = None
                self.rejected = self._keeping(f"flags file {self.source} is missing")
                return
            except OSError as exc:
                self.rejected = self._keeping(f"flags file {self.source} cannot be read: {exc}")
                return
            digest = hashlib.sha256(raw).hexdigest()
            if digest == self._last_digest:
                return
            self._last_digest = digest
            try:
                data = json.loads(raw)
            except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError: half-written
                return self._reject(f"flags file {self.source} is not valid JSON: {exc}")
            try:
                problems = self._validate(data)
            except FlagFileRejected as exc:
                return self._reject(f"flags file {self.source} is incomplete or invalid: {exc}")
            except Exception as exc:  # a shape the validator did not foresee is still invalid
                return self._reject(f"flags file {self.source} is invalid: "
                                    f"{type(exc).__name__}: {exc}")
            self._write_served(data)
            first = self.good is None
            self.good, self.good_loaded_at = data, time.time()
            self.rejected, self.served_problems = None, problems
            log.info("flags file %s %s", self.source, "loaded" if first else "reloaded")

    def _reject(self, problem: str) -> None:
        self.rejected = self._keeping(problem)
        log.error("%s", self.rejected)

    def _keeping(self, problem: str) -> str:
        if self.good_loaded_at is None:
            return (f"{problem}; no valid configuration was ever loaded, so every agent runs "
                    "its built-in default (the security agent with the strict policy)")
        loaded = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.good_loaded_at))
        return f"{problem}; still serving the last valid version, loaded at {loaded}"

    def _write_served(self, data: dict[str, Any]) -> None:
        tmp = self.served_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.served_path)  # the SDK never sees a half-written copy

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.sync()
            except Exception:  # the watcher must outlive any one bad read
                log.exception("flag file watcher failed on %s", self.source)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        shutil.rmtree(self._dir, ignore_errors=True)
