from __future__ import annotations

from selfheal_kg.monitor.liveness import Liveness


def test_down_after_silence_and_up_again() -> None:
    lv = Liveness(stale_after=3.0)
    assert lv.update({"a": 100.0}, 101.0) == []
    changes = lv.update({"a": 100.0}, 104.0)
    assert [(c.node, c.status, c.since) for c in changes] == [("a", "down", 100.0)]
    assert lv.update({"a": 100.0}, 105.0) == []  # reported once
    assert lv.down() == {"a": 100.0}
    assert not lv.seen_since("a", 99.0)
    changes = lv.update({"a": 106.0}, 106.5)
    assert [(c.node, c.status) for c in changes] == [("a", "up")]
    assert lv.seen_since("a", 105.0) and not lv.seen_since("a", 106.0)
