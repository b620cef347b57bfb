"""Alerts from signals: dedup by fingerprint, topology groups, inhibition, silences, notifications.

Modelled on Prometheus Alertmanager (https://prometheus.io/docs/alerting/latest/alertmanager/):
an alert's fingerprint hashes its identity labels, so a re-sent alert updates the stored one;
alerts are grouped by topology instead of by label values (see ``alert_grouping``); a group is
notified ``group_wait`` after it appears, then at most every ``group_interval`` when it changed,
and again every ``repeat_interval`` while it fires. Nothing runs by itself: the caller drives
``due`` and ``escalations`` with a clock, so tests use a ``FakeClock``. Escalation policies
live in ``escalation.py`` and notifiers in ``notify.py``; their names are re-exported here.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import networkx as nx

from selfheal_kg.clock import Clock
from selfheal_kg.errors import NotFound
from selfheal_kg.model import Signal
from selfheal_kg.monitor.alert_grouping import callers_inhibited, group_id, roots_of
from selfheal_kg.monitor.escalation import (
    DEFAULT_POLICY,
    Escalation,
    EscalationLevel,
    EscalationPolicy,
    policy_from_graph,
)
from selfheal_kg.monitor.notify import (
    AlertStatus,
    Notification,
    Notifier,
    RecordingNotifier,
    WebhookNotifier,
)
from selfheal_kg.monitor.silences import InhibitRule, Matcher, Silence, Silences

# re-exported: these lived here before escalation.py and notify.py were split off
__all__ = [
    "DEFAULT_POLICY",
    "IDENTITY_LABELS",
    "Alert",
    "AlertGroup",
    "AlertManager",
    "AlertStatus",
    "Escalation",
    "EscalationLevel",
    "EscalationPolicy",
    "Notification",
    "Notifier",
    "RecordingNotifier",
    "WebhookNotifier",
    "alert_from_signal",
    "fingerprint",
    "policy_from_graph",
    "severity_of",
]

IDENTITY_LABELS = ("alertname", "node", "metric")


def fingerprint(labels: Mapping[str, str]) -> str:
    """Return the sha256 of the sorted identity labels (alertname, node, metric)."""
    ident = sorted((k, labels.get(k, "")) for k in IDENTITY_LABELS)
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()


def severity_of(score: float) -> str:
    """Return the Alertmanager-style severity of a signal score (inverse of the intake map)."""
    if score >= 0.95:
        return "critical"
    return "warning" if score >= 0.7 else "info"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert; ``inhibited_by`` and ``silenced_by`` are filled on the copies a manager returns.

    Attributes:
        fingerprint: sha256 of the identity labels; one per ongoing deviation.
        signal_ids: the signals that raised (or re-raised) it.
        updated_at: when the manager last received it.
        inhibited_by: fingerprint of the firing alert that mutes this one, if any.
        silenced_by: ids of the silences that mute it.
    """

    fingerprint: str
    name: str
    node: str
    severity: str
    labels: Mapping[str, str]
    starts_at: float
    ends_at: float | None
    signal_ids: tuple[str, ...]
    status: AlertStatus
    updated_at: float
    inhibited_by: str | None = None
    silenced_by: tuple[str, ...] = ()

    @property
    def muted(self) -> bool:
        """Whether the alert is inhibited or silenced (kept and shown, never notified)."""
        return self.inhibited_by is not None or bool(self.silenced_by)

    def as_dict(self) -> dict[str, object]:
        """Return the JSON form used by notifications and the API."""
        return {
            "fingerprint": self.fingerprint,
            "name": self.name,
            "node": self.node,
            "severity": self.severity,
            "labels": dict(self.labels),
            "status": self.status,
            "startsAt": self.starts_at,
            "endsAt": self.ends_at,
            "updatedAt": self.updated_at,
            "signals": list(self.signal_ids),
            "inhibited": self.inhibited_by is not None,
            "inhibitedBy": self.inhibited_by,
            "silenced": bool(self.silenced_by),
            "silencedBy": list(self.silenced_by),
        }


def alert_from_signal(signal: Signal, at: float) -> Alert:
    """Build the firing (or, for a cleared signal, resolved) alert of ``signal``."""
    severity = severity_of(signal.score)
    labels = {
        "alertname": signal.metric,
        "node": signal.node,
        "metric": signal.metric,
        "direction": signal.direction,
        "detector": signal.detector,
        "severity": severity,
    }
    return Alert(
        fingerprint=fingerprint(labels),
        name=signal.metric,
        node=signal.node,
        severity=severity,
        labels=labels,
        starts_at=signal.onset,
        ends_at=None if signal.active else at,
        signal_ids=(signal.id,),
        status="firing" if signal.active else "resolved",
        updated_at=at,
    )


