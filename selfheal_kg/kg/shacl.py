"""SHACL validation through pySHACL, read back into ``Violation`` values.

Spec: https://www.w3.org/TR/shacl/#validation-report
"""

from __future__ import annotations

from collections.abc import Sequence

import rdflib
from pyshacl import validate as _pyshacl_validate
from rdflib import RDF, Literal, URIRef
from rdflib.term import Node

from selfheal_kg.errors import Violation
from selfheal_kg.kg.namespaces import PREFIXES, SH


def validate(
    data: rdflib.Graph,
    shapes: rdflib.Graph,
    focus_nodes: Sequence[URIRef] | None = None,
    *,
    ontology: rdflib.Graph | None = None,
) -> list[Violation]:
    """Validate ``data`` against ``shapes`` and return the violations (empty list = conforms).

    Args:
        data: the candidate data; not modified (pySHACL copies it to mix the ontology in).
        shapes: the shapes graph; copied per call because pySHACL writes into it.
        focus_nodes: validate only these nodes (fast path for run-time writes).
        ontology: mixed into the data so ``sh:class`` and class targets follow rdfs:subClassOf.
    """
    shapes_copy = rdflib.Graph()
    for t in shapes:
        shapes_copy.add(t)
    _conforms, report, _text = _pyshacl_validate(
        data,
        shacl_graph=shapes_copy,
        ont_graph=ontology,
        inference="none",
        inplace=False,
        allow_warnings=False,
        focus_nodes=list(focus_nodes) if focus_nodes is not None else None,
    )
    return read_report(report)


def read_report(report: rdflib.Graph) -> list[Violation]:
    """Read every ``sh:ValidationResult`` of a pySHACL report graph, sorted for stable output."""
    out = [_violation(report, r) for r in report.subjects(RDF.type, SH.ValidationResult)]
    return sorted(out, key=lambda v: (v.focus, v.path or "", v.message))


def _violation(report: rdflib.Graph, result: Node) -> Violation:
    def one(prop: URIRef) -> Node | None:
        return report.value(result, prop)

    message = one(SH.resultMessage)
    value = one(SH.value)
    path = one(SH.resultPath)
    return Violation(
        focus=show_term(one(SH.focusNode)),
        path=show_term(path) if path is not None else None,
        value=show_term(value) if value is not None else None,
        message=str(message) if message is not None else _constraint_name(report, result),
        shape=show_term(one(SH.sourceShape)),
        severity=show_term(one(SH.resultSeverity)).removeprefix("sh:"),
    )


def _constraint_name(report: rdflib.Graph, result: Node) -> str:
    component = report.value(result, SH.sourceConstraintComponent)
    return f"violates {show_term(component)}" if component is not None else "SHACL violation"


def show_term(term: Node | None) -> str:
    """Render a term compactly: prefixed name for known namespaces, lexical form for literals."""
    if term is None:
        return "?"
    if isinstance(term, Literal):
        return str(term)
    text = str(term)
    for prefix, iri in PREFIXES.items():
        if text.startswith(iri) and len(text) > len(iri):
            return f"{prefix}:{text[len(iri) :]}"
    return text if isinstance(term, URIRef) else f"_:{text}"
