"""``/sparql``: a read-only SPARQL 1.1 Protocol endpoint over the knowledge graph.

Spec: https://www.w3.org/TR/sparql11-protocol/#query-operation — GET with ``query``,
POST form-encoded (``query=``), or POST ``application/sparql-query``.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from selfheal_kg.errors import QueryError
from selfheal_kg.kg import sparql
from selfheal_kg.kg.store import KnowledgeStore, QueryResult

router = APIRouter(tags=["sparql"])
MAX_BODY = 1_000_000


def _store(request: Request) -> KnowledgeStore:
    store: KnowledgeStore = request.app.state.runtime.store
    return store


def _bad(message: str) -> Response:
    return JSONResponse({"error": "bad SPARQL query", "detail": message}, status_code=400)


async def _answer(request: Request, text: str | None) -> Response:
    if not text:
        return _bad("missing query: pass a 'query' parameter or an application/sparql-query body")
    store = _store(request)
    try:
        # the stores block (rdflib holds a lock, Oxigraph computes): keep them off the event loop
        result: QueryResult = await run_in_threadpool(sparql.run_read_only, store, text)
        if "text/csv" in request.headers.get("accept", ""):
            return Response(sparql.to_csv(result), media_type="text/csv; charset=utf-8")
        return Response(sparql.to_json_text(result), media_type=sparql.JSON_TYPE)
    except QueryError as exc:
        return _bad(str(exc))


@router.get("/sparql")
async def sparql_get(request: Request) -> Response:
    """Run the query given in the ``query`` URL parameter."""
    return await _answer(request, request.query_params.get("query"))


@router.post("/sparql")
async def sparql_post(request: Request) -> Response:
    """Run a query sent as ``application/sparql-query`` or as a form field ``query``."""
    body = await request.body()
    if len(body) > MAX_BODY:
        return _bad(f"query body larger than {MAX_BODY} bytes")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _bad("query body is not UTF-8")
    if ctype == "application/sparql-query":
        return await _answer(request, text)
    if ctype == "application/x-www-form-urlencoded":
        values = parse_qs(text).get("query")
        return await _answer(request, values[0] if values else None)
    return await _answer(request, request.query_params.get("query"))
