"""Named, reversible faults for the demo shop, in one explicit registry.

``crash`` SIGKILLs a service (revert: start it again); ``latency``, ``errors``, ``slow-leaf``
(a degraded process answering slowly) and ``provider-outage`` (every request fails) go
through the service's loopback-only ``/admin/fault`` endpoint (revert: put back the fault it
had); ``bad-config`` pushes a configuration the service cannot use into its JSON file
through a ``ConfigFileExecutor`` (so a saved version exists to roll back to; revert: put the
old value back); ``overload`` sends extra load straight to a service (revert: stop it);
``leak`` makes the service's memory grow until it would run out (``/admin/fault``
``leak_per_s``; revert: stop it); ``dropped-index`` fills the service's database table and
drops the index of its lookups (revert: create the index again unless a repair did);
``pool-exhaustion`` makes the service hold connections of its database pool, by default all
of them (``/admin/fault`` ``held_connections``; revert: the number it held before);
``bad-instance`` makes one instance of a replicated service, behind its load balancer,
fail every request (that instance's ``/admin/fault`` ``error_rate``; revert: clear it, if
the instance still runs).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from selfheal_kg.act.config_file import ConfigFileExecutor
from selfheal_kg.demo import database
from selfheal_kg.demo.replicas import instance_name
from selfheal_kg.demo.shop import Shop
from selfheal_kg.errors import ActionError, NotFound, UnsafeParameter
from selfheal_kg.model import FactValue

FaultState = dict[str, float]
MAX_HELD = 256  # connections a leak may hold (demo/shop/pool.py)
DEFAULT_POOL_SIZE = 8  # demo/shop/settings.py


@dataclass(frozen=True, slots=True)
class Injected:
    """A fault in place: what was done to which service, and what to put back."""

    fault: str
    target: str
    params: Mapping[str, FactValue] = field(default_factory=dict)
    before: Mapping[str, FactValue] = field(default_factory=dict)


class Fault(Protocol):
    """One kind of fault."""

    def inject(self, shop: Shop, target: str, params: Mapping[str, FactValue]) -> Injected:
        """Put the fault in place on ``target``."""
        ...

    def revert(self, shop: Shop, injected: Injected) -> None:
        """Undo ``injected``."""
        ...


class Crash:
    """SIGKILL the service's process; revert by starting it again."""

    def inject(self, shop: Shop, target: str, params: Mapping[str, FactValue]) -> Injected:
        """Kill ``target`` at once (no flush of its telemetry)."""
        shop.supervisor.kill(target)
        return Injected("crash", target, dict(params))

    def revert(self, shop: Shop, injected: Injected) -> None:
        """Start the service again and wait for its health check."""
        shop.supervisor.start(injected.target)
        if not shop.supervisor.wait_healthy(injected.target, shop.health_timeout):
            raise ActionError("revert crash", injected.target, "not healthy after restart")


