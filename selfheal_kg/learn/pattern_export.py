"""Export a learnt pattern as Turtle in the format of ``ontology/patterns.ttl``."""

from __future__ import annotations

import re

from rdflib import Literal

from selfheal_kg.errors import NotFound
from selfheal_kg.kg.store import KnowledgeStore
from selfheal_kg.learn.drafts import learned_patterns, symptom_iri

_SAFE = re.compile(r"[^A-Za-z0-9 ._:/-]")


def export_pattern(store: KnowledgeStore, pattern_id: str) -> str:
    """Return the pattern as Turtle in the format of ``ontology/patterns.ttl``.

    Only the authored vocabulary is exported (id, label, comment, root-cause type, status,
    symptoms); learning provenance stays in the graph. Save it as (or append it to) a
    ``patterns.ttl`` file; ``selfheal validate`` checks it like the shipped one.

    Raises:
        NotFound: no pattern ``pattern_id``.
    """
    d = next((x for x in learned_patterns(store) if x.id == pattern_id), None)
    if d is None:
        raise NotFound(f"no learnt pattern {pattern_id!r}")
    label = "Learned: " + ", ".join(sorted(f"{s.metric} {s.direction}" for s in d.symptoms))
    comment = f"Learnt from {len(d.incidents)} resolved incident(s) that matched no pattern."
    head = [
        f"# Incident pattern {d.id}, learnt by selfheal-kg (status {d.status}).",
        "# Pattern IRIs are minted as node_iri(\"pattern\", patternId); symptom IRIs as",
        "# node_iri(\"symptom\", patternId, metric).",
    ]
    if d.playbook:
        safe = _SAFE.sub("_", d.playbook)
        head.append(f"# The fix that worked: playbook {safe}; add {d.id} to its `handles`.")
    head += [
        "@prefix shk:  <https://w3id.org/selfheal-kg/ontology#> .",
        "@prefix id:   <https://w3id.org/selfheal-kg/id/> .",
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .",
        "",
    ]
    symptoms = sorted(d.symptoms, key=lambda x: (x.metric, x.direction))
    iris = [symptom_iri(d.id, s, d.symptoms) for s in symptoms]
    body = [
        f"<{d.iri}> a shk:IncidentPattern ;",
        f"    shk:patternId {Literal(d.id).n3()} ;",
        f"    rdfs:label {Literal(label).n3()} ;",
        f"    rdfs:comment {Literal(comment).n3()} ;",
    ]
    if d.root_cause_type:
        body.append(f"    shk:rootCauseType {Literal(d.root_cause_type).n3()} ;")
    body.append(f"    shk:status {Literal(d.status).n3()} ;")
    body.append("    shk:hasSymptom " + " ,\n        ".join(f"<{i}>" for i in iris) + " .")
    body.append("")
    for s, i in zip(symptoms, iris, strict=True):
        kind = "absence" if s.metric == "telemetry.absent" else "metric"
        body.append(
            f"<{i}> a shk:Symptom ;\n    shk:metric {Literal(s.metric).n3()} ; "
            f"shk:direction {Literal(s.direction).n3()} ; shk:signalKind {Literal(kind).n3()} ."
        )
    return "\n".join(head + body) + "\n"