@dataclass(frozen=True, slots=True)
class AlertGroup:
    """Alerts on a root node and on its alerting transitive callers."""

    id: str
    root: str
    alerts: tuple[Alert, ...]
    first_update: float
    last_update: float

    @property
    def status(self) -> AlertStatus:
        """Return ``firing`` while any alert of the group fires."""
        return "firing" if any(a.status == "firing" for a in self.alerts) else "resolved"


@dataclass
class _GroupState:
    next_flush: float
    last_key: frozenset[tuple[str, str]] = frozenset()
    last_sent: float | None = None
    notified_firing: set[str] = field(default_factory=set)
    escalated: set[str] = field(default_factory=set)


class AlertManager:
    """Holds alerts, silences and inhibit rules; computes groups, notifications, escalations."""

    def __init__(
        self,
        clock: Clock,
        topology: Callable[[], nx.DiGraph],
        group_wait: float = 2.0,
        group_interval: float = 30.0,
        repeat_interval: float = 3600.0,
        *,
        inhibit_rules: Sequence[InhibitRule] = (),
        escalation: EscalationPolicy = DEFAULT_POLICY,
    ) -> None:
        self.clock = clock
        self.topology = topology
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.repeat_interval = repeat_interval
        self.inhibit_rules = list(inhibit_rules)
        self.escalation = escalation
        self._alerts: dict[str, Alert] = {}
        self._received: dict[str, float] = {}
        self._silences = Silences()
        self._state: dict[str, _GroupState] = {}
        self._lock = threading.RLock()

    # -- intake ---------------------------------------------------------------------------

    def from_signal(self, signal: Signal) -> Alert:
        """Fire (or, for a cleared signal, resolve) the alert of ``signal`` and return it."""
        now = self.clock.now()
        alert = alert_from_signal(signal, now)
        if signal.active:
            return self.fire(alert)
        with self._lock:
            known = alert.fingerprint in self._alerts
        return self.resolve(alert.fingerprint, now) if known else alert

    def fire(self, alert: Alert) -> Alert:
        """Store a firing alert; a re-sent one updates the stored alert instead of duplicating."""
        with self._lock:
            old = self._alerts.get(alert.fingerprint)
            if old is not None and old.status == "firing":
                ids = tuple(dict.fromkeys((*old.signal_ids, *alert.signal_ids)))
                alert = replace(
                    alert, starts_at=min(old.starts_at, alert.starts_at), signal_ids=ids
                )
            else:
                self._received[alert.fingerprint] = alert.updated_at
            alert = replace(alert, status="firing", ends_at=None, inhibited_by=None, silenced_by=())
            self._alerts[alert.fingerprint] = alert
            return alert

    def resolve(self, fingerprint: str, at: float) -> Alert:
        """Mark an alert resolved at ``at``; raise ``NotFound`` for an unknown fingerprint."""
        with self._lock:
            old = self._alerts.get(fingerprint)
            if old is None:
                raise NotFound(f"no alert with fingerprint {fingerprint!r}")
            if old.status == "resolved":
                return old
            done = replace(old, status="resolved", ends_at=at, updated_at=at)
            self._alerts[fingerprint] = done
            return done

    # -- silences -------------------------------------------------------------------------

    def add_silence(
        self,
        matchers: Sequence[Matcher],
        starts: float,
        ends: float,
        created_by: str,
        comment: str = "",
    ) -> str:
        """Add a silence and return its id; raise ``ConfigError`` (a ValueError) saying why not."""
        with self._lock:
            return self._silences.add(
                matchers, starts, ends, created_by, comment, now=self.clock.now()
            )

    def expire(self, silence_id: str) -> Silence:
        """End a silence now; raise ``NotFound`` for an unknown id."""
        with self._lock:
            return self._silences.expire(silence_id, self.clock.now())

    def silences(self) -> list[Silence]:
        """Return every silence (pending, active and expired)."""
        with self._lock:
            return self._silences.all()

    # -- views ----------------------------------------------------------------------------

    def alerts(self) -> list[Alert]:
        """Return every alert, marked inhibited / silenced as of now."""
        return [a for g in self.groups() for a in g.alerts]

    def groups(self, now: float | None = None) -> list[AlertGroup]:
        """Return the topology groups with marked alerts, root name order."""
        at = self.clock.now() if now is None else now
        with self._lock:
            return self._groups(at)

    def _groups(self, now: float) -> list[AlertGroup]:
        alerts = list(self._alerts.values())
        started: dict[str, float] = {}
        for a in alerts:
            started[a.node] = min(a.starts_at, started.get(a.node, a.starts_at))
        roots = roots_of(started, self.topology())
        marked = self._mark(alerts, roots, now)
        by_root: dict[str, list[Alert]] = {}
        for a in marked:
            by_root.setdefault(roots[a.node], []).append(a)
        return [self._group(root, members) for root, members in sorted(by_root.items())]

    def _group(self, root: str, members: list[Alert]) -> AlertGroup:
        members.sort(key=lambda a: (a.starts_at, a.fingerprint))
        received = [self._received.get(a.fingerprint, a.updated_at) for a in members]
        last = max(a.updated_at for a in members)
        return AlertGroup(group_id(root), root, tuple(members), min(received), last)

    def _mark(self, alerts: list[Alert], roots: Mapping[str, str], now: float) -> list[Alert]:
        firing = [a for a in alerts if a.status == "firing"]
        root_source: dict[str, str] = {}
        for a in sorted(firing, key=lambda a: (a.starts_at, a.fingerprint)):
            root_source.setdefault(a.node, a.fingerprint)
        below = callers_inhibited(roots)
        out = []
        for a in alerts:
            by = root_source.get(below[a.node]) if a.node in below else None
            by = by or self._rule_source(a, firing)
            out.append(
                replace(a, inhibited_by=by, silenced_by=self._silences.muting(a.labels, now))
            )
        return out

    def _rule_source(self, target: Alert, firing: Iterable[Alert]) -> str | None:
        for rule in self.inhibit_rules:
            for src in firing:
                if src.fingerprint != target.fingerprint and rule.inhibits(
                    src.labels, target.labels
                ):
                    return src.fingerprint
        return None

    # -- notifications and escalation -----------------------------------------------------

    def due(self, now: float) -> list[Notification]:
        """Return the notifications due at ``now`` and drop resolved alerts once flushed."""
        with self._lock:
            groups = self._groups(now)
            self._sync_states(groups)
            out = []
            for g in groups:
                st = self._state.setdefault(g.id, _GroupState(g.first_update + self.group_wait))
                if now < st.next_flush:
                    continue
                note = self._flush(g, st, now)
                st.next_flush = now + self.group_interval
                if note is not None:
                    out.append(note)
            return out

    def _flush(self, g: AlertGroup, st: _GroupState, now: float) -> Notification | None:
        visible = tuple(
            a
            for a in g.alerts
            if not a.muted and (a.status == "firing" or a.fingerprint in st.notified_firing)
        )
        key = frozenset((a.fingerprint, a.status) for a in visible)
        firing = any(a.status == "firing" for a in visible)
        changed = key != st.last_key
        stale = st.last_sent is None or now - st.last_sent >= self.repeat_interval
        repeat = not changed and firing and stale
        for a in g.alerts:
            if a.status == "resolved":
                self._alerts.pop(a.fingerprint, None)
                self._received.pop(a.fingerprint, None)
        st.last_key = frozenset(k for k in key if k[1] == "firing")
        st.notified_firing = {a.fingerprint for a in visible if a.status == "firing"}
        if not visible or not (changed or repeat):
            return None
        st.last_sent = now
        status: AlertStatus = "firing" if firing else "resolved"
        return Notification(g.id, g.root, status, visible, now, repeat)

    def _sync_states(self, groups: Sequence[AlertGroup]) -> None:
        live = {g.id for g in groups}
        for gid in [k for k in self._state if k not in live]:
            del self._state[gid]

    def escalations(self, now: float) -> list[Escalation]:
        """Return the escalation levels that became due at ``now`` (each once per episode)."""
        with self._lock:
            groups = self._groups(now)
            self._sync_states(groups)
            out = []
            for g in groups:
                live = [a for a in g.alerts if a.status == "firing" and not a.muted]
                if not live:
                    continue
                st = self._state.setdefault(g.id, _GroupState(g.first_update + self.group_wait))
                since = min(self._received.get(a.fingerprint, a.updated_at) for a in live)
                for level in self.escalation.due(now - since, st.escalated):
                    st.escalated.add(level.name)
                    fps = tuple(a.fingerprint for a in live)
                    out.append(Escalation(g.id, g.root, level.name, level.action, since, now, fps))
            return out

    def dispatch(self, notifier: Notifier, now: float) -> list[Notification]:
        """Send every notification due at ``now`` through ``notifier`` and return them."""
        notes = self.due(now)
        for n in notes:
            notifier.send(n)
        return notes
