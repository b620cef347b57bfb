"""New error-log templates per service, mined with Drain (the ``drain3`` package).

Drain (He et al., ICWS 2017; https://github.com/logpai/Drain3) groups log lines into
templates such as ``connection to <IP> refused``. Templates a service shows during its
warm-up are its baseline; a template first seen later is a new failure mode and becomes a
``log.template.new`` signal. A signal clears once its template has not recurred for
``clear_after`` seconds. Log text is data: it is cut to ``max_chars``, masked, kept in memory
only, and never logged.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Final

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from selfheal_kg.clock import Clock
from selfheal_kg.model import Signal
from selfheal_kg.monitor.attributes import value_of

METRIC: Final = "log.template.new"
DETECTOR: Final = "drain3"

# Variable parts masked before mining, so "timeout after 31 ms" and "... 212 ms" share a template.
_MASKS: Final = (
    (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "UUID"),
    (r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b", "IP"),
    (r"\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]{16,}\b", "HEX"),
    (r"(?<![A-Za-z])[-+]?\d+(?:\.\d+)?(?![A-Za-z])", "NUM"),
)


@dataclass(frozen=True, slots=True)
class Template:
    """One mined template of one service.

    Attributes:
        text: the template, masked and at most ``max_chars`` long (``<*>`` = a variable).
        first_seen, last_seen: log times of its first and latest line.
        count: lines matched.
        new: first seen after the service's warm-up (a signal was raised for it).
    """

    node: str
    cluster_id: int
    text: str
    first_seen: float
    last_seen: float
    count: int
    new: bool


@dataclass
class _Service:
    """Drain state of one service: its miner, when it was first seen, what it has shown."""

    miner: TemplateMiner
    since: float
    templates: dict[int, Template] = field(default_factory=dict)
    # digests of every template text shown, so a cluster Drain evicted and re-creates is old news
    known: OrderedDict[str, None] = field(default_factory=OrderedDict)


class LogTemplates:
    """Mines error-log bodies per service and reports templates first seen after a warm-up.

    Args:
        clock: "now" for warm-up, signal times and clearing.
        warmup_seconds: templates a service shows this long after its first error log are
            its baseline, not news.
        clear_after: a new template's signal clears once no line matched it for this long.
        max_clusters: templates kept per service (Drain evicts the least recently used).
        max_services: services mined at once (the least recently active is forgotten).
        max_chars: log bodies are cut to this many characters before mining.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        warmup_seconds: float = 60.0,
        clear_after: float = 300.0,
        max_clusters: int = 500,
        max_services: int = 1000,
        max_chars: int = 1024,
    ) -> None:
        self._clock = clock
        self.warmup_seconds = warmup_seconds
        self.clear_after = clear_after
        self._max_clusters = max_clusters
        self._max_services = max_services
        self._max_chars = max_chars
        self._lock = threading.Lock()
        self._services: OrderedDict[str, _Service] = OrderedDict()
        self._raised: dict[tuple[str, int], tuple[Signal, float]] = {}  # → (signal, last hit)
        self._outbox: list[Signal] = []
        self.lines = 0
        self.forgotten_services = 0

    def observe(self, node: str, body: AnyValue | str, log_time: float) -> Template | None:
        """Mine one error line of ``node`` logged at ``log_time``; return its template.

        Returns ``None`` for an empty body (nothing to mine).
        """
        text = _text(body)[: self._max_chars]
        if not text.strip():
            return None
        now = self._clock.now()
        with self._lock:
            svc = self._service(node, now)
            result = svc.miner.add_log_message(text)
            self.lines += 1
            cid = int(result["cluster_id"])
            shown = str(result["template_mined"])[: self._max_chars]
            digest = hashlib.sha256(shown.encode()).hexdigest()[:16]
            old = svc.templates.get(cid)
            if old is None:
                is_new = digest not in svc.known and now - svc.since >= self.warmup_seconds
                tpl = Template(node, cid, shown, log_time, log_time, 1, is_new)
                self._prune(svc)
                if is_new:
                    self._raise(tpl, digest, now)
            else:
                tpl = replace(
                    old, text=shown, last_seen=max(old.last_seen, log_time), count=old.count + 1
                )
            svc.templates[cid] = tpl
            self._remember(svc, digest)
            if (node, cid) in self._raised:
                self._raised[(node, cid)] = (self._raised[(node, cid)][0], now)
            return tpl

    def drain(self) -> list[Signal]:
        """Return the signals raised since the last call, and those that cleared by now."""
        now = self._clock.now()
        with self._lock:
            out, self._outbox = self._outbox, []
            for key, (signal, last_hit) in list(self._raised.items()):
                if now - last_hit >= self.clear_after:
                    del self._raised[key]
                    out.append(replace(signal, active=False, detected_at=now, value=0.0))
            return out

    def templates(self, node: str | None = None) -> list[Template]:
        """Return the known templates (of ``node`` only, when given), oldest first."""
        with self._lock:
            found = [
                t
                for name, svc in self._services.items()
                if node is None or name == node
                for t in svc.templates.values()
            ]
        return sorted(found, key=lambda t: (t.node, t.first_seen, t.cluster_id))

    def _service(self, node: str, now: float) -> _Service:
        svc = self._services.get(node)
        if svc is None:
            svc = _Service(TemplateMiner(config=_config(self._max_clusters)), now)
            self._services[node] = svc
            if len(self._services) > self._max_services:
                self._forget(self._services.popitem(last=False)[0])
        self._services.move_to_end(node)
        return svc

    def _forget(self, node: str) -> None:
        self.forgotten_services += 1
        for key in [k for k in self._raised if k[0] == node]:
            del self._raised[key]

    def _prune(self, svc: _Service) -> None:
        """Drop templates of clusters Drain has evicted (keeps ours bounded like Drain's)."""
        if len(svc.templates) < self._max_clusters:
            return
        live = svc.miner.drain.id_to_cluster
        for cid in [c for c in svc.templates if c not in live]:
            del svc.templates[cid]

    def _remember(self, svc: _Service, digest: str) -> None:
        svc.known[digest] = None
        svc.known.move_to_end(digest)
        if len(svc.known) > 4 * self._max_clusters:
            svc.known.popitem(last=False)

    def _raise(self, tpl: Template, digest: str, now: float) -> None:
        series = f"{tpl.node}|{METRIC}"
        signal = Signal(
            id=f"{series}|{digest}@{tpl.first_seen:.3f}",
            series=series,
            node=tpl.node,
            metric=METRIC,
            detector=DETECTOR,
            score=1.0,
            direction="up",
            onset=tpl.first_seen,
            detected_at=now,
            value=1.0,
            baseline=0.0,
        )
        self._raised[(tpl.node, tpl.cluster_id)] = (signal, now)
        self._outbox.append(signal)


def _config(max_clusters: int) -> TemplateMinerConfig:
    """Return an in-memory Drain configuration (no snapshots, no profiling) with our masks."""
    config = TemplateMinerConfig()
    config.drain_max_clusters = max_clusters
    config.profiling_enabled = False
    config.masking_instructions = [MaskingInstruction(p, name) for p, name in _MASKS]
    return config


def _text(body: AnyValue | str) -> str:
    """Return a log body as one line of text (structured bodies by their value's ``str``)."""
    if isinstance(body, str):
        raw = body
    else:
        value = value_of(body)
        if value is None or isinstance(value, bytes):
            return ""
        raw = value if isinstance(value, str) else str(value)
    return " ".join(raw.split())
