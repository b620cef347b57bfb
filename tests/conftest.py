"""Fixtures shared across the suite: what the shipped files declare, read independently.

Tests about shipped knowledge compare what a loader or SPARQL returns with the ids read
straight from the YAML files, so adding a playbook or a rule does not break them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import yaml

from selfheal_kg.paths import shipped


@pytest.fixture(scope="session")
def shipped_playbook_ids() -> list[str]:
    """Ids of the shipped playbooks, sorted, read from the raw YAML."""
    files = sorted(shipped("playbooks").glob("*.yaml"))
    return sorted(yaml.safe_load(p.read_text(encoding="utf-8"))["id"] for p in files)


@pytest.fixture(scope="session")
def shipped_rule_ids() -> set[str]:
    """Ids of the shipped rules, read from the raw YAML."""
    ids: set[str] = set()
    for p in shipped("rules").glob("*.yaml"):
        ids |= {r["id"] for r in yaml.safe_load(p.read_text(encoding="utf-8"))["rules"]}
    return ids


# -- a real PostgreSQL (CI starts one; elsewhere these tests skip) ---------------------------


@pytest.fixture
def pg_dsn() -> str:
    """The DSN of the test PostgreSQL server (``SELFHEAL_PG_DSN``); the test skips without it."""
    value = os.environ.get("SELFHEAL_PG_DSN")
    if not value:
        pytest.skip("SELFHEAL_PG_DSN is not set: no PostgreSQL server to test against")
    return value


@pytest.fixture
def pg_schema_dsn(pg_dsn: str) -> Iterator[str]:
    """A conninfo whose ``search_path`` is a fresh schema of its own, dropped afterwards."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    schema = f"shk_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield make_conninfo(pg_dsn, options=f"-c search_path={schema}")
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
