"""Client-side circuit breakers of a shop service: one per downstream peer, switched by hand.

A breaker is ``closed`` (the service calls the peer) or ``open`` (it does not, and answers
from a fallback instead). Nothing trips a breaker automatically: selfheal opens and closes
them through the loopback-only admin API, whose contract is that of
``selfheal_kg.act.http.AdminApiExecutor``:

* ``GET  /admin/breaker`` → ``{"state": {"<peer>": "open" | "closed"}}``
* ``POST /admin/breaker`` ``{"peer": "<peer>", "state": "open" | "closed"}``

The service exports the gauge ``shop.breaker.open`` (1 while open, 0 while closed;
attribute ``peer``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

STATES = ("open", "closed")


class Breakers:
    """The breaker state of each downstream peer, thread-safe."""

    def __init__(self, peers: Iterable[str]) -> None:
        self._lock = threading.Lock()
        self._open = dict.fromkeys(peers, False)

    def view(self) -> dict[str, Any]:
        """Return ``{"state": {peer: "open" | "closed"}}``."""
        with self._lock:
            return {"state": {p: "open" if o else "closed" for p, o in self._open.items()}}

    def is_open(self, peer: str) -> bool:
        """Return whether calls to ``peer`` are cut off."""
        with self._lock:
            return self._open.get(peer, False)

    def apply(self, spec: dict[str, Any]) -> None:
        """Set one peer's breaker; raise ``ValueError`` naming a bad field."""
        unknown = set(spec) - {"peer", "state", "target"}
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        peer, state = spec.get("peer"), spec.get("state")
        if not isinstance(peer, str):
            raise ValueError("peer must be a string")
        if state not in STATES:
            raise ValueError(f"state must be one of {list(STATES)}")
        with self._lock:
            if peer not in self._open:
                raise ValueError(f"no peer named {peer[:40]!r}; known: {sorted(self._open)}")
            self._open[peer] = state == "open"

    def export(self, meter: Meter) -> None:
        """Export ``shop.breaker.open`` per peer."""

        def observe(options: CallbackOptions) -> list[Observation]:
            with self._lock:
                return [Observation(int(o), {"peer": p}) for p, o in self._open.items()]

        meter.create_observable_gauge(
            "shop.breaker.open", callbacks=[observe], unit="1",
            description="1 while the client-side circuit breaker to a peer is open",
        )
