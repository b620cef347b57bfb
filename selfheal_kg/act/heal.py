"""Carry out a playbook's steps with a rollback point before each, and roll back on failure.

Steps run in order. Before a step that changes state, the executor snapshots exactly what it
will change; if a step fails (after its retries), the steps already done are restored in
reverse order from their rollback points. In dry-run mode nothing is executed: each step is
recorded with what it would have done.

A step acts on the incident's target, or (``acts_on: callers``) on each service that calls the
target, one result per caller; in its params the string ``${target}`` stands for the
incident's target (a caller's circuit breaker names the peer it guards). Each result keeps
its own target, so a rollback restores every caller it changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from selfheal_kg.act.executor import Executor
from selfheal_kg.clock import Clock
from selfheal_kg.errors import ActionError
from selfheal_kg.model import FactValue, StepResult


class StepLike(Protocol):
    """A playbook step."""

    @property
    def action(self) -> str: ...
    @property
    def params(self) -> Mapping[str, FactValue]: ...
    @property
    def retries(self) -> int: ...


@dataclass(frozen=True, slots=True)
class RunResult:
    """The steps carried out, and whether all succeeded (rollback steps excluded)."""

    ok: bool
    steps: tuple[StepResult, ...]
    rolled_back: tuple[StepResult, ...]


OnStep = Callable[[StepResult, str], None]
#: the services that call a node (for steps that act ``acts_on: callers``)
Callers = Callable[[str], Sequence[str]]
TARGET_PLACEHOLDER = "${target}"
#: the phase of a result that is not the last of its step (more callers follow)
PARTIAL = "repair-part"


def step_params(st: StepLike, target: str) -> dict[str, FactValue]:
    """Return the step's params with ``${target}`` replaced by the incident's target."""
    return {k: target if v == TARGET_PLACEHOLDER else v for k, v in st.params.items()}


def step_targets(st: StepLike, target: str, callers: Callers | None) -> list[str]:
    """Return where ``st`` acts: ``[target]``, or the target's callers (sorted)."""
    if getattr(st, "acts_on", "target") != "callers":
        return [target]
    return sorted(set(callers(target))) if callers is not None else []


class Healer:
    """Runs steps through the executor registry."""

    def __init__(
        self, executors: Mapping[str, Executor], clock: Clock, callers: Callers | None = None
    ) -> None:
        self._executors = executors
        self._clock = clock
        self.callers = callers

    def actions(self) -> frozenset[str]:
        """Return the actions some executor can carry out."""
        return frozenset(self._executors)

    def unavailable(self, action: str, target: str | None) -> str | None:
        """Return why no executor can carry out ``action`` on ``target`` now, or ``None``.

        An executor with an ``applies`` check (the ``Precondition`` port) is asked; one
        without is assumed able to act on any target. ``target`` ``None``: only whether
        some executor offers the action.
        """
        ex = self._executors.get(action)
        if ex is None:
            return f"no executor offers {action}"
        check = getattr(ex, "applies", None)
        if check is None or target is None:
            return None
        try:
            reason: str | None = check(action, target)
        except ActionError as exc:  # the precondition itself could not be read
            return f"{action} cannot be checked on {target}: {exc}"
        return reason

    def run(
        self, steps: Sequence[StepLike], target: str, on_step: OnStep, *, dry_run: bool = False
    ) -> RunResult:
        """Run ``steps`` on ``target``; on a failure restore the done steps in reverse order."""
        done: list[StepResult] = []
        for i, st in enumerate(steps, start=1):
            for result, last in self._fan_out(i, st, target, dry_run):
                on_step(result, "repair" if last else PARTIAL)
                done.append(result)
                if not result.ok:
                    rolled = self.rollback(done, target, on_step)
                    return RunResult(ok=False, steps=tuple(done), rolled_back=tuple(rolled))
        return RunResult(ok=True, steps=tuple(done), rolled_back=())

    def run_rollback(
        self, steps: Sequence[StepLike], target: str, on_step: OnStep
    ) -> list[StepResult]:
        """Run a playbook's declared rollback steps (after a repair that did not verify)."""
        out = []
        for i, st in enumerate(steps, start=1):
            for result, _last in self._fan_out(i, st, target, dry_run=False):
                on_step(result, "rollback")
                out.append(result)
        return out

    def _fan_out(
        self, index: int, st: StepLike, target: str, dry_run: bool
    ) -> Iterator[tuple[StepResult, bool]]:
        """Yield the step's result on each place it acts, and whether it is the last one."""
        where = step_targets(st, target, self.callers)
        if not where:
            started = self._clock.now()
            yield self._result(index, st, target, started, True, "no callers: nothing to do"), True
            return
        params = step_params(st, target)
        for n, node in enumerate(where, start=1):
            result = self._one(index, st, node, dry_run, params)
            yield result, n == len(where)
            if not result.ok:
                return

    def rollback(
        self, done: Sequence[StepResult], target: str, on_step: OnStep
    ) -> list[StepResult]:
        """Restore each done step's rollback point, newest first."""
        out: list[StepResult] = []
        for res in reversed(done):
            if res.rollback_point is None or res.dry_run:
                continue
            ex = self._executors.get(res.action)
            started = self._clock.now()
            if ex is None:
                continue
            try:
                report = ex.restore(res.target, res.rollback_point)
                ok, detail = report.ok, report.detail
            except ActionError as exc:
                ok, detail = False, str(exc)
            rb = StepResult(
                step=res.step,
                action=f"restore:{res.action}",
                target=res.target,
                params=dict(res.rollback_point),
                started=started,
                ended=self._clock.now(),
                ok=ok,
                detail=detail,
            )
            on_step(rb, "rollback")
            out.append(rb)
        return out

    def _one(
        self, index: int, st: StepLike, target: str, dry_run: bool, params: dict[str, FactValue]
    ) -> StepResult:
        started = self._clock.now()
        ex = self._executors.get(st.action)
        if ex is None:
            return self._result(index, st, target, started, False, "no executor for action")
        if dry_run:
            return self._result(
                index, st, target, started, True, f"dry run: would {st.action} {target}",
                dry=True, params=params,
            )
        try:
            point = ex.snapshot(st.action, target, params)
        except ActionError as exc:
            return self._result(index, st, target, started, False, f"snapshot failed: {exc}")
        detail = ""
        for _attempt in range(max(0, st.retries) + 1):
            try:
                report = ex.execute(st.action, target, params)
            except ActionError as exc:
                detail = str(exc)
                continue
            if report.ok:
                return self._result(
                    index, st, target, started, True, report.detail, point=point, params=params
                )
            detail = report.detail
        return self._result(index, st, target, started, False, detail, point=point, params=params)

    def _result(
        self,
        index: int,
        st: StepLike,
        target: str,
        started: float,
        ok: bool,
        detail: str,
        *,
        dry: bool = False,
        point: Mapping[str, FactValue] | None = None,
        params: Mapping[str, FactValue] | None = None,
    ) -> StepResult:
        return StepResult(
            step=index,
            action=st.action,
            target=target,
            params=dict(st.params if params is None else params),
            started=started,
            ended=self._clock.now(),
            ok=ok,
            detail=detail,
            dry_run=dry,
            rollback_point=point,
        )
