"""Scale a replicated demo shop service out and in: an Executor over its ``ReplicaSet``.

``scale_out`` starts ``increment`` more instances (each healthy before it joins the
balancer); ``scale_in`` drains and stops instances down to ``replicas`` (default: the
declared count). The rollback point is the number of instances serving.
"""

from __future__ import annotations

from collections.abc import Mapping

from selfheal_kg.act.executor import ActionReport, Params
from selfheal_kg.act.params import ParamSpec, Schema, check_target, validate
from selfheal_kg.demo.replicas import ReplicaSet
from selfheal_kg.errors import ActionError
from selfheal_kg.model import FactValue

_SCHEMAS: dict[str, Schema] = {
    "scale_out": {"increment": ParamSpec("int", minimum=1, maximum=4)},
    "scale_in": {"replicas": ParamSpec("int", minimum=1, maximum=16)},
}


class ReplicaScaler:
    """``scale_out`` / ``scale_in`` on the services that run behind a balancer.

    Args:
        replica_sets: service name → its replica set (``Shop.replica_sets``).
    """

    actions = frozenset(_SCHEMAS)

    def __init__(self, replica_sets: Mapping[str, ReplicaSet]) -> None:
        self._sets = dict(replica_sets)

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        """Return ``{"replicas": n}``: how many instances serve now."""
        self._check(action, target, params)
        return {"replicas": self._set(action, target).count()}

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        """Scale ``target`` out by ``increment`` (default 1) or in to ``replicas``.

        Raises:
            ActionError: unknown action or target, a bound exceeded, an instance not healthy.
        """
        values = self._check(action, target, params)
        replicas = self._set(action, target)
        before = replicas.count()
        if action == "scale_out":
            want = before + int(values.get("increment", 1))
        else:
            want = int(values.get("replicas", replicas.declared))
        done = replicas.scale_to(want)
        what = ", ".join(done) or "nothing to do"
        return ActionReport(True, f"{target}: {before} -> {replicas.count()} replicas ({what})")

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        """Scale ``target`` back to the replica count of ``state``."""
        want = state.get("replicas")
        if isinstance(want, bool) or not isinstance(want, int):
            raise ActionError("restore", target, "state has no integer 'replicas'")
        done = self._set("restore", target).scale_to(want)
        what = ", ".join(done) or "as it was"
        return ActionReport(True, f"{target}: back to {want} replicas ({what})")

    def _check(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        check_target(action, target)
        schema = _SCHEMAS.get(action)
        if schema is None:
            raise ActionError(action, target, f"unknown action; known: {sorted(self.actions)}")
        return dict(validate(action, target, params, schema))

    def _set(self, action: str, target: str) -> ReplicaSet:
        found = self._sets.get(target)
        if found is None:
            raise ActionError(action, target, f"not behind a balancer; known: {sorted(self._sets)}")
        return found
