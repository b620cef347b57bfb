"""Notifications of alert groups and where they go (the ``Notifier`` port and its adapters).

Modelled on Alertmanager's webhook receiver
(https://prometheus.io/docs/alerting/latest/configuration/#webhook_config).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import httpx

from selfheal_kg.errors import ConfigError

if TYPE_CHECKING:  # alerts.py imports this module: the type alone avoids a cycle
    from selfheal_kg.monitor.alerts import Alert

_log = logging.getLogger(__name__)
AlertStatus = Literal["firing", "resolved"]


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for a group: its unmuted alerts, firing and newly resolved."""

    group_id: str
    root: str
    status: AlertStatus
    alerts: tuple[Alert, ...]
    at: float
    repeat: bool = False

    def as_dict(self) -> dict[str, object]:
        """Return the JSON body a webhook receives."""
        return {
            "version": "1",
            "groupKey": self.group_id,
            "root": self.root,
            "status": self.status,
            "repeat": self.repeat,
            "at": self.at,
            "alerts": [a.as_dict() for a in self.alerts],
        }


class Notifier(Protocol):
    """Where notifications go (the port)."""

    def send(self, notification: Notification) -> bool:
        """Deliver ``notification``; return whether it was accepted. Never raise."""
        ...


class RecordingNotifier:
    """The fake notifier: keeps every notification."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> bool:
        """Record ``notification``."""
        self.sent.append(notification)
        return True


class WebhookNotifier:
    """POST each notification as JSON; failures are counted and logged, never raised."""

    def __init__(
        self, url: str, timeout: float = 5.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook URL {url!r} is not http(s)")
        self.url = url
        self.delivered = 0
        self.failures = 0
        self._client = httpx.Client(timeout=timeout, transport=transport)

    def send(self, notification: Notification) -> bool:
        """POST ``notification``; a non-2xx answer or a transport error counts as a failure."""
        try:
            resp = self._client.post(self.url, json=notification.as_dict())
        except httpx.HTTPError as exc:
            _log.warning("webhook %s failed: %s", self.url, exc)
            self.failures += 1
            return False
        if not resp.is_success:
            _log.warning("webhook %s answered %s", self.url, resp.status_code)
            self.failures += 1
            return False
        self.delivered += 1
        return True

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
