"""Machine-checked playbook requirements, judged on the evidence before the decision.

A playbook may name requirements (``requires: [outlier-instance]``) from this explicit
registry. Each is a function of the target and the signals active now, so it is judged the
same way live and in a replay of recorded telemetry; it returns why the requirement does not
hold (the candidate is then recorded as not applicable, with that reason), or ``None``.

* ``outlier-instance``: the target's errors (or, when nothing fails, its slowness) come from
  one of its instances alone — an active error-ratio (else latency) signal on exactly one
  instance series of the target (``node|metric|instance``, see ``monitor/series.py``), none
  on the node as a whole or on another instance. Draining and restarting that instance can
  then help; when every instance fails alike (a bad configuration push) it cannot.
* ``single-instance``: the target's errors or latency are on its node-level series (it runs
  as one process), so a process-level repair such as a restart acts on what deviates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from selfheal_kg.model import Signal
from selfheal_kg.monitor.series import instance_of

Requirement = Callable[[str, Iterable[Signal]], "str | None"]

#: the metrics on which an instance can stand out, errors first: when any instance fails,
#: the instances are judged on failing (a latency wobble elsewhere is beside the point)
ERRORS: Final = frozenset({"http.server.error.ratio"})
LATENCY: Final = frozenset({"http.server.duration.mean", "http.server.duration.p95"})


def outlier_instance(target: str, signals: Iterable[Signal]) -> str | None:
    """Return why no single instance of ``target`` stands out, or ``None`` when one does."""
    up = [s for s in signals if s.active and s.node == target and s.direction == "up"]
    for kind, metrics in (("error", ERRORS), ("latency", LATENCY)):
        deviating = {instance_of(s.series) for s in up if s.metric in metrics}
        if not deviating:
            continue
        if None in deviating:
            return f"{target} deviates as a whole (one instance, or all instances together)"
        if len(deviating) > 1:
            names = ", ".join(sorted(str(i) for i in deviating))
            return f"{len(deviating)} instances of {target} deviate alike in {kind} ({names})"
        return None
    return f"no error or latency signal on {target}"


def single_instance(target: str, signals: Iterable[Signal]) -> str | None:
    """Return why ``target``'s deviation is not that of one process, or ``None`` when it is.

    Its error or latency signals are on the node's own series (it runs as one instance): a
    process-level repair (a restart) acts on exactly what deviates.
    """
    up = [s for s in signals if s.active and s.node == target and s.direction == "up"
          and s.metric in ERRORS | LATENCY]
    if not up:
        return f"no error or latency signal on {target}"
    instances = sorted({i for i in (instance_of(s.series) for s in up) if i is not None})
    if instances:
        return f"{target} runs as several instances ({', '.join(instances)} deviate)"
    return None


REQUIREMENTS: dict[str, Requirement] = {
    "outlier-instance": outlier_instance,
    "single-instance": single_instance,
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
