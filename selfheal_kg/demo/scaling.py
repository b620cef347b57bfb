"""The replicas of a demo shop service as an Executor: scale, drain, restart, restore traffic.

Actions on a service that runs behind a balancer (``ReplicaSet``):

* ``scale_out`` starts ``increment`` more instances (each healthy before it joins the
  balancer); ``scale_in`` drains and stops instances down to ``replicas`` (default: the
  declared count). Rollback point: the number of instances serving and the balancer's
  members; restoring it retires the members added since (newest first: not whichever
  serve at the time, so a drained and restored instance is not mistaken for an extra one),
  then starts instances until as many serve as before.
* ``lb_drain`` sets the balancer weight of the outlier instance to 0: the one instance whose
  answers, in the balancer's own per-backend statistics (last 10 s), fail (error ratio
  >= 0.25 while another serving instance stays under 0.05) or are slow (mean >= 3 times
  the others' and 200 ms more), like an outlier detector of a service mesh. Param
  ``instance`` names one instead. Rollback point: that instance and its weight.
* ``restart_instance`` restarts the drained instance (weight 0; param ``instance`` names
  one) and waits for its health check. A restart is not undone; its rollback point is the
  instance's pid, so a journal can tell after a crash whether it happened.
* ``lb_restore`` puts drained instances back to full weight once their health check
  answers. Rollback point: their weights (0).

``applies`` is the decision's live precondition: a service not behind a balancer, or (for
``lb_drain``) one with no outlier instance right now, is not a target.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from selfheal_kg.act.executor import ActionReport, Params
from selfheal_kg.act.params import ParamSpec, Schema, check_target, validate
from selfheal_kg.demo.replicas import ReplicaSet
from selfheal_kg.errors import ActionError
from selfheal_kg.model import FactValue

_INSTANCE = ParamSpec("str", pattern=r"[a-z][a-z0-9-]{0,62}")
_SCHEMAS: dict[str, Schema] = {
    "scale_out": {"increment": ParamSpec("int", minimum=1, maximum=4)},
    "scale_in": {"replicas": ParamSpec("int", minimum=1, maximum=16)},
    "lb_drain": {"instance": _INSTANCE},
    "restart_instance": {"instance": _INSTANCE},
    "lb_restore": {},
}
FULL_WEIGHT = 100
MIN_REQUESTS = 5  # answers in the balancer's window before an instance can be judged
# The balancer's window is 10 s: seconds after an instance went bad, its ratio is still
# diluted by the good answers before, so standing out is judged against the others.
BAD_ERRORS, GOOD_ERRORS = 0.25, 0.05
SLOW_FACTOR, SLOW_MARGIN_MS = 3.0, 200.0


def outlier(view: Mapping[str, Any]) -> tuple[str | None, str]:
    """Return the serving instance that stands out in the balancer's ``view``, and why.

    ``view`` is the balancer's ``GET /admin/lb`` answer (``weights`` and ``stats``). ``None``
    with the reason when no single instance stands out (all fail alike, too few answers, or
    only one instance serves: draining it would leave nothing).
    """
    weights = {str(k): int(v) for k, v in dict(view.get("weights") or {}).items()}
    stats = {str(k): v for k, v in dict(view.get("stats") or {}).items() if isinstance(v, dict)}
    serving = sorted(n for n, w in weights.items() if w > 0)
    if len(serving) < 2:
        return None, f"{len(serving)} instance(s) serving: none can be drained"
    judged = {n: stats[n] for n in serving if n in stats
              and float(stats[n].get("requests", 0)) >= MIN_REQUESTS}
    if len(judged) < 2:
        return None, "too few answers per instance to judge"
    errors = {n: float(s.get("error_ratio", 0.0)) for n, s in judged.items()}
    worst = max(errors, key=lambda n: (errors[n], n))
    best_other = min(e for n, e in errors.items() if n != worst)
    if errors[worst] >= BAD_ERRORS and best_other < GOOD_ERRORS:
        return worst, f"{worst} fails {errors[worst]:.0%} of its answers (others {best_other:.0%})"
    means = {n: float(s.get("mean_ms", 0.0)) for n, s in judged.items()}
    slowest = max(means, key=lambda n: (means[n], n))
    others = max(m for n, m in means.items() if n != slowest)
    if means[slowest] >= max(SLOW_FACTOR * others, others + SLOW_MARGIN_MS):
        return slowest, f"{slowest} answers in {means[slowest]:.0f} ms (others {others:.0f} ms)"
    return None, "no instance stands out: they fail or slow down alike"


class ReplicaScaler:
    """Scale, drain, restart and restore the instances of services behind a balancer.

    Args:
        replica_sets: service name → its replica set (``Shop.replica_sets``).
    """

    actions = frozenset(_SCHEMAS)

    def __init__(self, replica_sets: Mapping[str, ReplicaSet]) -> None:
        self._sets = dict(replica_sets)

    def applies(self, action: str, target: str) -> str | None:
        """Return why ``action`` cannot act on ``target`` now, or ``None``."""
        replicas = self._sets.get(target)
        if replicas is None:
            return f"{target} does not run behind a load balancer"
        if action == "lb_drain":
            name, why = outlier(replicas.admin())
            return None if name is not None else f"nothing to drain on {target}: {why}"
        return None

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        """Return exactly what ``action`` will change (see the module docstring)."""
        values = self._check(action, target, params)
        replicas = self._set(action, target)
        if action in ("scale_out", "scale_in"):
            return {"replicas": replicas.count(), "members": json.dumps(sorted(replicas.members()))}
        if action == "lb_drain":
            name = self._drain_choice(replicas, values)
            return {"instance": name, "weight": replicas.members()[name]}
        if action == "restart_instance":
            name = self._drained(replicas, values)
            return {"instance": name, "pid": replicas.pid(name) or 0}
        return {"weights": json.dumps(self._drained_all(replicas))}

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        """Carry out ``action`` on ``target``.

        Raises:
            ActionError: unknown action or target, a bound exceeded, no instance to act on,
                an instance not healthy.
        """
        values = self._check(action, target, params)
        replicas = self._set(action, target)
        if action == "lb_drain":
            view = replicas.admin()
            name = self._drain_choice(replicas, values, view)
            replicas.set_weight(name, 0)
            why = outlier(view)[1] if "instance" not in values else "named by the playbook"
            return ActionReport(True, f"{target}: drained {name} ({why})")
        if action == "restart_instance":
            name = self._drained(replicas, values)
            pid = replicas.restart(name)
            return ActionReport(True, f"{target}: restarted {name} (pid {pid}), healthy")
        if action == "lb_restore":
            drained = self._drained_all(replicas)
            for name in drained:
                replicas.restart_if_down(name)
                replicas.set_weight(name, FULL_WEIGHT)
            what = ", ".join(drained) or "nothing drained"
            return ActionReport(True, f"{target}: back to full weight: {what}")
        before = replicas.count()
        if action == "scale_out":
            want = before + int(values.get("increment", 1))
        else:
            want = int(values.get("replicas", replicas.declared))
        done = replicas.scale_to(want)
        what = ", ".join(done) or "nothing to do"
        return ActionReport(True, f"{target}: {before} -> {replicas.count()} replicas ({what})")

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        """Put back a state captured by ``snapshot``."""
        replicas = self._set("restore", target)
        if "pid" in state:
            return ActionReport(True, f"{target}: a restart of {state.get('instance')} "
                                      "is not undone")
        if "weights" in state:
            for name in json.loads(str(state["weights"])):
                if name in replicas.members():
                    replicas.set_weight(str(name), 0)
            return ActionReport(True, f"{target}: drained again: {state['weights']}")
        if "instance" in state:
            weight = state.get("weight")
            if isinstance(weight, bool) or not isinstance(weight, int):
                raise ActionError("restore", target, "state has no integer 'weight'")
            replicas.set_weight(str(state["instance"]), weight)
            return ActionReport(True, f"{target}: {state['instance']} back to weight {weight}")
        want = state.get("replicas")
        if isinstance(want, bool) or not isinstance(want, int):
            raise ActionError("restore", target, "state has no integer 'replicas'")
        done = replicas.retire_except(_members(target, state)) if "members" in state else []
        if replicas.count() < want or "members" not in state:
            done += replicas.scale_to(want)
        what = ", ".join(done) or "as it was"
        if "members" in state:  # the members it had; a drained one (weight 0) counts too
            return ActionReport(True, f"{target}: back to its members {sorted(replicas.members())}"
                                      f" ({what})")
        return ActionReport(True, f"{target}: back to {want} replicas ({what})")

    def _drain_choice(
        self, replicas: ReplicaSet, values: Mapping[str, FactValue],
        view: Mapping[str, Any] | None = None,
    ) -> str:
        named = values.get("instance")
        members = replicas.members()
        if isinstance(named, str):
            if named not in members:
                raise ActionError("lb_drain", replicas.service, f"no member {named!r}")
            return named
        name, why = outlier(view if view is not None else replicas.admin())
        if name is None:
            raise ActionError("lb_drain", replicas.service, f"nothing to drain: {why}")
        return name

    def _drained(self, replicas: ReplicaSet, values: Mapping[str, FactValue]) -> str:
        named = values.get("instance")
        if isinstance(named, str):
            return named
        drained = self._drained_all(replicas)
        if not drained:
            raise ActionError("restart_instance", replicas.service, "no drained instance")
        return drained[0]

    @staticmethod
    def _drained_all(replicas: ReplicaSet) -> list[str]:
        return sorted(n for n, w in replicas.members().items() if w == 0)

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


def _members(target: str, state: Mapping[str, FactValue]) -> list[str]:
    """Return the member names a rollback point recorded (a JSON list of strings)."""
    try:
        names = json.loads(str(state["members"]))
    except ValueError as exc:
        raise ActionError("restore", target, "state 'members' is not JSON") from exc
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ActionError("restore", target, "state 'members' is not a list of names")
    return names
