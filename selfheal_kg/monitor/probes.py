"""Active health probes, like Kubernetes liveness probes: HTTP GET or TCP connect.

A probe runs every ``period`` seconds with a ``timeout``; ``failure_threshold`` consecutive
failures mark the node down, ``success_threshold`` consecutive successes bring it back up
(https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/).
Targets come from declared topology (``shk:healthEndpoint``), never from telemetry: a probe of
an undeclared target is allowed only on loopback, so hostile telemetry cannot aim requests.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import httpx

from selfheal_kg.clock import Clock
from selfheal_kg.errors import ConfigError
from selfheal_kg.kg.namespaces import SPARQL_PREFIXES, TOPOLOGY_GRAPH
from selfheal_kg.kg.store import KnowledgeStore, SelectResult
from selfheal_kg.monitor.liveness import HealthChange

ProbeKind = Literal["http", "tcp"]


def is_loopback(host: str) -> bool:
    """Return whether ``host`` names this machine (``localhost`` or a loopback address)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_port(spec_target: str, kind: ProbeKind) -> tuple[str, int]:
    """Return (host, port) of a probe target; raise ``ConfigError`` naming what is wrong."""
    raw = spec_target if kind == "http" else f"tcp://{spec_target}"
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"probe target {spec_target!r}: {exc}") from exc
    if kind == "http" and parts.scheme not in ("http", "https"):
        raise ConfigError(f"http probe target {spec_target!r} is not an http(s) URL")
    host = parts.hostname or ""
    if not host:
        raise ConfigError(f"probe target {spec_target!r} has no host")
    if port is None:
        if kind == "tcp":
            raise ConfigError(f"tcp probe target {spec_target!r} needs host:port")
        port = 443 if parts.scheme == "https" else 80
    return host, port


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """One probe of one node; ``declared`` targets come from the topology files.

    Raises:
        ConfigError: bad kind, target, timing, or an undeclared non-loopback target.
    """

    node: str
    kind: ProbeKind
    target: str
    period: float = 10.0
    timeout: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1
    declared: bool = False
    address: tuple[str, int] = field(default=("", 0), compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("http", "tcp"):
            raise ConfigError(f"probe of {self.node!r}: kind {self.kind!r} is not http or tcp")
        if not (self.period > 0 and self.timeout > 0):
            raise ConfigError(f"probe of {self.node!r}: period and timeout must be > 0")
        if self.failure_threshold < 1 or self.success_threshold < 1:
            raise ConfigError(f"probe of {self.node!r}: thresholds must be >= 1")
        host, port = _host_port(self.target, self.kind)
        if not self.declared and not is_loopback(host):
            raise ConfigError(
                f"probe of {self.node!r}: {host!r} is neither loopback nor a declared endpoint"
            )
        object.__setattr__(self, "address", (host, port))


@dataclass
class _State:
    next_run: float
    fails: int = 0
    oks: int = 0
    down: bool = False
    streak_start: float = 0.0


class Prober:
    """Schedules probes and turns their results into up/down transitions."""

    def __init__(self, clock: Clock, specs: Iterable[ProbeSpec]) -> None:
        self.clock = clock
        self.specs = list(dict.fromkeys(specs))
        start = clock.now()
        self._state = {s: _State(next_run=start) for s in self.specs}

    def due(self, now: float) -> list[ProbeSpec]:
        """Return the probes to run at ``now`` and schedule each one ``period`` later."""
        out = []
        for spec in self.specs:
            st = self._state[spec]
            if now >= st.next_run:
                st.next_run = now + spec.period
                out.append(spec)
        return out

    def record(self, spec: ProbeSpec, ok: bool, at: float) -> HealthChange | None:
        """Record one result; return the change when the node goes down or comes back up.

        ``since`` is the start of the streak that caused the change (first failure or success).
        """
        st = self._state[spec]
        if ok:
            st.streak_start = at if st.oks == 0 else st.streak_start
            st.oks, st.fails = st.oks + 1, 0
            if st.down and st.oks >= spec.success_threshold:
                st.down = False
                return HealthChange(spec.node, "up", at, st.streak_start, source="probe")
            return None
        st.streak_start = at if st.fails == 0 else st.streak_start
        st.fails, st.oks = st.fails + 1, 0
        if not st.down and st.fails >= spec.failure_threshold:
            st.down = True
            return HealthChange(spec.node, "down", at, st.streak_start, source="probe")
        return None

    def run_due(self) -> list[HealthChange]:
        """Run every due probe now (blocking, each within its timeout); return the changes."""
        changes = []
        for spec in self.due(self.clock.now()):
            ok = run_probe(spec)
            change = self.record(spec, ok, self.clock.now())
            if change is not None:
                changes.append(change)
        return changes

    def down(self) -> list[str]:
        """Return the nodes whose probes currently say down."""
        return sorted({s.node for s in self.specs if self._state[s].down})


def run_probe(spec: ProbeSpec) -> bool:
    """Run one probe: HTTP GET answering 2xx-3xx, or a TCP connect, within ``spec.timeout``."""
    if spec.kind == "tcp":
        try:
            with socket.create_connection(spec.address, timeout=spec.timeout):
                return True
        except OSError:
            return False
    try:
        with httpx.Client(timeout=spec.timeout, follow_redirects=False) as client:
            resp = client.get(spec.target)
    except httpx.HTTPError:
        return False
    return 200 <= resp.status_code < 400


_ENDPOINTS = f"""SELECT ?name ?endpoint WHERE {{ GRAPH <{TOPOLOGY_GRAPH}> {{
    ?n shk:healthEndpoint ?endpoint ; rdfs:label ?name .
    FILTER NOT EXISTS {{ ?n shk:origin "discovered" }} }} }} ORDER BY ?name"""


def probe_specs_from_graph(
    store: KnowledgeStore,
    *,
    period: float = 10.0,
    timeout: float = 1.0,
    failure_threshold: int = 3,
) -> list[ProbeSpec]:
    """Return a probe for each declared node's ``shk:healthEndpoint``.

    ``http(s)://`` endpoints become HTTP probes, ``tcp://host:port`` TCP probes.

    Raises:
        ConfigError: an endpoint with another scheme or no usable host/port, naming the node.
    """
    result = store.query(SPARQL_PREFIXES + _ENDPOINTS)
    assert isinstance(result, SelectResult)
    specs = []
    for row in result.dicts():
        node, endpoint = str(row["name"]), str(row["endpoint"])
        kind, target = _kind_of(node, endpoint)
        specs.append(
            ProbeSpec(node, kind, target, period, timeout, failure_threshold, declared=True)
        )
    return specs


def _kind_of(node: str, endpoint: str) -> tuple[ProbeKind, str]:
    scheme = endpoint.partition("://")[0].lower()
    if scheme in ("http", "https"):
        return "http", endpoint
    if scheme == "tcp":
        return "tcp", endpoint.partition("://")[2].rstrip("/")
    raise ConfigError(f"node {node!r}: healthEndpoint {endpoint[:100]!r} is not http(s) or tcp")
