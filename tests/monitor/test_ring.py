"""The bounded ring of a series' history."""

from __future__ import annotations

import pytest

from selfheal_kg.monitor.ring import Ring


def test_ring_keeps_the_latest_points_oldest_first() -> None:
    ring = Ring(3)
    assert ring.last_time() is None
    for t in range(5):
        assert ring.append(float(t), t * 10.0)
    times, values = ring.arrays()
    assert list(times) == [2.0, 3.0, 4.0]
    assert list(values) == [20.0, 30.0, 40.0]
    assert len(ring) == 3
    assert ring.last_time() == 4.0


def test_ring_refuses_older_points_and_copies_out() -> None:
    ring = Ring(4)
    ring.append(5.0, 1.0)
    assert not ring.append(4.0, 2.0)
    assert ring.append(5.0, 3.0)  # same time is allowed (two instances of one service)
    times, _ = ring.arrays()
    times[0] = 99.0
    assert list(ring.arrays()[0]) == [5.0, 5.0]


def test_ring_needs_room() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Ring(0)
