"""Read-only check and SPARQL 1.1 JSON / CSV serialisation (kg/sparql.py).

Named test_sparql_format.py, not test_sparql.py: tests/api/test_sparql.py has that basename
and tests have no __init__.py.
"""

from __future__ import annotations

import csv
import io

import pytest
from rdflib import XSD, Literal, URIRef

from selfheal_kg.errors import QueryError
from selfheal_kg.kg import sparql
from selfheal_kg.kg.store import SelectResult

RESULT = SelectResult(
    ("s", "n", "missing"),
    [
        (URIRef("urn:a"), Literal(3), None),
        (URIRef("urn:b"), Literal('say "hi", then\nleave'), Literal("x", lang="en")),
    ],
)


@pytest.mark.parametrize(
    "query",
    [
        "INSERT DATA { <urn:a> <urn:b> <urn:c> }",
        "DROP ALL",
        "PREFIX x: <urn:x> DELETE WHERE { ?s ?p ?o }",
        "SELECT * WHERE { ?s ?p ?o } ; CLEAR ALL",
        "",
    ],
)
def test_updates_and_non_queries_refused(query: str) -> None:
    with pytest.raises(QueryError):
        sparql.check_read_only(query)


def test_keywords_inside_literals_iris_and_variables_allowed() -> None:
    sparql.check_read_only(
        'PREFIX shk: <urn:drop#> SELECT ?add WHERE { ?s shk:insert "DELETE ALL" } # CLEAR'
    )


def test_json_results_document() -> None:
    doc = sparql.to_json(RESULT)
    assert doc["head"] == {"vars": ["s", "n", "missing"]}
    first, second = doc["results"]["bindings"]
    assert first == {
        "s": {"type": "uri", "value": "urn:a"},
        "n": {"type": "literal", "value": "3", "datatype": str(XSD.integer)},
    }
    assert second["missing"] == {"type": "literal", "value": "x", "xml:lang": "en"}
    assert second["n"] == {"type": "literal", "value": 'say "hi", then\nleave'}


def test_json_ask() -> None:
    assert sparql.to_json(True) == {"head": {}, "boolean": True}


def test_csv_quotes_and_crlf() -> None:
    text = sparql.to_csv(RESULT)
    assert text.startswith("s,n,missing\r\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1] == ["urn:a", "3", ""]
    assert rows[2] == ["urn:b", 'say "hi", then\nleave', "x"]


def test_table_lists_rows_and_count() -> None:
    table = sparql.to_table(RESULT)
    assert table.splitlines()[0].split() == ["s", "n", "missing"]
    assert "(2 rows)" in table


def test_construct_has_no_json_form() -> None:
    with pytest.raises(QueryError):
        sparql.to_json([(URIRef("urn:a"), URIRef("urn:b"), URIRef("urn:c"))])
