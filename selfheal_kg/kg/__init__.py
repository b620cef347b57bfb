"""The knowledge graph: ontology, SHACL shapes, stores and the files that feed them."""
