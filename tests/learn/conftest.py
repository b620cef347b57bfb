"""Deterministic incident histories written by the real IncidentBook on both store adapters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from selfheal_kg.clock import FakeClock
from selfheal_kg.incident import Incident, IncidentBook, Recorder, Status
from selfheal_kg.kg import records
from selfheal_kg.kg.loader import KnowledgeLoader
from selfheal_kg.kg.namespaces import INCIDENTS_GRAPH
from selfheal_kg.kg.store import KnowledgeStore, OxigraphStore, RdflibStore
from selfheal_kg.model import Candidate, Decision, Diagnosis, Outcome, Signal, StepResult
from selfheal_kg.paths import shipped

TOPOLOGY = """\
@prefix shk: <https://w3id.org/selfheal-kg/ontology#> .
@prefix svc: <https://w3id.org/selfheal-kg/id/service/> .
svc:checkout a shk:Service ; shk:serviceName "checkout" ; shk:criticality "high" .
svc:cart a shk:Service ; shk:serviceName "cart" .
"""

# Every incident of `History.run` follows this timeline (seconds after the onset):
DETECT = 10.0  # opened and diagnosed
REPAIR = 14.0  # steps done
RECOVER = 30.0  # recovery verified, incident closed


@dataclass
class History:
    """Writes incidents through IncidentBook with a FakeClock; one incident per ``run``."""

    store: KnowledgeStore
    clock: FakeClock
    book: IncidentBook

    def run(
        self,
        node: str = "checkout",
        pattern: str = "ServiceDown",
        playbook: str | None = "restart-service",
        *,
        success: bool = True,
        symptoms: Sequence[tuple[str, str]] = (("http.server.request.rate", "down"),),
        detector: str = "robust_z",
        steps: int = 1,
        gap: float = 7200.0,
    ) -> Incident:
        """Record one incident starting ``gap`` seconds after the previous one ended."""
        onset = self.clock.advance(gap)
        opened = self.clock.advance(DETECT)
        diag = Diagnosis(f"d-{opened}", pattern, node, "rule-x", (), opened, onset)
        inc = self.book.open(diag, opened)
        self.book.add_signals(inc, [
            Signal(f"{node}|{m}@{onset}", f"{node}|{m}", node, m, detector, 0.9,
                   d, onset, opened, 1.0, 0.0)  # type: ignore[arg-type]
            for m, d in symptoms
        ])
        if playbook is None:
            return inc
        cand = Candidate(playbook, node, 0.8, 0.9, "low", 0, 1.0, True, "test")
        self.book.set_decision(inc, Decision(inc.id, cand, (cand,), "test"), opened)
        repaired = self.clock.advance(REPAIR - DETECT)
        for i in range(steps):
            self.book.add_step(inc, StepResult(i + 1, "restart", node, {}, opened, repaired,
                                               success, "ok"))
        inc.repaired_at = repaired
        end = self.clock.advance(RECOVER - REPAIR)
        outcome = Outcome(inc.id, success, end if success else None, "test")
        self.book.close(inc, outcome, end, Status.RESOLVED if success else Status.FAILED)
        return inc

    def close_without_action(self, inc: Incident) -> None:
        """Close an incident nobody acted on (it went away by itself)."""
        now = self.clock.advance(60)
        self.book.close(inc, Outcome(inc.id, True, None, "cleared"), now, Status.RESOLVED)


def make_store(kind: str, tmp_path: Path) -> KnowledgeStore:
    """Return a store with the shipped ontology, shapes, patterns, playbooks and a topology."""
    store: KnowledgeStore = OxigraphStore(None) if kind == "oxigraph" else RdflibStore()
    topo = tmp_path / "topology.ttl"
    topo.write_text(TOPOLOGY, encoding="utf-8")
    KnowledgeLoader(store, shipped("ontology")).load_all([topo], shipped("playbooks"))
    return store


def history_on(store: KnowledgeStore) -> History:
    """Return a history writer on ``store`` (a fresh FakeClock)."""
    book = IncidentBook(
        Recorder(
            lambda triples: store.add(INCIDENTS_GRAPH, triples),
            lambda inc, value: records.set_status(store, inc, value),
        )
    )
    return History(store, FakeClock(), book)


@pytest.fixture(params=["oxigraph", "rdflib"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> KnowledgeStore:
    """Both adapters, loaded with the shipped knowledge."""
    return make_store(str(request.param), tmp_path)


@pytest.fixture
def history(store: KnowledgeStore) -> History:
    """A history writer on the parametrised store."""
    return history_on(store)
