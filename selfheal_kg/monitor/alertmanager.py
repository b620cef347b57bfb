"""Alertmanager webhook intake: a version 4 payload becomes firing and cleared ``Signal`` values.

Payload: https://prometheus.io/docs/alerting/latest/configuration/#webhook_config. Each alert
becomes one signal: node from the first of the labels ``service``, ``service_name``, ``job``,
``instance``; metric from ``alertname``; score from ``severity``; onset from ``startsAt``.
A resolved alert becomes a signal with ``active=False`` (a clearing). Every refusal is a
``TelemetryError`` naming the offending field, e.g. ``alerts[2].labels.alertname``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from selfheal_kg.errors import TelemetryError
from selfheal_kg.model import Signal

DETECTOR = "alertmanager"
NODE_LABELS = ("service", "service_name", "job", "instance")
SEVERITY_SCORE = {"critical": 1.0, "warning": 0.8, "info": 0.5}
DEFAULT_SCORE = SEVERITY_SCORE["warning"]  # an alert without a known severity still matters
MAX_ALERTS = 5000
MAX_LABEL_CHARS = 1024
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)
_FINGERPRINT = re.compile(r"^[0-9a-fA-F]{1,64}$")
_ZERO_YEAR = "0001-"  # Go's zero time: "no end" in Alertmanager payloads


@dataclass(frozen=True, slots=True)
class WebhookBatch:
    """One webhook call: group metadata and the signals (firing and cleared) it carried."""

    group_key: str
    receiver: str
    status: str
    signals: tuple[Signal, ...]

    @property
    def firing(self) -> tuple[Signal, ...]:
        """Return the active signals."""
        return tuple(s for s in self.signals if s.active)

    @property
    def resolutions(self) -> tuple[Signal, ...]:
        """Return the cleared signals (resolved alerts)."""
        return tuple(s for s in self.signals if not s.active)


def parse_body(body: bytes, now: float) -> WebhookBatch:
    """Decode a JSON body and parse it with :func:`parse_webhook`."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TelemetryError(f"body: not a JSON document ({exc})") from exc
    return parse_webhook(payload, now)


def parse_webhook(payload: object, now: float) -> WebhookBatch:
    """Parse a decoded webhook v4 payload received at ``now``.

    Raises:
        TelemetryError: naming the first bad field.
    """
    if not isinstance(payload, dict):
        raise TelemetryError("body: a webhook payload is a JSON object")
    if payload.get("version") != "4":
        raise TelemetryError(f'version: expected "4", got {payload.get("version")!r}')
    group_key = _str(payload, "groupKey", "groupKey", required=False)
    receiver = _str(payload, "receiver", "receiver", required=False)
    status = _status(payload, "status")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise TelemetryError("alerts: expected a list")
    if len(alerts) > MAX_ALERTS:
        raise TelemetryError(f"alerts: {len(alerts)} alerts is above the cap of {MAX_ALERTS}")
    signals = tuple(_signal(a, f"alerts[{i}]", now) for i, a in enumerate(alerts))
    return WebhookBatch(group_key, receiver, status, signals)


def _signal(alert: object, where: str, now: float) -> Signal:
    if not isinstance(alert, dict):
        raise TelemetryError(f"{where}: expected an object")
    status = _status(alert, where + ".status")
    labels = _labels(alert.get("labels"), where + ".labels")
    _labels(alert.get("annotations", {}), where + ".annotations")
    name = labels.get("alertname", "")
    if not name:
        raise TelemetryError(f"{where}.labels.alertname: missing or empty")
    node = next((labels[k] for k in NODE_LABELS if labels.get(k)), "")
    if not node:
        raise TelemetryError(f"{where}.labels: needs one of {', '.join(NODE_LABELS)}")
    onset = parse_time(alert.get("startsAt"), where + ".startsAt")
    ends = _end(alert.get("endsAt"), where + ".endsAt")
    active = status == "firing"
    series = f"{DETECTOR}:{_fingerprint(alert, labels)}"
    score = SEVERITY_SCORE.get(labels.get("severity", "").lower(), DEFAULT_SCORE)
    return Signal(
        id=f"{series}@{onset:.3f}",
        series=series,
        node=node,
        metric=name,
        detector=DETECTOR,
        score=score,
        direction="up",
        onset=onset,
        detected_at=now if active or ends is None else ends,
        value=1.0 if active else 0.0,
        baseline=0.0,
        active=active,
    )


def _status(obj: Mapping[str, object], where: str) -> str:
    status = obj.get("status")
    if status not in ("firing", "resolved"):
        raise TelemetryError(f'{where}: expected "firing" or "resolved", got {status!r}')
    return str(status)


def _str(obj: Mapping[str, object], key: str, where: str, *, required: bool) -> str:
    value = obj.get(key, None if required else "")
    if not isinstance(value, str):
        raise TelemetryError(f"{where}: expected a string")
    return value


def _labels(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TelemetryError(f"{where}: expected an object of strings")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(v, str):
            raise TelemetryError(f"{where}.{k}: expected a string, got {type(v).__name__}")
        if len(k) > MAX_LABEL_CHARS or len(v) > MAX_LABEL_CHARS:
            raise TelemetryError(f"{where}.{k[:64]}: above {MAX_LABEL_CHARS} characters")
        out[k] = v
    return out


def _fingerprint(alert: Mapping[str, object], labels: Mapping[str, str]) -> str:
    given = alert.get("fingerprint")
    if isinstance(given, str) and _FINGERPRINT.match(given):
        return given.lower()
    ident = json.dumps(sorted(labels.items()))
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def parse_time(value: object, where: str) -> float:
    """Parse an RFC 3339 timestamp (nanoseconds allowed, as Go writes them) to epoch seconds."""
    if not isinstance(value, str):
        raise TelemetryError(f"{where}: expected an RFC 3339 timestamp string")
    m = _RFC3339.match(value.strip())
    if m is None:
        raise TelemetryError(f"{where}: {value[:64]!r} is not an RFC 3339 timestamp")
    date, clock, frac, zone = m.groups()
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        t = datetime.fromisoformat(f"{date}T{clock}{zone}").astimezone(UTC)
    except ValueError as exc:
        raise TelemetryError(f"{where}: {value[:64]!r} is not a valid time ({exc})") from exc
    return t.timestamp() + (int(frac) / 10 ** len(frac) if frac else 0.0)


def _end(value: object, where: str) -> float | None:
    """Return ``endsAt`` in epoch seconds, or ``None`` when absent or Go's zero time."""
    if value is None or value == "" or (isinstance(value, str) and value.startswith(_ZERO_YEAR)):
        return None
    return parse_time(value, where)
