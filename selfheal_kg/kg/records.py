"""Read incidents back out of the incidents graph (the graph is the record).

Incident ids reach a query only as minted IRIs (percent-encoded), never spliced as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from rdflib import Literal, URIRef

from selfheal_kg.errors import NotFound
from selfheal_kg.kg.history import incident_iri
from selfheal_kg.kg.namespaces import INCIDENTS_GRAPH, SHK, SPARQL_PREFIXES
from selfheal_kg.kg.store import KnowledgeStore, PyValue


def local_name(iri: object) -> str:
    """Return the decoded last path segment of a minted IRI (a node, pattern or playbook id)."""
    return unquote(str(iri).rstrip("/").rsplit("/", 1)[-1])


def epoch(value: PyValue) -> float:
    """Return epoch seconds for an xsd:dateTime value read from the store."""
    if isinstance(value, int | float | Decimal):
        return float(value)
    return datetime.fromisoformat(str(value)).timestamp()


def set_status(store: KnowledgeStore, inc: URIRef, value: str) -> None:
    """Replace an incident's status in one update."""
    lit = Literal(value).n3()
    store.update(
        SPARQL_PREFIXES
        + f"DELETE {{ GRAPH <{INCIDENTS_GRAPH}> {{ <{inc}> shk:status ?s }} }}\n"
        + f"INSERT {{ GRAPH <{INCIDENTS_GRAPH}> {{ <{inc}> shk:status {lit} }} }}\n"
        + f"WHERE {{ OPTIONAL {{ GRAPH <{INCIDENTS_GRAPH}> {{ <{inc}> shk:status ?s }} }} }}"
    )


def list_incidents(store: KnowledgeStore, status: str | None, limit: int) -> list[dict[str, Any]]:
    """Return incident summaries, newest first."""
    filt = f"FILTER(?status = {Literal(status).n3()})" if status else ""
    q = SPARQL_PREFIXES + f"""
SELECT ?id ?status ?openedAt ?closedAt ?node ?pattern ?root ?playbook ?succeeded WHERE {{
  ?inc a shk:Incident ; shk:incidentId ?id ; shk:openedAt ?openedAt ; shk:affects ?n ;
       shk:matchesPattern ?p .
  BIND(STRAFTER(STR(?n), "/service/") AS ?node)
  BIND(STRAFTER(STR(?p), "/pattern/") AS ?pattern)
  OPTIONAL {{ ?inc shk:status ?status }}
  OPTIONAL {{ ?inc shk:closedAt ?closedAt }}
  OPTIONAL {{ ?inc shk:hasRootCause ?rc . ?rc shk:rank 1 ; rdfs:label ?root }}
  OPTIONAL {{ ?inc shk:hasDecision/shk:chosePlaybook ?pb .
             BIND(STRAFTER(STR(?pb), "/playbook/") AS ?playbook) }}
  OPTIONAL {{ ?inc shk:hasOutcome/shk:succeeded ?succeeded }}
  {filt}
}} ORDER BY DESC(?openedAt) LIMIT {int(limit)}"""
    return [_clean(r) for r in store.query(q).dicts()]  # type: ignore[union-attr]


def _select(store: KnowledgeStore, body: str) -> list[dict[str, Any]]:
    res = store.query(SPARQL_PREFIXES + body)
    return [_clean(r) for r in res.dicts()]  # type: ignore[union-attr]


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, URIRef) else v) for k, v in row.items() if v is not None}


