"""IRIs of the vocabulary, of data nodes and of the named graphs.

Every node selfheal-kg writes gets a minted IRI under ``ID`` (never a blank node), so the
same data can live in the embedded store, in rdflib and in a remote SPARQL store.
"""

from __future__ import annotations

from urllib.parse import quote

from rdflib import Namespace, URIRef

SHK = Namespace("https://w3id.org/selfheal-kg/ontology#")
ID = Namespace("https://w3id.org/selfheal-kg/id/")
GRAPH = Namespace("https://w3id.org/selfheal-kg/graph/")
PROV = Namespace("http://www.w3.org/ns/prov#")
SH = Namespace("http://www.w3.org/ns/shacl#")

ONTOLOGY_GRAPH = GRAPH["ontology"]
SHAPES_GRAPH = GRAPH["shapes"]
TOPOLOGY_GRAPH = GRAPH["topology"]
KNOWLEDGE_GRAPH = GRAPH["knowledge"]
INCIDENTS_GRAPH = GRAPH["incidents"]
# learnt knowledge (draft/promoted patterns, threshold adjustments): never replaced on reload
LEARNED_GRAPH = GRAPH["learned"]

ALL_GRAPHS = (
    ONTOLOGY_GRAPH,
    SHAPES_GRAPH,
    TOPOLOGY_GRAPH,
    KNOWLEDGE_GRAPH,
    LEARNED_GRAPH,
    INCIDENTS_GRAPH,
)

PREFIXES = {
    "shk": str(SHK),
    "id": str(ID),
    "prov": str(PROV),
    "sh": str(SH),
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}

SPARQL_PREFIXES = "".join(f"PREFIX {p}: <{iri}>\n" for p, iri in PREFIXES.items())


def node_iri(kind: str, *parts: str) -> URIRef:
    """Mint the IRI of a data node, e.g. ``node_iri("service", "checkout")``.

    Each part is percent-encoded, so hostile names (spaces, ``>``, quotes) cannot break out
    of the IRI.
    """
    return ID[kind + "/" + "/".join(quote(p, safe="") for p in parts)]
