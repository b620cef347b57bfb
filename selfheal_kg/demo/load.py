"""The demo shop's users: a load generator at a steady rate or on a diurnal cycle.

``LoadGenerator`` sends GET requests to the shop's entry at the rate its ``LoadPattern``
gives for the current moment, from a small pool of worker threads, and counts the answers.
"""

from __future__ import annotations

import math
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# A compressed day: the diurnal load goes through one day-night cycle in 10 minutes.
DIURNAL_PERIOD = 600.0
DIURNAL_AMPLITUDE = 0.5
LOAD_PATTERNS = ("steady", "diurnal")


@dataclass(frozen=True, slots=True)
class LoadPattern:
    """How the users' request rate varies with time: steady, or a diurnal (sine) cycle.

    ``diurnal``: rate(t) = base * (1 + amplitude * sin(2 pi t / period)), t in seconds
    since the load started; it starts at the base rate and rises first.
    """

    kind: str = "steady"
    period: float = DIURNAL_PERIOD
    amplitude: float = DIURNAL_AMPLITUDE

    def __post_init__(self) -> None:
        if self.kind not in LOAD_PATTERNS:
            raise ValueError(f"load pattern {self.kind!r} is not one of {list(LOAD_PATTERNS)}")
        if not 1.0 <= self.period <= 86_400.0:
            raise ValueError(f"load period must be in [1, 86400] s, got {self.period}")
        # below 1 the rate stays positive: arrivals never stop altogether
        if not 0.0 <= self.amplitude < 1.0:
            raise ValueError(f"load amplitude must be in [0, 1), got {self.amplitude}")

    def rate_at(self, base: float, t: float) -> float:
        """Return the request rate ``t`` seconds into the load, for a base rate ``base``."""
        if self.kind == "steady":
            return base
        return base * (1.0 + self.amplitude * math.sin(2.0 * math.pi * t / self.period))


@dataclass(frozen=True, slots=True)
class LoadStats:
    """Counts of a load run: requests sent, answered 2xx, failed, and skipped (all busy)."""

    sent: int
    ok: int
    failed: int
    skipped: int


class LoadGenerator:
    """Open-loop load: Poisson arrivals, ``rate`` GET requests per second on ``url`` on average.

    With a diurnal ``pattern`` the average follows ``pattern.rate_at(rate, t)``. A tick
    finding every worker busy is skipped (and counted), so a slow shop gets less load
    rather than an ever-growing queue.
    """

    def __init__(
        self, url: str, rate: float = 20.0, workers: int = 16, timeout: float = 2.0,
        pattern: LoadPattern | None = None,
    ) -> None:
        if not 0 < rate <= 10_000:
            raise ValueError(f"rate must be in (0, 10000] requests/s, got {rate}")
        self.url, self.rate, self._timeout = url, rate, timeout
        self.pattern = pattern or LoadPattern()
        self._started: float | None = None
        self._slots = threading.BoundedSemaphore(workers)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="loadgen")
        self._stop = threading.Event()
        self._pacer = threading.Thread(target=self._pace, name="loadgen-pacer", daemon=True)
        self._lock = threading.Lock()
        self._counts = {"sent": 0, "ok": 0, "failed": 0, "skipped": 0}

    def start(self) -> None:
        """Start sending."""
        self._started = time.monotonic()
        self._pacer.start()

    def current_rate(self) -> float:
        """Return the average rate the load is at now (requests/s)."""
        elapsed = 0.0 if self._started is None else time.monotonic() - self._started
        return self.pattern.rate_at(self.rate, elapsed)

    def stop(self) -> LoadStats:
        """Stop sending, wait for requests in flight, and return the counts."""
        self._stop.set()
        if self._pacer.is_alive():
            self._pacer.join()
        self._pool.shutdown(wait=True)
        return self.stats()

    def stats(self) -> LoadStats:
        """Return the counts so far."""
        with self._lock:
            return LoadStats(**self._counts)

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def _pace(self) -> None:
        # Real load on real processes: paced on the monotonic clock. Arrivals are a Poisson
        # process, as independent users make them: the per-second counts vary naturally, so
        # a baseline learnt from them is not a constant that any jitter would break.
        # A varying rate is applied per arrival: fine while the period is far longer than
        # the gaps between arrivals.
        rng = random.Random()  # noqa: S311 (arrival times of test load, not secrets)
        next_at = time.monotonic()
        while not self._stop.is_set():
            if self._slots.acquire(blocking=False):
                self._count("sent")
                self._pool.submit(self._one)
            else:
                self._count("skipped")
            next_at += rng.expovariate(self.current_rate())
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _one(self) -> None:
        try:
            self._count("ok" if http_get(self.url, self._timeout) else "failed")
        finally:
            self._slots.release()


def http_get(url: str, timeout: float) -> bool:
    """GET ``url`` and return whether it answered 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (our own URL)
            resp.read()
            return 200 <= int(resp.status) < 300
    except urllib.error.HTTPError as exc:
        exc.close()
        return False
    except (urllib.error.URLError, OSError):
        return False
