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


def test_an_escalated_incident_absorbs_its_flapping_symptoms_only_while_its_root_deviates() -> None:
    from selfheal_kg.incident import IncidentBook, Status
    from selfheal_kg.model import Outcome

    class Quiet:
        def add(self, triples: object) -> None:
            pass

        def status(self, incident_id: str, value: str) -> None:
            pass

    book = IncidentBook(Quiet())  # type: ignore[arg-type]
    inc = book.open(diag("HighErrorRate", "pay", 1.0, 80), 1.0)
    book.attach(inc, diag("HighErrorRate", "co", 1.0, 80))
    book.close(inc, Outcome(inc.id, False, None, "escalate"), 2.0, Status.ESCALATED)
    # the provider still fails: checkout's errors flapping again belong to that incident
    still = book.find_for({"co"}, 10.0, pattern="HighErrorRate", deviating=lambda n: True)
    assert still is inc
    # the provider is back: new errors at checkout are a new fault
    assert book.find_for({"co"}, 10.0, pattern="HighErrorRate",
                         deviating=lambda n: False) is None
    # another pattern, or long after, is never absorbed
    assert book.find_for({"co"}, 10.0, pattern="HighLatency", deviating=lambda n: True) is None
    assert book.find_for({"co"}, 900.0, pattern="HighErrorRate", deviating=lambda n: True) is None