def incident_detail(store: KnowledgeStore, incident_id: str) -> dict[str, Any]:
    """Return one incident with signals, diagnoses, root causes, decision, steps and outcome."""
    inc = incident_iri(incident_id)
    head = _select(
        store,
        f"""SELECT ?status ?openedAt ?closedAt ?affects ?pattern WHERE {{
  <{inc}> a shk:Incident ; shk:openedAt ?openedAt ; shk:affects ?affects ;
     shk:matchesPattern ?pattern .
  OPTIONAL {{ <{inc}> shk:status ?status }} OPTIONAL {{ <{inc}> shk:closedAt ?closedAt }} }}""",
    )
    if not head:
        raise NotFound(f"no incident {incident_id!r}")
    out: dict[str, Any] = {"id": incident_id, **head[0]}
    out["signals"] = _select(
        store,
        f"""SELECT ?metric ?detector ?score ?direction ?onset ?detectedAt ?value ?baseline ?node
WHERE {{ <{inc}> shk:hasSignal ?s . ?s shk:metric ?metric ; shk:detector ?detector ;
  shk:score ?score ; shk:direction ?direction ; shk:onset ?onset ; shk:detectedAt ?detectedAt ;
  shk:value ?value ; shk:baseline ?baseline ; shk:about ?node }} ORDER BY ?onset""",
    )
    out["diagnoses"] = _select(
        store,
        f"""SELECT ?pattern ?node ?at ?rule WHERE {{ <{inc}> shk:hasDiagnosis ?d .
  ?d shk:diagnosedPattern ?pattern ; shk:about ?node ; shk:at ?at ;
     prov:wasGeneratedBy/shk:firedRule ?rule }} ORDER BY ?at""",
    )
    out["root_causes"] = _select(
        store,
        f"""SELECT ?rank ?node ?score ?path ?explanation WHERE {{ <{inc}> shk:hasRootCause ?c .
  ?c shk:rank ?rank ; rdfs:label ?node ; shk:score ?score ; shk:pathText ?path ;
     shk:explanation ?explanation }} ORDER BY ?rank""",
    )
    out["decision"] = _select(
        store,
        f"""SELECT ?why ?playbook ?needsApproval WHERE {{ <{inc}> shk:hasDecision ?d .
  ?d shk:why ?why ; shk:needsApproval ?needsApproval .
  OPTIONAL {{ ?d shk:chosePlaybook ?playbook }} }}""",
    )
    out["candidates"] = _select(
        store,
        f"""SELECT ?playbook ?utility ?pSuccess ?risk ?blastRadius ?cost ?applicable ?reason
WHERE {{ <{inc}> shk:hasDecision/shk:hasCandidate ?c . ?c shk:playbook ?playbook ;
  shk:utility ?utility ; shk:pSuccess ?pSuccess ; shk:riskLevel ?risk ;
  shk:blastRadius ?blastRadius ; shk:cost ?cost ; shk:applicable ?applicable ;
  shk:reason ?reason }} ORDER BY DESC(?utility)""",
    )
    out["steps"] = _select(
        store,
        f"""SELECT ?phase ?order ?action ?target ?started ?ended ?succeeded ?dryRun ?detail ?state
WHERE {{ <{inc}> shk:hasExecution ?e . ?e shk:phase ?phase ; shk:order ?order ;
  shk:action ?action ; shk:target ?target ; prov:startedAtTime ?started ;
  prov:endedAtTime ?ended ; shk:succeeded ?succeeded ; shk:dryRun ?dryRun ; shk:detail ?detail .
  OPTIONAL {{ ?e shk:hasRollbackPoint/shk:state ?state }} }} ORDER BY ?started ?order""",
    )
    outcome = _select(
        store,
        f"""SELECT ?succeeded ?reason ?verifiedAt ?timeToDetect ?timeToRepair ?timeToRecover
WHERE {{ <{inc}> shk:hasOutcome ?o . ?o shk:succeeded ?succeeded ; shk:reason ?reason .
  OPTIONAL {{ ?o shk:verifiedAt ?verifiedAt }} OPTIONAL {{ ?o shk:timeToDetect ?timeToDetect }}
  OPTIONAL {{ ?o shk:timeToRepair ?timeToRepair }}
  OPTIONAL {{ ?o shk:timeToRecover ?timeToRecover }} }}""",
    )
    out["outcome"] = outcome[0] if outcome else None
    out["plan"] = _select(
        store,
        f"""SELECT ?order ?target ?waitsFor WHERE {{ <{inc}> shk:hasPlanStep ?p .
  ?p shk:planOrder ?order ; shk:target ?target . OPTIONAL {{ ?p shk:waitsFor ?waitsFor }} }}
  ORDER BY ?order""",
    )
    out["approvals"] = _select(
        store,
        f"""SELECT ?approver ?at WHERE {{ <{inc}> shk:hasApproval ?a .
  ?a prov:wasAssociatedWith/rdfs:label ?approver ; prov:endedAtTime ?at }}""",
    )
    return out


__all__ = ["SHK", "incident_detail", "list_incidents", "set_status"]


@dataclass(frozen=True, slots=True)
class HeldRecord:
    """A hold as the incident record keeps it: held, never released."""

    incident: str
    pattern: str
    node: str
    opened: float
    playbook: str
    target: str
    metric: str
    before: float
    threshold: float
    stable_seconds: float
    since: float


def recorded_holds(store: KnowledgeStore) -> list[HeldRecord]:
    """Return the holds recorded in the incidents graph and not released, oldest first."""
    rows = _select(store, f"""
SELECT ?id ?pattern ?node ?opened ?playbook ?target ?metric ?before ?threshold ?stable ?since
WHERE {{
  GRAPH <{INCIDENTS_GRAPH}> {{
    ?inc a shk:Incident ; shk:incidentId ?id ; shk:openedAt ?opened ; shk:affects ?node ;
         shk:matchesPattern ?pattern ; shk:hasDecision ?d ; shk:hasRelease ?r .
    ?d shk:chosePlaybook ?playbook .
    ?r shk:target ?target ; shk:metric ?metric ; shk:levelBefore ?before ;
       shk:threshold ?threshold ; shk:stableSeconds ?stable ; shk:heldSince ?since .
    FILTER NOT EXISTS {{ ?r shk:releasedAt ?released }}
  }}
}} ORDER BY ?since ?id""")
    seen: set[str] = set()
    out: list[HeldRecord] = []
    for row in rows:
        iid = str(row["id"])
        if iid in seen:  # one row per affected node
            continue
        seen.add(iid)
        out.append(HeldRecord(
            incident=iid, pattern=local_name(row["pattern"]), node=local_name(row["node"]),
            opened=epoch(row["opened"]), playbook=local_name(row["playbook"]),
            target=local_name(row["target"]), metric=str(row["metric"]),
            before=float(str(row["before"])), threshold=float(str(row["threshold"])),
            stable_seconds=float(str(row["stable"])), since=epoch(row["since"]),
        ))
    return out

