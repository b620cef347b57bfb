"""The safety gate, on a FakeClock (no sleeping)."""

from __future__ import annotations

import pytest

from selfheal_kg.act.safety import Permit, Refusal, SafetyGate
from selfheal_kg.clock import FakeClock


def permit(result: Permit | Refusal) -> Permit:
    assert isinstance(result, Permit), result
    return result


def refusal(result: Permit | Refusal) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


def test_a_flapping_target_is_acted_on_a_bounded_number_of_times() -> None:
    clock = FakeClock()
    gate = SafetyGate(clock, per_target_budget=3, window=600.0)
    outcomes: list[Permit | Refusal] = []
    for _ in range(10):  # the fix "works" each time, and the fault comes back a minute later
        outcome = gate.acquire("checkout")
        if isinstance(outcome, Permit):
            gate.release(outcome, success=True)
        outcomes.append(outcome)
        clock.advance(59)
    assert [isinstance(o, Permit) for o in outcomes] == [True] * 3 + [False] * 7
    refused = [o for o in outcomes if isinstance(o, Refusal)]
    assert all(r.reason == "budget" and r.escalate for r in refused)
    assert all("budget spent" in r.detail for r in refused)


def test_budget_spent_says_escalate_and_recovers_after_the_window() -> None:
    clock = FakeClock()
    gate = SafetyGate(clock, per_target_budget=3, window=600.0)
    start = clock.now()
    for _ in range(3):
        gate.release(permit(gate.acquire("checkout")), success=True)
        clock.advance(60)
    r = refusal(gate.acquire("checkout"))
    assert r.reason == "budget" and r.escalate
    assert "budget spent" in r.detail
    assert r.until == start + 600.0
    clock.set(start + 600.0)
    assert isinstance(gate.acquire("checkout"), Permit)


def test_backoff_doubles_and_caps() -> None:
    clock = FakeClock()
    gate = SafetyGate(clock, per_target_budget=100, window=3600.0,
                      backoff_initial=10.0, backoff_max=300.0)
    waits = []
    for _ in range(8):
        gate.release(permit(gate.acquire("db")), success=False)
        r = refusal(gate.acquire("db"))
        assert r.reason == "backoff" and not r.escalate
        assert r.until is not None
        waits.append(r.until - clock.now())
        clock.advance(waits[-1] - 1)
        assert refusal(gate.acquire("db")).reason == "backoff"  # one second early
        clock.advance(1)
    assert waits == [10, 20, 40, 80, 160, 300, 300, 300]


def test_quiet_window_resets_the_backoff() -> None:
    clock = FakeClock()
    gate = SafetyGate(clock, per_target_budget=100, window=600.0)
    for _ in range(4):
        gate.release(permit(gate.acquire("db")), success=False)
        clock.advance(300)
    clock.advance(600)
    gate.release(permit(gate.acquire("db")), success=False)
    r = refusal(gate.acquire("db"))
    assert r.until == clock.now() + 10.0


def test_success_keeps_the_current_delay() -> None:
    clock = FakeClock()
    gate = SafetyGate(clock, per_target_budget=100, window=3600.0)
    for _ in range(3):
        gate.release(permit(gate.acquire("db")), success=False)
        clock.advance(100)
    gate.release(permit(gate.acquire("db")), success=True)
    assert refusal(gate.acquire("db")).until == clock.now() + 40.0


def test_the_lock_blocks_a_second_concurrent_acquire() -> None:
    clock = FakeClock()
    gate = SafetyGate(clock, backoff_initial=0.0)
    first = permit(gate.acquire("checkout"))
    r = refusal(gate.acquire("checkout"))
    assert r.reason == "locked" and r.until is None
    assert isinstance(gate.acquire("cart"), Permit)  # other targets are not locked
    gate.release(first, success=True)
    assert isinstance(gate.acquire("checkout"), Permit)


def test_the_global_limit_holds() -> None:
    clock = FakeClock()
    gate = SafetyGate(clock, max_concurrent=2)
    held = [permit(gate.acquire("a")), permit(gate.acquire("b"))]
    r = refusal(gate.acquire("c"))
    assert r.reason == "concurrency"
    assert gate.in_flight() == 2
    gate.release(held[0], success=True)
    assert isinstance(gate.acquire("c"), Permit)
    assert refusal(gate.acquire("d")).reason == "concurrency"


def test_a_concurrency_refusal_does_not_spend_budget() -> None:
    clock = FakeClock()
    gate = SafetyGate(clock, per_target_budget=1, max_concurrent=1)
    held = permit(gate.acquire("a"))
    for _ in range(5):
        assert refusal(gate.acquire("b")).reason == "concurrency"
    gate.release(held, success=True)
    assert isinstance(gate.acquire("b"), Permit)


def test_double_release_is_refused() -> None:
    gate = SafetyGate(FakeClock())
    p = permit(gate.acquire("a"))
    gate.release(p, success=True)
    with pytest.raises(ValueError, match="not held"):
        gate.release(p, success=True)


def test_bad_configuration() -> None:
    with pytest.raises(ValueError):
        SafetyGate(FakeClock(), per_target_budget=0)
    with pytest.raises(ValueError):
        SafetyGate(FakeClock(), backoff_initial=10, backoff_max=5)


def test_a_restoring_permit_takes_the_lock_but_no_budget_nor_backoff() -> None:
    clock = FakeClock()
    gate = SafetyGate(clock, per_target_budget=1, backoff_initial=60.0, max_concurrent=1)
    gate.release(permit(gate.acquire("checkout")), success=False)
    assert refusal(gate.acquire("checkout")).reason == "budget"
    # putting back what the repair changed is allowed while the budget is spent ...
    restoring = permit(gate.acquire("checkout", restoring=True))
    assert restoring.restoring
    # ... but it holds the lock and the concurrency slot like any healing
    assert refusal(gate.acquire("checkout", restoring=True)).reason == "locked"
    assert refusal(gate.acquire("payment", restoring=True)).reason == "concurrency"
    gate.release(restoring, success=True)
    clock.advance(61.0)
    # its release changed neither the failure streak nor the budget: still spent
    assert refusal(gate.acquire("checkout")).reason == "budget"
    assert gate.delay(1) == 60.0


def test_a_restoring_release_leaves_the_backoff_as_it_was() -> None:
    clock = FakeClock()
    gate = SafetyGate(clock, per_target_budget=5, backoff_initial=10.0)
    gate.release(permit(gate.acquire("checkout")), success=True)  # backoff until 10
    clock.advance(11.0)
    gate.release(permit(gate.acquire("checkout", restoring=True)), success=False)
    assert isinstance(gate.acquire("checkout"), Permit), "a restore starts no backoff"
