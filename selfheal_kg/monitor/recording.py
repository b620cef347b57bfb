"""Record received telemetry as OTLP-JSON lines, and read recordings back for replay.

One line per request: ``{"t": received_at, "signal": "metrics"|"traces"|"logs", "body":
<OTLP-JSON>}``. The body is the decoded request re-encoded per the OTLP/HTTP JSON mapping, so a
recording can also be posted to any OTLP receiver.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfheal_kg.clock import Clock
from selfheal_kg.errors import FileLoadError

SIGNALS = frozenset({"metrics", "traces", "logs"})


@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded request."""

    t: float
    signal: str
    body: dict[str, Any]


class JsonlRecorder:
    """An ``Intake`` recorder appending each request to a JSON-lines file (thread-safe)."""

    def __init__(self, path: Path, clock: Clock, signals: Iterable[str] = SIGNALS) -> None:
        self.path = path
        self._clock = clock
        self._signals = frozenset(signals)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def __call__(self, signal: str, body: dict[str, Any]) -> None:
        """Append one request (signals not selected are skipped)."""
        if signal not in self._signals:
            return
        line = json.dumps({"t": self._clock.now(), "signal": signal, "body": body})
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._file.close()


def read_recordings(paths: Iterable[Path]) -> list[Recorded]:
    """Read recordings, merged in time order.

    Raises:
        FileLoadError: a line that is not a recorded request (file and line named).
    """
    out: list[Recorded] = []
    for path in paths:
        out += _read(path)
    out.sort(key=lambda r: r.t)
    return out


def _read(path: Path) -> Iterator[Recorded]:
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        lines = raw.decode("utf-8").splitlines()
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise FileLoadError(str(path), f"cannot read: {exc}") from exc
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            t, signal, body = float(doc["t"]), str(doc["signal"]), doc["body"]
        except (ValueError, KeyError, TypeError) as exc:
            raise FileLoadError(str(path), f"not a recorded request: {exc}", line=n) from exc
        if signal not in SIGNALS or not isinstance(body, dict):
            raise FileLoadError(str(path), f"unknown signal {signal!r}", line=n)
        yield Recorded(t, signal, body)
