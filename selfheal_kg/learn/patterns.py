"""Draft incident patterns learnt from resolved incidents that matched no known pattern.

An incident whose diagnosed pattern is not an active ``shk:IncidentPattern`` of the knowledge
graph, or is one that no playbook handles, and that was resolved anyway (a playbook worked,
or a human recorded the fix), teaches a candidate pattern: its symptom set (metric +
direction of its signal records) → root-cause type → the playbook that worked. Similar
incidents (Jaccard similarity of symptom sets ≥ 0.6) are clustered, so a recurring unknown
problem yields one draft whose support grows, not one draft per incident. Drafts are
SHACL-checked against ``ontology/shapes.ttl``, reviewed, promoted by a human (status
``active`` + ``shk:approvedBy`` / ``shk:approvedAt``) and exported as Turtle in the format
of ``ontology/patterns.ttl``.

Reads of "the patterns" see the knowledge and learned graphs together. The ``Draft`` type and
its triples are :mod:`selfheal_kg.learn.drafts`, the Turtle export
:mod:`selfheal_kg.learn.pattern_export`; their names are re-exported here.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence

import rdflib
from rdflib import RDF, Literal, URIRef

from selfheal_kg.errors import NotFound, ShaclError, Violation
from selfheal_kg.kg import records, shacl
from selfheal_kg.kg.history import Triple, incident_iri, ts
from selfheal_kg.kg.namespaces import (
    INCIDENTS_GRAPH,
    KNOWLEDGE_GRAPH,
    LEARNED_GRAPH,
    ONTOLOGY_GRAPH,
    SHAPES_GRAPH,
    SHK,
    SPARQL_PREFIXES,
    node_iri,
)
from selfheal_kg.kg.records import local_name
from selfheal_kg.kg.store import KnowledgeStore
from selfheal_kg.kg.topology import parse_turtle
from selfheal_kg.learn.drafts import (
    LEARNED,
    Draft,
    draft_triples,
    jaccard,
    learned_patterns,
    pattern_triples,
    write_draft,
)
from selfheal_kg.learn.pattern_export import export_pattern
from selfheal_kg.learn.stats import IncidentRow, Symptom, incident_rows, select
from selfheal_kg.paths import shipped

__all__ = [
    "SIMILARITY",
    "Draft",
    "active_patterns",
    "draft_triples",
    "export_pattern",
    "handled_patterns",
    "jaccard",
    "learned_patterns",
    "list_patterns",
    "pattern_triples",
    "promote",
    "propose_drafts",
    "record_resolution",
    "require_incident",
    "unmatched_resolved",
    "validate_pattern",
    "write_draft",
]

SIMILARITY = 0.6
# the authored and the learnt patterns, read as one
_PATTERN_GRAPHS = f"VALUES ?g {{ <{KNOWLEDGE_GRAPH}> <{LEARNED_GRAPH}> }} GRAPH ?g"


# ----------------------------------------------------------------------------- human input


def record_resolution(
    store: KnowledgeStore,
    incident_id: str,
    *,
    root_cause_type: str,
    playbook: str | None,
    note: str,
    by: str,
    at: float,
) -> None:
    """Record that a human resolved an incident (what the cause was, which fix worked).

    Raises:
        NotFound: no incident ``incident_id``.
    """
    inc = require_incident(store, incident_id)
    r = node_iri("resolution", incident_id)
    triples: list[Triple] = [
        (inc, SHK.hasResolution, r),
        (r, RDF.type, SHK.Resolution),
        (r, SHK.rootCauseType, Literal(root_cause_type)),
        (r, SHK.note, Literal(note)),
        (r, SHK.resolvedBy, Literal(by)),
        (r, SHK.at, ts(at)),
    ]
    if playbook:
        triples.append((r, SHK.playbook, node_iri("playbook", playbook)))
    store.add(INCIDENTS_GRAPH, triples)
    records.set_status(store, inc, "resolved")


def require_incident(store: KnowledgeStore, incident_id: str) -> URIRef:
    """Return the IRI of an incident that exists; raise ``NotFound`` otherwise."""
    inc = incident_iri(incident_id)
    if not store.query(SPARQL_PREFIXES + f"ASK {{ <{inc}> a shk:Incident }}"):
        raise NotFound(f"no incident {incident_id!r}")
    return inc


# ----------------------------------------------------------------------------- proposal


def active_patterns(store: KnowledgeStore) -> set[str]:
    """Return the ids of the active patterns, authored or learnt."""
    q = f"""SELECT ?id WHERE {{ {_PATTERN_GRAPHS} {{
  ?p a shk:IncidentPattern ; shk:patternId ?id ; shk:status "active" }} }}"""
    return {str(r["id"]) for r in select(store, q)}


def handled_patterns(store: KnowledgeStore) -> set[str]:
    """Return the ids of the patterns some playbook of the knowledge graph handles."""
    q = "SELECT DISTINCT ?p WHERE { ?pb a shk:Playbook ; shk:handles ?p }"
    return {local_name(str(r["p"])) for r in select(store, q)}


def unmatched_resolved(store: KnowledgeStore) -> list[IncidentRow]:
    """Return resolved incidents with symptoms whose pattern is unknown or has no playbook."""
    known = active_patterns(store) & handled_patterns(store)
    return [
        r
        for r in incident_rows(store)
        if r.pattern not in known
        and r.symptoms
        and ((r.tried and r.worked) or r.human_root_cause or r.human_playbook)
    ]


def propose_drafts(
    store: KnowledgeStore, now: float, similarity: float = SIMILARITY
) -> list[Draft]:
    """Cluster new unmatched resolved incidents into learnt patterns; return the changed ones.

    An incident joins the existing learnt pattern (or the new cluster) whose symptom set is
    most similar, when the Jaccard similarity reaches ``similarity``; otherwise it starts a
    new cluster. Existing patterns keep their id, symptoms and status; their support grows.
    """
    learned = learned_patterns(store)
    used = {i for d in learned for i in d.incidents}
    fresh = [r for r in unmatched_resolved(store) if r.id not in used]
    clusters: list[tuple[Draft | None, list[IncidentRow]]] = [(d, []) for d in learned]
    for row in fresh:
        _assign(clusters, row, similarity)
    changed = [_merge(d, members) for d, members in clusters if members]
    for d in changed:
        write_draft(store, d, now)
    return changed


def _assign(
    clusters: list[tuple[Draft | None, list[IncidentRow]]], row: IncidentRow, similarity: float
) -> None:
    def symptoms(c: tuple[Draft | None, list[IncidentRow]]) -> frozenset[Symptom]:
        return c[0].symptoms if c[0] is not None else c[1][0].symptoms

    scored = [(jaccard(symptoms(c), row.symptoms), i) for i, c in enumerate(clusters)]
    best = max(scored, default=(0.0, -1))
    if best[0] >= similarity:
        clusters[best[1]][1].append(row)
    else:
        clusters.append((None, [row]))


def _merge(existing: Draft | None, members: Sequence[IncidentRow]) -> Draft:
    if existing is None:
        symptoms = _majority(members)
        existing = Draft(_draft_id(symptoms), symptoms)
    existing.incidents = sorted({*existing.incidents, *(m.id for m in members)})
    existing.root_cause_type = existing.root_cause_type or _most_common(
        m.human_root_cause for m in members
    )
    existing.playbook = existing.playbook or _most_common(
        m.human_playbook or (m.playbook if m.worked else None) for m in members
    )
    return existing


def _majority(members: Sequence[IncidentRow]) -> frozenset[Symptom]:
    counts = Counter(s for m in members for s in m.symptoms)
    return frozenset(s for s, n in counts.items() if 2 * n >= len(members))


def _most_common(values: Iterable[str | None]) -> str | None:
    counts = Counter(v for v in values if v)
    return min(counts, key=lambda v: (-counts[v], v)) if counts else None


def _draft_id(symptoms: frozenset[Symptom]) -> str:
    key = "|".join(sorted(f"{s.metric}:{s.direction}" for s in symptoms))
    return "Learned-" + hashlib.sha256(key.encode()).hexdigest()[:10]


# ----------------------------------------------------------------------------- review


def validate_pattern(store: KnowledgeStore, pattern_id: str) -> list[Violation]:
    """SHACL-check one pattern with its symptoms; return the violations (empty: conforms).

    Raises:
        NotFound: no pattern ``pattern_id``.
    """
    triples = pattern_triples(store, pattern_id)
    if not triples:
        raise NotFound(f"no pattern {pattern_id!r}")
    data = rdflib.Graph()
    for t in triples:
        data.add(t)
    focus = sorted({t[0] for t in triples if isinstance(t[0], URIRef)})
    shapes, ontology = _shapes_and_ontology(store)
    return shacl.validate(data, shapes, focus_nodes=focus, ontology=ontology)


def _shapes_and_ontology(store: KnowledgeStore) -> tuple[rdflib.Graph, rdflib.Graph]:
    shapes = store.to_rdflib([SHAPES_GRAPH])
    ontology = store.to_rdflib([ONTOLOGY_GRAPH])
    if len(shapes) == 0:  # a store without the shipped graphs loaded: read the files
        shapes = parse_turtle(shipped("ontology") / "shapes.ttl", skolemize=True)
    if len(ontology) == 0:
        ontology = parse_turtle(shipped("ontology") / "selfheal.ttl", skolemize=True)
    return shapes, ontology


def list_patterns(store: KnowledgeStore, status: str | None = None) -> list[dict[str, object]]:
    """Return the authored and learnt patterns (learnt ones with support and sources)."""
    learned = {d.id: d for d in learned_patterns(store)}
    q = f"""SELECT DISTINCT ?id ?label ?status ?rct WHERE {{ {_PATTERN_GRAPHS} {{
  ?p a shk:IncidentPattern ; shk:patternId ?id ; rdfs:label ?label ; shk:status ?status .
  OPTIONAL {{ ?p shk:rootCauseType ?rct }} }} }} ORDER BY ?id"""
    out: list[dict[str, object]] = []
    for r in select(store, q):
        if status is not None and r["status"] != status:
            continue
        item: dict[str, object] = {k: v for k, v in r.items() if v is not None}
        if (d := learned.get(str(r["id"]))) is not None:
            item["support"] = len(d.incidents)
            item["learned_from"] = d.incidents
            item["playbook"] = d.playbook
            item["symptoms"] = sorted(f"{s.metric} {s.direction}" for s in d.symptoms)
        out.append(item)
    return out


def promote(store: KnowledgeStore, pattern_id: str, by: str, now: float) -> Draft:
    """Make a draft active after a SHACL check, recording who approved it and when.

    Raises:
        NotFound: no learnt pattern ``pattern_id``.
        ShaclError: the draft violates the pattern shapes (it stays a draft).
    """
    draft = next((d for d in learned_patterns(store) if d.id == pattern_id), None)
    if draft is None:
        raise NotFound(f"no learnt pattern {pattern_id!r}")
    violations = validate_pattern(store, pattern_id)
    if violations:
        raise ShaclError(f"pattern {pattern_id}", violations)
    p, g = draft.iri, LEARNED
    store.update(
        SPARQL_PREFIXES
        + f"DELETE WHERE {{ {g} {{ <{p}> shk:status ?s }} }};\n"
        + f"DELETE WHERE {{ {g} {{ <{p}> shk:approvedBy ?b }} }};\n"
        + f"DELETE WHERE {{ {g} {{ <{p}> shk:approvedAt ?a }} }}"
    )
    store.add(
        LEARNED_GRAPH,
        [
            (p, SHK.status, Literal("active")),
            (p, SHK.approvedBy, Literal(by)),
            (p, SHK.approvedAt, ts(now)),
        ],
    )
    draft.status = "active"
    return draft
