from __future__ import annotations

from dataclasses import dataclass

from selfheal_kg.act.verify import REGRESSION_GRACE, verify


@dataclass(frozen=True)
class Crit:
    metric: str
    condition: str
    deadline_seconds: float = 30.0


class Live:
    def __init__(self, seen: dict[str, float], active: set[tuple[str, str]]) -> None:
        self.seen = seen
        self.active = active
        self.late: dict[str, float] = {}  # signals opened after the repair: id → onset

    def seen_since(self, node: str, t: float) -> bool:
        return self.seen.get(node, 0.0) > t

    def signal_active(self, node: str, metric: str) -> bool:
        return (node, metric) in self.active

    def active_ids(self) -> set[str]:
        return {f"{n}|{m}" for n, m in self.active}

    def opened_since(self, nodes: object, t: float, metrics: object = None,
                     until: float | None = None) -> list[str]:
        return sorted(i for i, onset in self.late.items()
                      if onset > t and (until is None or onset <= until))


def test_health_up_needs_telemetry_after_the_repair() -> None:
    crit = [Crit("health", "health == up")]
    assert not verify(crit, "a", 100.0, 101.0, Live({"a": 99.0}, set())).passed
    assert verify(crit, "a", 100.0, 101.0, Live({"a": 100.5}, set())).passed


def test_cleared_reads_live_signals_and_expires_after_deadline() -> None:
    crit = [Crit("http.server.error.ratio", "cleared", deadline_seconds=10)]
    live = Live({}, {("a", "http.server.error.ratio")})
    v = verify(crit, "a", 100.0, 105.0, live)
    assert not v.passed and not v.expired
    assert verify(crit, "a", 100.0, 111.0, live).expired
    live.active.clear()
    assert verify(crit, "a", 100.0, 111.0, live).passed


def test_unknown_condition_never_passes() -> None:
    v = verify([Crit("x", "vibes are good")], "a", 0.0, 1.0, Live({"a": 5.0}, set()))
    assert not v.passed and "unknown condition" in v.detail


def test_lingering_symptoms_of_dependents_hold_verification_back() -> None:
    crit = [Crit("health", "health == up")]
    live = Live({"a": 101.0}, {("caller", "http.server.error.ratio")})
    v = verify(crit, "a", 100.0, 102.0, live, symptoms=["caller|http.server.error.ratio"])
    assert not v.passed and "still active" in v.detail
    live.active.clear()
    assert verify(crit, "a", 100.0, 103.0, live, symptoms=["caller|http.server.error.ratio"]).passed


def test_a_new_signal_after_the_repair_is_a_regression_once_it_has_lasted() -> None:
    live = Live({"a": 101.0}, set())
    live.late = {"caller|latency@101": 101.0}
    crit = [Crit("health", "health == up")]
    young = verify(crit, "a", 100.0, 102.0, live, dependents=["caller"])
    assert not young.passed and young.regressed == ()
    assert "watched 5 s before they count as a regression: caller|latency@101" in young.detail
    v = verify(crit, "a", 100.0, 101.0 + REGRESSION_GRACE, live, dependents=["caller"])
    assert not v.passed and v.regressed == ("caller|latency@101",)
    assert "regression after the repair: caller|latency@101" in v.detail


def test_a_blip_that_clears_within_the_grace_is_no_regression() -> None:
    live = Live({"a": 101.0}, set())
    live.late = {"caller|errors@101": 101.0}
    crit = [Crit("health", "health == up")]
    assert not verify(crit, "a", 100.0, 103.0, live, dependents=["caller"]).passed
    live.late.clear()  # the callers' errors stopped once the restart was up
    v = verify(crit, "a", 100.0, 104.0, live, dependents=["caller"])
    assert v.passed and v.regressed == ()
