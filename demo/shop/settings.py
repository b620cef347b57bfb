"""A shop service's JSON configuration file, re-read whenever it changes.

The file holds ``{"currency": "EUR", "tax_rate": 0.2, "pool_size": 8}``. Every request asks
``problem()``: a value the service cannot use (a bad push) fails the request with the reason,
as a real service does when it first uses a bad setting; a fixed file (a rollback) heals it
on the next request, with no restart.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

CHECK_EVERY = 0.2  # seconds between stat() calls of the file
MAX_BYTES = 64 * 1024
_CURRENCY = re.compile(r"[A-Z]{3}")
DEFAULTS: dict[str, Any] = {"currency": "EUR", "tax_rate": 0.2, "pool_size": 8}


def check(doc: Any) -> str | None:
    """Return why ``doc`` is not a usable configuration, or ``None`` when it is."""
    if not isinstance(doc, dict):
        return "top level is not an object"
    rate = doc.get("tax_rate", DEFAULTS["tax_rate"])
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        return f"tax_rate {str(rate)[:40]!r} is not a number in [0, 1]"
    currency = doc.get("currency", DEFAULTS["currency"])
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        return f"currency {str(currency)[:40]!r} is not an ISO 4217 code"
    pool = doc.get("pool_size", DEFAULTS["pool_size"])
    if isinstance(pool, bool) or not isinstance(pool, int) or not 1 <= pool <= 256:
        return f"pool_size {str(pool)[:40]!r} is not an integer in [1, 256]"
    return None


class Settings:
    """The configuration file of one service and the reason it is unusable, if it is."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._problem: str | None = None
        self._doc: dict[str, Any] = dict(DEFAULTS)
        self.refresh(force=True)

    def problem(self) -> str | None:
        """Return why the current file is unusable (re-reading it if it changed), or None."""
        self.refresh()
        with self._lock:
            return self._problem

    def get(self, key: str) -> Any:
        """Return the value of ``key`` in the last usable file (the default before any)."""
        self.refresh()
        with self._lock:
            return self._doc.get(key, DEFAULTS.get(key))

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the file when it was replaced, or its modification time or size changed."""
        now = time.monotonic()
        with self._lock:
            if not force and now - self._checked < CHECK_EVERY:
                return
            self._checked = now
            try:
                st = self.path.stat()
            except OSError as exc:
                self._stamp, self._problem = None, f"cannot read {self.path.name}: {exc.strerror}"
                return
            # a new inode too: the file is replaced atomically (os.replace), maybe within one tick
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                self._stamp = stamp
                self._load(st.st_size)

    def _load(self, size: int) -> None:
        if size > MAX_BYTES:
            self._problem = f"{self.path.name} is larger than {MAX_BYTES} bytes"
            return
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            self._problem = f"{self.path.name} does not parse: {exc}"
            return
        self._problem = check(doc)
        if self._problem is None:
            self._doc = {**DEFAULTS, **doc}
