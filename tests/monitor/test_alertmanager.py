from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from selfheal_kg.errors import TelemetryError
from selfheal_kg.monitor.alertmanager import parse_body, parse_time, parse_webhook

NOW = 1_700_000_500.0


def payload() -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "selfheal",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "HighLatency",
                    "service": "checkout",
                    "job": "ignored",
                    "severity": "critical",
                },
                "annotations": {"summary": "p95 above 1s"},
                "startsAt": "2023-11-14T22:13:20.123456789Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": "c0ffee12",
            },
            {
                "status": "resolved",
                "labels": {"alertname": "TargetDown", "job": "orders-db", "severity": "info"},
                "annotations": {},
                "startsAt": "2023-11-14T23:13:20+01:00",
                "endsAt": "2023-11-14T22:20:00Z",
                "fingerprint": "abc",
            },
        ],
    }


def test_firing_and_resolved_alerts_become_signals() -> None:
    batch = parse_webhook(payload(), NOW)
    assert batch.receiver == "selfheal" and batch.status == "firing"
    fire, gone = batch.signals
    assert (fire.node, fire.metric, fire.score, fire.direction) == (
        "checkout",
        "HighLatency",
        1.0,
        "up",
    )
    assert fire.detector == "alertmanager" and fire.active
    assert fire.onset == pytest.approx(1_700_000_000.123457, abs=1e-5)
    assert fire.detected_at == NOW
    assert fire.series == "alertmanager:c0ffee12"
    assert (gone.node, gone.metric, gone.score, gone.active) == (
        "orders-db",
        "TargetDown",
        0.5,
        False,
    )
    assert gone.onset == 1_700_000_000.0  # +01:00 offset honoured
    assert gone.detected_at == datetime(2023, 11, 14, 22, 20, tzinfo=UTC).timestamp()
    assert batch.firing == (fire,) and batch.resolutions == (gone,)


def test_signal_id_is_stable_across_resends() -> None:
    a = parse_webhook(payload(), NOW).signals[0]
    b = parse_webhook(payload(), NOW + 30).signals[0]
    assert a.id == b.id


def test_node_label_priority_and_unknown_severity() -> None:
    p = payload()
    p["alerts"][0]["labels"] = {"alertname": "X", "instance": "10.0.0.1:9100", "job": "node"}
    p["alerts"][0].pop("fingerprint")
    sig = parse_webhook(p, NOW).signals[0]
    assert sig.node == "node" and sig.score == 0.8
    assert sig.series.startswith("alertmanager:") and len(sig.series) > len("alertmanager:")


def _mutate(path: list[Any], value: Any) -> dict[str, Any]:
    p = copy.deepcopy(payload())
    target: Any = p
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return p


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (["version"], "3", "version"),
        (["alerts"], {"a": 1}, "alerts: expected a list"),
        (["alerts", 0], "oops", "alerts[0]: expected an object"),
        (["alerts", 1, "status"], "pending", "alerts[1].status"),
        (["alerts", 0, "labels", "alertname"], KeyError, "alerts[0].labels.alertname"),
        (["alerts", 0, "labels", "severity"], 3, "alerts[0].labels.severity"),
        (["alerts", 1, "labels", "job"], KeyError, "alerts[1].labels: needs one of"),
        (["alerts", 0, "startsAt"], "yesterday", "alerts[0].startsAt"),
        (["alerts", 0, "startsAt"], "2023-13-45T00:00:00Z", "alerts[0].startsAt"),
        (["alerts", 1, "endsAt"], 12, "alerts[1].endsAt"),
        (["alerts", 0, "annotations"], [], "alerts[0].annotations"),
        (["groupKey"], 5, "groupKey"),
    ],
)
def test_invalid_payloads_name_the_bad_field(path: list[Any], value: Any, field: str) -> None:
    with pytest.raises(TelemetryError) as info:
        parse_webhook(_mutate(path, value), NOW)
    assert field in str(info.value)


def test_hostile_and_non_json_bodies_are_refused_cleanly() -> None:
    with pytest.raises(TelemetryError, match="not a JSON document"):
        parse_body(b"\xff\xfe{", NOW)
    with pytest.raises(TelemetryError, match="JSON object"):
        parse_body(b"[1, 2]", NOW)
    huge = payload()
    huge["alerts"][0]["labels"]["service"] = "x" * 5000
    with pytest.raises(TelemetryError, match="above 1024"):
        parse_webhook(huge, NOW)
    assert parse_body(json.dumps(payload()).encode(), NOW).group_key


def test_parse_time_keeps_sub_microsecond_input_and_refuses_junk() -> None:
    assert parse_time("1970-01-01T00:00:01.5Z", "t") == 1.5
    with pytest.raises(TelemetryError, match="x: 'now'"):
        parse_time("now", "x")
