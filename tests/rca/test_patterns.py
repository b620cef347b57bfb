from __future__ import annotations

import pytest

from selfheal_kg.model import Signal
from selfheal_kg.rca.patterns import hints, load_symptoms, match

PATTERNS = {
    "Overload": (
        "saturation",
        (("http.server.request.rate", "up"), ("http.server.duration.mean", "up")),
    ),
    "HighLatency": ("saturation", (("http.server.duration.mean", "up"),)),
    "ServiceDown": ("crash", (("telemetry.absent", "up"), ("http.server.request.rate", "down"))),
}


def sig(node: str, metric: str, direction: str = "up") -> Signal:
    return Signal(
        f"{node}|{metric}",
        f"{node}|{metric}",
        node,
        metric,
        "robust_z",
        0.9,
        direction,
        1.0,
        1.0,
        1.0,
        0.0,
    )  # type: ignore[arg-type]


def test_match_shares_and_absence() -> None:
    got = match(
        PATTERNS,
        [
            sig("co", "http.server.request.rate"),
            sig("co", "http.server.duration.mean"),
            sig("inv", "http.server.duration.mean"),
        ],
        down=["pay"],
    )
    by = {(m.pattern, m.node): m.score for m in got}
    assert by[("Overload", "co")] == 1.0
    assert by[("Overload", "inv")] == 0.5
    assert by[("HighLatency", "inv")] == 1.0
    assert by[("ServiceDown", "pay")] == 0.5


def test_corroborated_patterns_hint_more_strongly() -> None:
    got = hints(
        match(
            PATTERNS,
            [
                sig("co", "http.server.request.rate"),
                sig("co", "http.server.duration.mean"),
                sig("inv", "http.server.duration.mean"),
            ],
        )
    )
    assert got["co"] == pytest.approx(0.75)
    assert got["inv"] == pytest.approx(0.5)


def test_shipped_patterns_are_read_from_the_graph() -> None:
    from selfheal_kg.kg.loader import KnowledgeLoader
    from selfheal_kg.kg.store import OxigraphStore
    from selfheal_kg.paths import shipped

    store = OxigraphStore(None)
    KnowledgeLoader(store, shipped("ontology")).load_all([], shipped("playbooks"))
    got = load_symptoms(store)
    assert got["ServiceDown"][0] == "process-crash"
    assert ("http.server.error.ratio", "up") in got["HighErrorRate"][1]


def test_a_conclusion_backed_by_more_symptoms_is_a_stronger_hint() -> None:
    from selfheal_kg.rca.patterns import diagnosis_hints

    patterns = {
        "Overload": ("capacity", (("http.server.request.rate", "up"),
                                  ("http.server.duration.mean", "up"))),
        "HighLatency": ("saturation", (("http.server.duration.mean", "up"),)),
    }
    got = diagnosis_hints([("co", "HighLatency"), ("co", "Overload"), ("inv", "HighLatency"),
                           ("x", "NotInTheGraph")], patterns)
    assert got == {"co": 0.875, "inv": 0.75, "x": 0.75}
    # stronger than the bare match of the same pattern's symptoms
    assert hints([]) == {} and got["inv"] > 0.5
