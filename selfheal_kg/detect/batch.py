"""Run a detector over one series read from a CSV file, strictly streaming.

The CSV has a header row; column 1 is the time (epoch seconds or ISO 8601), column 2 the
value (any name; an empty cell is a missing value), other columns are ignored. Every output
row depends only on the input rows up to it, and the code path is the server's: the same
detector from the registry and the same :class:`SignalTracker`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import numpy as np

from selfheal_kg.detect.registry import DEFAULT_DETECTOR, make_detector, make_tracker
from selfheal_kg.errors import FileLoadError

SERIES = ("value",)


@dataclass(frozen=True, slots=True)
class Point:
    """One input row: its time and value (NaN when missing)."""

    t: float
    value: float


@dataclass(frozen=True, slots=True)
class Scored:
    """One output row."""

    t: float
    value: float
    score: float
    anomaly: bool


def parse_time(text: str) -> float:
    """Return epoch seconds from ``text`` (a number or ISO 8601; naive times are UTC).

    Raises:
        ValueError: ``text`` is neither.
    """
    text = text.strip()
    try:
        t = float(text)
    except ValueError:
        stamp = datetime.fromisoformat(text)
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return stamp.timestamp()
    if not math.isfinite(t):
        raise ValueError(f"time {text!r} is not finite")
    return t


def parse_value(text: str) -> float:
    """Return the value in ``text``; empty means missing (NaN)."""
    text = text.strip()
    if not text:
        return math.nan
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"value {text!r} is infinite")
    return value


def read_points(name: str, stream: TextIO) -> Iterator[Point]:
    """Yield the points of a two-column CSV.

    Raises:
        FileLoadError: a header or row is malformed (names the file and line).
    """
    reader = csv.reader(stream)
    try:
        header = next(reader, None)
        if header is None or len(header) < 2:
            raise FileLoadError(name, "expected a header row with at least 2 columns", line=1)
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            yield _point(name, reader.line_num, row)
    except csv.Error as exc:
        raise FileLoadError(name, f"malformed CSV: {exc}", line=reader.line_num) from exc


def _point(name: str, line: int, row: list[str]) -> Point:
    if len(row) < 2:
        raise FileLoadError(name, f"expected at least 2 columns, got {len(row)}", line=line)
    try:
        return Point(parse_time(row[0]), parse_value(row[1]))
    except ValueError as exc:
        raise FileLoadError(name, f"bad timestamp or value: {exc}", line=line) from exc


def detect_points(points: Iterator[Point], detector: str = DEFAULT_DETECTOR) -> Iterator[Scored]:
    """Score each point as it arrives; ``anomaly`` is the tracker's active state after it."""
    det = make_detector(detector)
    tracker = make_tracker()
    for p in points:
        values = np.array([p.value])
        scores = det.update(p.t, SERIES, values)
        tracker.update(p.t, SERIES, SERIES, SERIES, scores, values)
        yield Scored(p.t, p.value, float(scores.score[0]), tracker.is_active(SERIES[0]))


def detect_file(src: Path, out: TextIO, detector: str = DEFAULT_DETECTOR) -> int:
    """Write ``timestamp,value,score,anomaly`` rows for ``src``; return the row count.

    Raises:
        FileLoadError: the file is missing, not UTF-8 text, or malformed.
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["timestamp", "value", "score", "anomaly"])
    count = 0
    try:
        with src.open(newline="", encoding="utf-8") as stream:
            for row in detect_points(read_points(str(src), stream), detector):
                value = "" if math.isnan(row.value) else repr(row.value)
                writer.writerow([repr(row.t), value, f"{row.score:.6g}", int(row.anomaly)])
                count += 1
    except OSError as exc:
        raise FileLoadError(str(src), f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise FileLoadError(str(src), f"not UTF-8 text: {exc.reason}") from exc
    return count