@dataclass(frozen=True, slots=True)
class AdminFault:
    """Set one field of the service's ``/admin/fault`` state; revert restores the old state."""

    name: str
    key: str
    default: float
    high: float

    def inject(self, shop: Shop, target: str, params: Mapping[str, FactValue]) -> Injected:
        """Set ``key`` on ``target`` (``params[key]``, else the default), keep the rest."""
        value = params.get(self.key, self.default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UnsafeParameter(self.name, target, f"{self.key} must be a number")
        if not 0 <= value <= self.high:
            raise UnsafeParameter(self.name, target, f"{self.key} must be in [0, {self.high:g}]")
        before = admin_fault(shop, target)
        admin_fault(shop, target, {**before, self.key: float(value)})
        return Injected(self.name, target, {self.key: float(value)}, before)

    def revert(self, shop: Shop, injected: Injected) -> None:
        """Put back the fault state seen before the injection."""
        admin_fault(shop, injected.target, _numbers(injected.before))


def _numbers(state: Mapping[str, FactValue]) -> FaultState:
    return {k: v for k, v in state.items() if isinstance(v, int | float)
            and not isinstance(v, bool)}


@dataclass(frozen=True, slots=True)
class PoolExhaustion:
    """A connection leak: the service holds connections of its database pool (all, by default)."""

    def inject(self, shop: Shop, target: str, params: Mapping[str, FactValue]) -> Injected:
        """Hold ``params["held_connections"]`` (default: the pool size) on ``target``."""
        held = params.get("held_connections", _pool_size(shop, target))
        if isinstance(held, bool) or not isinstance(held, int) or not 0 <= held <= MAX_HELD:
            raise UnsafeParameter("pool-exhaustion", target,
                                  f"held_connections must be an integer in [0, {MAX_HELD}]")
        before = admin_fault(shop, target)
        admin_fault(shop, target, {**before, "held_connections": held})
        return Injected("pool-exhaustion", target, {"held_connections": held}, before)

    def revert(self, shop: Shop, injected: Injected) -> None:
        """Give the connections back: hold what was held before, keep the rest of the fault."""
        held = injected.before.get("held_connections", 0)
        held = held if isinstance(held, int) and not isinstance(held, bool) else 0
        now = admin_fault(shop, injected.target)
        admin_fault(shop, injected.target, {**now, "held_connections": held})


def _pool_size(shop: Shop, target: str) -> int:
    """Return the pool size in ``target``'s configuration file (its default when unreadable)."""
    default = DEFAULT_POOL_SIZE
    try:
        doc = json.loads(shop.config_file(target).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError):
        return default
    size = doc.get("pool_size", default) if isinstance(doc, dict) else default
    ok = isinstance(size, int) and not isinstance(size, bool)
    return int(size) if ok else default


@dataclass(frozen=True, slots=True)
class BadInstance:
    """One instance of a replicated service fails every request, behind its load balancer."""

    def inject(self, shop: Shop, target: str, params: Mapping[str, FactValue]) -> Injected:
        """Set ``error_rate`` (default 1.0) on the last declared instance of ``target``."""
        replicas = shop.replica_sets.get(target)
        if replicas is None:
            raise UnsafeParameter("bad-instance", target, "the service is not replicated")
        rate = params.get("error_rate", 1.0)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
            raise UnsafeParameter("bad-instance", target, "error_rate must be in (0, 1]")
        instance = instance_name(target, replicas.declared)
        url = replicas.backends()[instance]
        before = admin_fault_at(url, instance)
        admin_fault_at(url, instance, {**before, "error_rate": float(rate)})
        done: dict[str, FactValue] = {"instance": instance, "url": url, "error_rate": float(rate)}
        return Injected("bad-instance", target, done, before)

    def revert(self, shop: Shop, injected: Injected) -> None:
        """Put the instance's fault state back, unless it no longer runs (a restart cleared it)."""
        instance, url = injected.params.get("instance"), injected.params.get("url")
        if not isinstance(instance, str) or not isinstance(url, str):
            raise ActionError("revert bad-instance", injected.target, "no instance recorded")
        if shop.supervisor.is_running(instance):
            admin_fault_at(url, instance, _numbers(injected.before))


@dataclass(frozen=True, slots=True)
class BadConfig:
    """Push a value the service cannot use into its configuration file (a bad deploy)."""

    key: str = "tax_rate"
    value: str = "twenty percent"

    def inject(self, shop: Shop, target: str, params: Mapping[str, FactValue]) -> Injected:
        """Set ``key`` to the bad value; the previous file is kept as a saved version."""
        value = params.get(self.key, self.value)
        config = ConfigFileExecutor(shop.config_files())
        before = config.snapshot("config_set", target, {self.key: value})
        report = config.execute("config_set", target, {self.key: value})
        if not report.ok:
            raise ActionError("bad-config", target, report.detail)
        return Injected("bad-config", target, {self.key: value}, before)

    def revert(self, shop: Shop, injected: Injected) -> None:
        """Put the key back as it was before the push."""
        ConfigFileExecutor(shop.config_files()).restore(injected.target, injected.before)


@dataclass(frozen=True, slots=True)
class Overload:
    """Extra load straight on a service (a partner's price bot on its quote endpoint).

    The load goes to the service's address (its load balancer when replicated) and calls
    nothing downstream: only that service is busier. Revert stops it; the extra instances a
    repair started stay until selfheal releases them (the playbook's ``release``).
    """

    rate: float = 55.0
    high: float = 400.0

    def inject(self, shop: Shop, target: str, params: Mapping[str, FactValue]) -> Injected:
        """Start ``rate`` extra requests per second on ``target``'s ``/quote``."""
        rate = params.get("rate", self.rate)
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            raise UnsafeParameter("overload", target, "rate must be a number")
        if not 0 < rate <= self.high:
            raise UnsafeParameter("overload", target, f"rate must be in (0, {self.high:g}]")
        shop.start_side_load(f"overload:{target}", shop.url(target) + "quote", float(rate))
        return Injected("overload", target, {"rate": float(rate)})

    def revert(self, shop: Shop, injected: Injected) -> None:
        """Stop the extra load."""
        shop.stop_side_load(f"overload:{injected.target}")


@dataclass(frozen=True, slots=True)
class DroppedIndex:
    """Many rows and no index on the lookup column of the service's database: slow queries."""

    def inject(self, shop: Shop, target: str, params: Mapping[str, FactValue]) -> Injected:
        """Fill ``target``'s stock table (``params["rows"]``) and drop its lookup index."""
        db = database.database_of(shop, target)
        rows = params.get("rows", database.FILL_ROWS[db.dialect])
        if isinstance(rows, bool) or not isinstance(rows, int) or not 0 < rows <= 2_000_000:
            raise UnsafeParameter("dropped-index", target, "rows must be an integer in (0, 2e6]")
        existed = database.drop_lookup_index(db, rows)
        return Injected("dropped-index", target, {"rows": rows}, {"existed": existed})

    def revert(self, shop: Shop, injected: Injected) -> None:
        """Create the lookup index again, unless an index on the column exists."""
        database.restore_lookup_index(database.database_of(shop, injected.target))


# a leak of 0.5 % of the limit per second: from the steady 25 % to out of memory in 150 s
LEAK_PER_S = 0.005

FAULTS: dict[str, Fault] = {
    "crash": Crash(),
    "latency": AdminFault("latency", "latency_ms", 500.0, 60_000.0),
    "errors": AdminFault("errors", "error_rate", 0.5, 1.0),
    "bad-config": BadConfig(),
    "leak": AdminFault("leak", "leak_per_s", LEAK_PER_S, 1.0),
    "dropped-index": DroppedIndex(),
    "slow-leaf": AdminFault("slow-leaf", "latency_ms", 300.0, 60_000.0),
    "provider-outage": AdminFault("provider-outage", "error_rate", 1.0, 1.0),
    "overload": Overload(),
    "pool-exhaustion": PoolExhaustion(),
    "bad-instance": BadInstance(),
}


def inject(
    shop: Shop, name: str, target: str, params: Mapping[str, FactValue] | None = None
) -> Injected:
    """Inject fault ``name`` into service ``target``.

    Raises:
        NotFound: unknown fault or service.
        UnsafeParameter: a parameter out of range.
        ActionError: the service refused or could not be reached.
    """
    fault = _fault(name)
    if target not in shop.services():
        raise NotFound(f"no shop service named {target!r}; known: {sorted(shop.services())}")
    return fault.inject(shop, target, params or {})


def revert(shop: Shop, injected: Injected) -> None:
    """Undo an injected fault."""
    _fault(injected.fault).revert(shop, injected)


def _fault(name: str) -> Fault:
    try:
        return FAULTS[name]
    except KeyError:
        raise NotFound(f"no fault named {name!r}; known: {sorted(FAULTS)}") from None


def admin_fault(shop: Shop, target: str, state: FaultState | None = None) -> FaultState:
    """Read (``state`` None) or replace the fault state of ``target``; return the new state."""
    return admin_fault_at(shop.url(target), target, state)


def admin_fault_at(base: str, target: str, state: FaultState | None = None) -> FaultState:
    """Read or replace the fault state of the process at ``base`` (a shop URL, trailing /).

    Integers stay integers (``held_connections`` is a count).
    """
    url = base + "admin/fault"
    data = None if state is None else json.dumps(state).encode()
    request = urllib.request.Request(  # noqa: S310 (a shop URL built from our own port table)
        url, data=data, method="GET" if data is None else "POST"
    )
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=2.0) as resp:  # noqa: S310
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        exc.close()
        raise ActionError("fault", target, f"HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ActionError("fault", target, f"admin endpoint unreachable: {exc}") from exc
    return {str(k): v if isinstance(v, int) else float(v) for k, v in answer.items()}
