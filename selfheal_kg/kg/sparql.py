"""Read-only SPARQL: refuse updates, serialise results as SPARQL 1.1 JSON or CSV.

Formats: https://www.w3.org/TR/sparql11-results-json/ and
https://www.w3.org/TR/sparql11-results-csv-tsv/
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from rdflib import XSD, BNode, Literal, URIRef
from rdflib.term import Node

from selfheal_kg.errors import QueryError
from selfheal_kg.kg.store import KnowledgeStore, QueryResult, SelectResult

JSON_TYPE = "application/sparql-results+json"
CSV_TYPE = "text/csv"
MAX_QUERY_CHARS = 100_000

# Comments, IRIs, literals, variables and prefixed names are stripped before looking for
# update keywords, so "INSERT" in a literal or a ?add variable does not trip the check.
_STRIP = re.compile(
    r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|<[^<>\s]*>|#[^\n]*'
    r"|[?$]\w+|[A-Za-z][\w.-]*:[\w.-]*|:[\w.-]+"
)
_UPDATE = re.compile(
    r"\b(INSERT|DELETE|LOAD|CLEAR|CREATE|DROP|COPY|MOVE|ADD|WITH)\b", re.IGNORECASE
)
_FORM = re.compile(r"\b(SELECT|ASK|CONSTRUCT|DESCRIBE)\b", re.IGNORECASE)


def check_read_only(sparql: str) -> None:
    """Raise ``QueryError`` unless ``sparql`` is a query (SELECT, ASK, CONSTRUCT, DESCRIBE)."""
    if len(sparql) > MAX_QUERY_CHARS:
        raise QueryError(f"query longer than {MAX_QUERY_CHARS} characters")
    bare = _STRIP.sub(" ", sparql)
    found = _UPDATE.search(bare)
    if found:
        raise QueryError(f"read-only endpoint: update keyword {found.group(1).upper()} refused")
    if not _FORM.search(bare):
        raise QueryError("not a SPARQL query: expected SELECT, ASK, CONSTRUCT or DESCRIBE")


def run_read_only(store: KnowledgeStore, sparql: str) -> QueryResult:
    """Check that ``sparql`` is read-only, then run it."""
    check_read_only(sparql)
    return store.query(sparql)


def _json_term(term: Node) -> dict[str, str]:
    if isinstance(term, URIRef):
        return {"type": "uri", "value": str(term)}
    if isinstance(term, BNode):
        return {"type": "bnode", "value": str(term)}
    assert isinstance(term, Literal)
    out = {"type": "literal", "value": str(term)}
    if term.language:
        out["xml:lang"] = term.language
    elif term.datatype is not None and term.datatype != XSD.string:
        out["datatype"] = str(term.datatype)
    return out


def to_json(result: QueryResult) -> dict[str, Any]:
    """Return the SPARQL 1.1 JSON results document of a SELECT or ASK result."""
    if isinstance(result, bool):
        return {"head": {}, "boolean": result}
    if not isinstance(result, SelectResult):
        raise QueryError("CONSTRUCT/DESCRIBE results have no JSON results form; use SELECT")
    bindings = [
        {v: _json_term(t) for v, t in zip(result.vars, row, strict=True) if t is not None}
        for row in result.rows
    ]
    return {"head": {"vars": list(result.vars)}, "results": {"bindings": bindings}}


def to_json_text(result: QueryResult) -> str:
    """Return ``to_json`` as text."""
    return json.dumps(to_json(result), ensure_ascii=False)


def to_csv(result: QueryResult) -> str:
    """Return the SPARQL 1.1 CSV form (header of variable names, lexical values, CRLF)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    if isinstance(result, bool):
        writer.writerow(["boolean"])
        writer.writerow(["true" if result else "false"])
        return buf.getvalue()
    if not isinstance(result, SelectResult):
        raise QueryError("CONSTRUCT/DESCRIBE results have no CSV form; use SELECT")
    writer.writerow(result.vars)
    for row in result.rows:
        writer.writerow(["" if t is None else _csv_value(t) for t in row])
    return buf.getvalue()


def _csv_value(term: Node) -> str:
    return f"_:{term}" if isinstance(term, BNode) else str(term)


def to_table(result: QueryResult) -> str:
    """Return a plain-text table for terminals (CONSTRUCT results as N-Triples-like lines)."""
    if isinstance(result, bool):
        return "true" if result else "false"
    if not isinstance(result, SelectResult):
        return "\n".join(" ".join(t.n3() for t in triple) + " ." for triple in result)
    cells = [["" if t is None else _csv_value(t) for t in row] for row in result.rows]
    widths = [max([len(v), *(len(r[i]) for r in cells)]) for i, v in enumerate(result.vars)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(result.vars, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.append(f"({len(cells)} row{'s' if len(cells) != 1 else ''})")
    return "\n".join(lines)
