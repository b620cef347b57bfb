"""The Executor port: one adapter per action kind, chosen through an explicit registry.

An executor never receives telemetry text on a command line: parameters come from the
playbook (validated against its declared parameter schema) and from topology node names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from selfheal_kg.model import FactValue

Params = Mapping[str, FactValue]


@dataclass(frozen=True, slots=True)
class ActionReport:
    """What an executor did: ``ok`` and a one-line human detail."""

    ok: bool
    detail: str


class Executor(Protocol):
    """Carries out the actions of one kind (``restart``, ``scale``, ``sql`` ...)."""

    actions: frozenset[str]

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        """Return exactly the state ``action`` will change, to restore it on rollback."""
        ...

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        """Carry out ``action`` on ``target``; raise ``ActionError`` when it cannot."""
        ...

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        """Put back a state captured by ``snapshot``."""
        ...


class Precondition(Protocol):
    """An executor that can tell, before a decision, whether an action can work on a target.

    Optional beside ``Executor``: a playbook whose step cannot act on the target now (a
    balancer with no outlier instance to drain, a target it does not manage) is kept in the
    decision record as not applicable, with this reason, instead of failing at run time.
    """

    def applies(self, action: str, target: str) -> str | None:
        """Return why ``action`` cannot act on ``target`` now, or ``None`` when it can."""
        ...
