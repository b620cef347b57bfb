"""Machine-checked playbook requirements, judged on the evidence before the decision.

A playbook may name requirements (``requires: [outlier-instance]``) from this explicit
registry. Each is a function of the target and the signals active now, so it is judged the
same way live and in a replay of recorded telemetry; it returns why the requirement does not
hold (the candidate is then recorded as not applicable, with that reason), or ``None``.

* ``outlier-instance``: the target's errors or slowness come from one of its instances
  alone — an active error-ratio or latency signal on exactly one instance series of the
  target (``node|metric|instance``, see ``monitor/series.py``), none on the node as a whole
  or on another instance. Draining and restarting that instance can then help; when every
  instance fails alike (a bad configuration push) it cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from selfheal_kg.model import Signal
from selfheal_kg.monitor.series import instance_of

Requirement = Callable[[str, Iterable[Signal]], "str | None"]

#: the metrics on which an instance can stand out
INSTANCE_SYMPTOMS: Final = frozenset({
    "http.server.error.ratio",
    "http.server.duration.mean",
    "http.server.duration.p95",
})


def outlier_instance(target: str, signals: Iterable[Signal]) -> str | None:
    """Return why no single instance of ``target`` stands out, or ``None`` when one does."""
    deviating = {
        instance_of(s.series)
        for s in signals
        if s.active and s.node == target and s.direction == "up" and s.metric in INSTANCE_SYMPTOMS
    }
    if not deviating:
        return f"no error or latency signal on {target}"
    if None in deviating:
        return f"{target} deviates as a whole (one instance, or all instances together)"
    if len(deviating) > 1:
        names = ", ".join(sorted(str(i) for i in deviating))
        return f"{len(deviating)} instances of {target} deviate alike ({names})"
    return None


REQUIREMENTS: dict[str, Requirement] = {
    "outlier-instance": outlier_instance,
}


def unmet(names: Iterable[str], target: str, signals: Iterable[Signal]) -> list[str]:
    """Return the reasons the named requirements do not hold for ``target`` (empty: all do).

    Raises:
        KeyError: a name not in ``REQUIREMENTS`` (playbooks are checked at load time).
    """
    seen = list(signals)
    out = []
    for name in names:
        reason = REQUIREMENTS[name](target, seen)
        if reason is not None:
            out.append(f"requires {name}: {reason}")
    return out
