from __future__ import annotations

from selfheal_kg.incident import Incident
from selfheal_kg.model import Diagnosis


def diag(pattern: str, node: str, at: float, priority: int) -> Diagnosis:
    return Diagnosis(f"{pattern}@{at}", pattern, node, "r", (), at, at, priority)


def test_the_highest_priority_diagnosis_names_the_pattern_at_a_node() -> None:
    inc = Incident("i", "HighLatency", "co", 1.0, 1.0)
    inc.diagnoses += [diag("HighLatency", "co", 1.0, 60), diag("Overload", "co", 2.0, 70)]
    inc.diagnoses += [diag("HighErrorRate", "fe", 1.0, 80)]
    assert inc.pattern_at("co") == "Overload"
    assert inc.pattern_at("fe") == "HighErrorRate"
    assert inc.pattern_at("nowhere") == "HighLatency"
    inc.diagnoses.append(diag("Overload", "co", 3.0, 70))
    assert inc.pattern_at("co") == "Overload"


def test_a_hidden_root_takes_the_pattern_of_its_nearest_diagnosed_caller() -> None:
    from selfheal_kg.model import RootCause

    # payment's latency opened the incident; the root is the database RCA inferred below
    # inventory, where the slow query was diagnosed
    inc = Incident("i", "HighLatency", "pay", 1.0, 1.0)
    inc.diagnoses += [diag("HighLatency", "pay", 1.0, 60), diag("HighLatency", "fe", 1.5, 60),
                      diag("SlowQuery", "inv", 2.0, 75)]
    inc.root_causes = [RootCause("inv-db", 1, 0.9, ("gw", "fe", "co", "inv", "inv-db"), (), "")]
    assert inc.pattern_at("inv-db") == "SlowQuery"
    # a node with diagnoses of its own keeps them; one on no path falls back
    assert inc.pattern_at("pay") == "HighLatency"
    assert inc.pattern_at("nowhere") == "HighLatency"
