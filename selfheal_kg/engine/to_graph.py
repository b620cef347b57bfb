"""Describe rules as triples of the knowledge graph, so SPARQL sees every rule."""

from __future__ import annotations

from rdflib import RDF, RDFS, Literal, URIRef
from rdflib.namespace import XSD

from selfheal_kg.engine.ir import Rule, RuleSet
from selfheal_kg.kg.namespaces import SHK, node_iri

Triple = tuple[URIRef, URIRef, URIRef | Literal]


def rule_iri(rule_id: str) -> URIRef:
    """Return the IRI of a rule."""
    return node_iri("rule", rule_id)


def rule_triples(ruleset: RuleSet) -> list[Triple]:
    """Return the triples describing every rule of ``ruleset`` (knowledge graph)."""
    return [t for rule in ruleset.rules for t in _rule(rule, ruleset.name)]


def _rule(rule: Rule, ruleset: str) -> list[Triple]:
    iri = rule_iri(rule.id)
    out: list[Triple] = [
        (iri, RDF.type, SHK.Rule),
        (iri, SHK.ruleId, Literal(rule.id)),
        (iri, RDFS.label, Literal(rule.id)),
        (iri, SHK.priority, Literal(rule.priority, datatype=XSD.integer)),
        (iri, SHK.ruleSet, Literal(ruleset)),
    ]
    if rule.description:
        out.append((iri, SHK.description, Literal(rule.description)))
    if rule.source_file:
        out.append((iri, SHK.sourceFile, Literal(rule.source_file)))
    for name in dict.fromkeys(call.name for call in rule.actions):
        out.append((iri, SHK.actionName, Literal(name)))
    for call in rule.actions:
        pattern = dict(call.params).get("pattern")
        if call.name == "diagnose" and isinstance(pattern, str):
            out.append((iri, SHK.concludes, node_iri("pattern", pattern)))
    return out
