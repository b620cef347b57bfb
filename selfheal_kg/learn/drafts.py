"""Learnt patterns as data: the ``Draft`` type, its triples, and its place in the learned graph.

Learnt patterns live in their own named graph, ``LEARNED_GRAPH``: the loader replaces the
knowledge graph on every reload of the authored files, and what was learnt must survive it.
How drafts are proposed, reviewed and promoted is :mod:`selfheal_kg.learn.patterns`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rdflib import RDF, RDFS, XSD, Literal, URIRef

from selfheal_kg.kg.history import Triple, incident_iri, ts
from selfheal_kg.kg.namespaces import KNOWLEDGE_GRAPH, LEARNED_GRAPH, SHK, SPARQL_PREFIXES, node_iri
from selfheal_kg.kg.records import local_name
from selfheal_kg.kg.store import KnowledgeStore
from selfheal_kg.learn.stats import Symptom, select

LEARNED = f"GRAPH <{LEARNED_GRAPH}>"


@dataclass(slots=True)
class Draft:
    """A learnt pattern (draft or promoted) with the incidents it was learnt from."""

    id: str
    symptoms: frozenset[Symptom]
    incidents: list[str] = field(default_factory=list)
    root_cause_type: str | None = None
    playbook: str | None = None
    status: str = "draft"

    @property
    def iri(self) -> URIRef:
        """The pattern's IRI."""
        return node_iri("pattern", self.id)


def jaccard(a: frozenset[Symptom], b: frozenset[Symptom]) -> float:
    """Return the Jaccard similarity: size of the intersection over size of the union."""
    union = a | b
    return len(a & b) / len(union) if union else 0.0



def learned_patterns(store: KnowledgeStore) -> list[Draft]:
    """Return the learnt patterns (those with ``shk:learnedFrom``) of the learned graph."""
    g = LEARNED
    drafts: dict[str, Draft] = {}
    for r in select(store, f"""SELECT ?id ?status ?rct ?pb WHERE {{ {g} {{
  ?p a shk:IncidentPattern ; shk:patternId ?id ; shk:status ?status .
  FILTER EXISTS {{ ?p shk:learnedFrom ?x }}
  OPTIONAL {{ ?p shk:rootCauseType ?rct }} OPTIONAL {{ ?p shk:suggestedPlaybook ?pb }} }} }}"""):
        pb = local_name(str(r["pb"])) if r.get("pb") else None
        rct = str(r["rct"]) if r.get("rct") else None
        drafts[str(r["id"])] = Draft(str(r["id"]), frozenset(), [], rct, pb, str(r["status"]))
    for r in select(store, f"""SELECT ?id ?metric ?dir WHERE {{ {g} {{
  ?p shk:patternId ?id ; shk:learnedFrom ?x ; shk:hasSymptom ?s .
  ?s shk:metric ?metric ; shk:direction ?dir }} }}"""):
        if (d := drafts.get(str(r["id"]))) is not None:
            d.symptoms = d.symptoms | {Symptom(str(r["metric"]), str(r["dir"]))}
    for r in select(store, f"""SELECT ?id ?inc WHERE {{ {g} {{
  ?p shk:patternId ?id ; shk:learnedFrom ?inc }} }} ORDER BY ?inc"""):
        if (d := drafts.get(str(r["id"]))) is not None:
            d.incidents.append(local_name(str(r["inc"])))
    return sorted(drafts.values(), key=lambda d: d.id)


def symptom_iri(pattern_id: str, s: Symptom, symptoms: frozenset[Symptom]) -> URIRef:
    clash = sum(1 for x in symptoms if x.metric == s.metric) > 1
    parts = (s.metric, s.direction) if clash else (s.metric,)
    return node_iri("symptom", pattern_id, *parts)


def draft_triples(d: Draft, now: float) -> list[Triple]:
    """Return the triples of a learnt pattern and its symptoms."""
    p = d.iri
    label = "Learned: " + ", ".join(sorted(f"{s.metric} {s.direction}" for s in d.symptoms))
    out: list[Triple] = [
        (p, RDF.type, SHK.IncidentPattern),
        (p, SHK.patternId, Literal(d.id)),
        (p, RDFS.label, Literal(label)),
        (p, SHK.status, Literal(d.status)),
        (p, SHK.supportCount, Literal(len(d.incidents), datatype=XSD.integer)),
        (p, SHK.proposedAt, ts(now)),
    ]
    out += [(p, SHK.learnedFrom, incident_iri(i)) for i in d.incidents]
    if d.root_cause_type:
        out.append((p, SHK.rootCauseType, Literal(d.root_cause_type)))
    if d.playbook:
        out.append((p, SHK.suggestedPlaybook, node_iri("playbook", d.playbook)))
    for s in sorted(d.symptoms, key=lambda x: (x.metric, x.direction)):
        si = symptom_iri(d.id, s, d.symptoms)
        kind = "absence" if s.metric == "telemetry.absent" else "metric"
        out += [
            (p, SHK.hasSymptom, si),
            (si, RDF.type, SHK.Symptom),
            (si, SHK.metric, Literal(s.metric)),
            (si, SHK.direction, Literal(s.direction)),
            (si, SHK.signalKind, Literal(kind)),
        ]
    return out


def write_draft(store: KnowledgeStore, d: Draft, now: float) -> None:
    """Replace the learnt pattern's triples in the learned graph (approval kept)."""
    p, g = d.iri, LEARNED
    keep = [
        t
        for t in pattern_triples(store, d.id)
        if t[0] == p and t[1] in (SHK.approvedBy, SHK.approvedAt)
    ]
    store.update(
        SPARQL_PREFIXES
        + f"DELETE {{ {g} {{ ?s ?x ?o }} }}\n"
        + f"WHERE {{ {g} {{ <{p}> shk:hasSymptom ?s . ?s ?x ?o }} }};\n"
        + f"DELETE WHERE {{ {g} {{ <{p}> ?x ?o }} }}"
    )
    store.add(LEARNED_GRAPH, draft_triples(d, now) + keep)


def pattern_triples(store: KnowledgeStore, pattern_id: str) -> list[Triple]:
    """Return the triples of a pattern and its symptoms (the learned graph, else the authored)."""
    p = node_iri("pattern", pattern_id)
    for graph in (LEARNED_GRAPH, KNOWLEDGE_GRAPH):
        held = list(store.triples(graph))
        mine = {p} | {o for s, pr, o in held if s == p and pr == SHK.hasSymptom}
        found = [t for t in held if t[0] in mine]
        if any(t[0] == p for t in found):
            return found
    return []
