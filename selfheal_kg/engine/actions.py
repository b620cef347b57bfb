"""The registered rule actions and their parameter schemas (an explicit registry).

Rules name actions; they never carry Python. The engine only returns ``Firing`` values for
these actions: acting on them is the next pipeline stage's job.
"""

from __future__ import annotations

from dataclasses import dataclass

from selfheal_kg.engine.ir import ActionCall, Ref


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One action parameter: its literal type and whether it is required."""

    type: type
    required: bool = True


#: Every action a rule may name, with its parameters.
ACTIONS: dict[str, dict[str, ParamSpec]] = {
    "diagnose": {"pattern": ParamSpec(str), "node": ParamSpec(str)},
    "raise_alert": {"name": ParamSpec(str), "severity": ParamSpec(str), "node": ParamSpec(str)},
    "escalate": {"reason": ParamSpec(str), "node": ParamSpec(str)},
    "request_playbook": {"playbook": ParamSpec(str), "node": ParamSpec(str)},
}


def check_action(call: ActionCall) -> str | None:
    """Return why ``call`` is not a valid use of a registered action, or ``None`` if it is."""
    spec = ACTIONS.get(call.name)
    if spec is None:
        return f"unknown action {call.name!r} (known: {', '.join(sorted(ACTIONS))})"
    given = dict(call.params)
    for name in given:
        if name not in spec:
            return f"action {call.name}: unknown parameter {name!r}"
    for name, param in spec.items():
        if name not in given:
            if param.required:
                return f"action {call.name}: missing parameter {name!r}"
            continue
        value = given[name]
        if not isinstance(value, Ref) and not isinstance(value, param.type):
            return f"action {call.name}: parameter {name!r} must be a {param.type.__name__}"
    return None
