"""Fixtures shared across the suite: what the shipped files declare, read independently.

Tests about shipped knowledge compare what a loader or SPARQL returns with the ids read
straight from the YAML files, so adding a playbook or a rule does not break them.
"""

from __future__ import annotations

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
