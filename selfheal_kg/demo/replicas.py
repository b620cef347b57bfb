"""The replicas of one demo shop service behind its load balancer (``demo/shop/lb.py``).

The service's address is the balancer's; its instances are supervised processes named
``<service>`` (the first), ``<service>-2``, ``<service>-3`` ... A new instance is started,
checked healthy and only then added to the balancer; an instance is drained (weight 0)
before it is removed and stopped, so no request in flight is cut.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection
from typing import Any

from selfheal_kg.act.process import ProcessSpec, ProcessSupervisor
from selfheal_kg.errors import ActionError

# How long a drained instance keeps serving the requests it already has.
DRAIN_SECONDS = 1.0
ADMIN_TIMEOUT = 2.0


def instance_name(service: str, index: int) -> str:
    """Return the process (and balancer member) name of instance ``index`` (1-based)."""
    return service if index == 1 else f"{service}-{index}"


class ReplicaSet:
    """Start, add, drain and stop the instances of one service behind its balancer.

    Args:
        service: the service name.
        balancer_url: base URL (trailing slash) of the service's balancer.
        supervisor: the shop's process supervisor (instances are added to it).
        make_spec: instance name → the ``ProcessSpec`` running it on a fresh port.
        declared: instances the shop starts with (never scaled in below).
        limit: most instances allowed.
        health_timeout: seconds for a new instance to answer its health check.
    """

    def __init__(
        self,
        service: str,
        balancer_url: str,
        supervisor: ProcessSupervisor,
        make_spec: Callable[[str], ProcessSpec],
        *,
        declared: int,
        limit: int,
        health_timeout: float = 20.0,
    ) -> None:
        self.service = service
        self.balancer_url = balancer_url
        self.declared = declared
        self.limit = limit
        self._supervisor = supervisor
        self._make_spec = make_spec
        self._health_timeout = health_timeout
        self._urls: dict[str, str] = {}
        for index in range(1, declared + 1):
            self._register(instance_name(service, index))

    def _register(self, name: str) -> str:
        spec = self._make_spec(name)
        self._supervisor.add(spec)
        url = (spec.health_url or "").removesuffix("health")
        self._urls[name] = url
        return url

    def backends(self) -> dict[str, str]:
        """Return ``{instance: base URL}`` of the declared instances (the balancer's start)."""
        return {n: u for n, u in self._urls.items() if n in self._declared_names()}

    def _declared_names(self) -> set[str]:
        return {instance_name(self.service, i) for i in range(1, self.declared + 1)}

    def members(self) -> dict[str, int]:
        """Return the balancer's ``{instance: weight}``."""
        weights = self.admin()["weights"]
        return {str(k): int(v) for k, v in weights.items()}

    def count(self) -> int:
        """Return how many instances the balancer routes to (weight > 0)."""
        return sum(1 for w in self.members().values() if w > 0)

    def scale_to(self, replicas: int) -> list[str]:
        """Add or remove instances until ``replicas`` serve; return what was done.

        Serving instances count (a drained one does not): a new instance takes the next free
        name; scaling in removes the newest serving instance first.

        Raises:
            ActionError: ``replicas`` out of [declared, limit], or an instance did not start.
        """
        if not self.declared <= replicas <= self.limit:
            raise ActionError(
                "scale", self.service, f"replicas must be in [{self.declared}, {self.limit}]"
            )
        done: list[str] = []
        members = self.members()
        while _serving(members) < replicas:
            done.append(self._add(self._next_name(members)))
            members = self.members()
        while _serving(members) > replicas:
            newest = max((n for n, w in members.items() if w > 0), key=self.index)
            done.append(self._remove(newest))
            members = self.members()
        return done

    def retire_except(self, keep: Collection[str]) -> list[str]:
        """Drain and stop every member not in ``keep``, newest first; return what was done."""
        extra = sorted((n for n in self.members() if n not in keep), key=self.index,
                       reverse=True)
        return [self._remove(name) for name in extra]

    def index(self, name: str) -> int:
        """Return the 1-based instance number of ``name`` (``<service>-<n>``)."""
        if name == self.service:
            return 1
        suffix = name.removeprefix(f"{self.service}-")
        return int(suffix) if suffix.isdigit() else 0

    def _next_name(self, members: dict[str, int]) -> str:
        taken = {self.index(n) for n in members}
        n = 1
        while n in taken:
            n += 1
        return instance_name(self.service, n)

    def set_weight(self, name: str, weight: int) -> None:
        """Set the balancer weight of member ``name`` (0 drains it)."""
        self.admin({"instance": name, "weight": weight})

    def restart(self, name: str) -> int:
        """Restart instance ``name`` and wait for its health check; return the new pid.

        Raises:
            ActionError: not one of this service's instances, or not healthy after it.
        """
        if name not in self._urls:
            raise ActionError("restart_instance", self.service, f"no instance {name!r}")
        pid = self._supervisor.restart(name)
        if not self._supervisor.wait_healthy(name, self._health_timeout):
            raise ActionError("restart_instance", self.service, f"{name} (pid {pid}) not healthy")
        return pid

    def restart_if_down(self, name: str) -> None:
        """Start instance ``name`` again if its process is not running (and wait for it)."""
        if name in self._urls and not self._supervisor.is_running(name):
            self.restart(name)

    def pid(self, name: str) -> int | None:
        """Return the pid of instance ``name`` while it runs."""
        return self._supervisor.pid(name) if name in self._urls else None

    def _add(self, name: str) -> str:
        url = self._urls.get(name) or self._register(name)
        pid = self._supervisor.start(name)
        if not self._supervisor.wait_healthy(name, self._health_timeout):
            self._supervisor.stop(name)
            raise ActionError("scale", self.service, f"{name} (pid {pid}) not healthy")
        self.admin({"instance": name, "url": url, "weight": 100})
        return f"+{name}"

    def _remove(self, name: str) -> str:
        self.admin({"instance": name, "weight": 0})
        time.sleep(DRAIN_SECONDS)
        self.admin({"instance": name, "remove": True})
        self._supervisor.stop(name)
        return f"-{name}"

    def admin(self, change: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET (``change`` None) or POST the balancer's ``/admin/lb``; return its view.

        Raises:
            ActionError: the balancer refused or could not be reached.
        """
        data = None if change is None else json.dumps(change).encode()
        request = urllib.request.Request(  # noqa: S310 (the balancer's own loopback URL)
            self.balancer_url + "admin/lb", data=data, method="GET" if data is None else "POST"
        )
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=ADMIN_TIMEOUT) as resp:  # noqa: S310
                answer = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            exc.close()
            raise ActionError("lb", self.service, f"HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ActionError("lb", self.service, f"balancer unreachable: {exc}") from exc
        if not isinstance(answer, dict) or not isinstance(answer.get("weights"), dict):
            raise ActionError("lb", self.service, "balancer answered without 'weights'")
        return answer


def _serving(members: dict[str, int]) -> int:
    return sum(1 for w in members.values() if w > 0)
