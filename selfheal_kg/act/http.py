"""Call admin endpoints and webhooks over HTTP, as Executors.

URLs come only from the operator's configuration (a named endpoint map, an admin base URL
per target), never from telemetry; validated parameters travel in a JSON body or as
URL-encoded query parameters, never spliced into the URL path.

``AdminApiExecutor`` drives a service's admin API with this contract:

* ``GET  /admin/lb``      → ``{"weights": {"<instance>": <int>}}``
* ``POST /admin/lb``      ``{"instance": "<instance>", "weight": <int>}``
* ``GET  /admin/breaker`` → ``{"state": {"<peer>": "open" | "closed"}}``
* ``POST /admin/breaker`` ``{"peer": "<peer>", "state": "open" | "closed"}``
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from selfheal_kg.act.executor import ActionReport, Params
from selfheal_kg.act.params import TARGET, ParamSpec, Schema, check_target, validate
from selfheal_kg.errors import ActionError
from selfheal_kg.model import FactValue

_MAX_DETAIL = 300
_URL = re.compile(r"https?://[^\s]+")


@dataclass(frozen=True, slots=True)
class HttpEndpoint:
    """One named webhook or admin endpoint.

    Attributes:
        url: the full URL (``http`` or ``https``), fixed by the operator.
        method: ``POST``, ``PUT`` or ``GET`` (params become query parameters for GET).
        params: the parameters the endpoint accepts; sent with ``"target"``.
        headers: extra request headers (e.g. an authorization token from config).
        undo: name of another endpoint ``restore`` calls with the same parameters.
    """

    url: str
    method: Literal["POST", "PUT", "GET"] = "POST"
    params: Schema = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    undo: str | None = None

    def __post_init__(self) -> None:
        if not _URL.fullmatch(self.url):
            raise ValueError(f"endpoint URL {self.url!r} is not an http(s) URL")
        if self.method not in ("POST", "PUT", "GET"):
            raise ValueError(f"method {self.method!r} is not POST, PUT or GET")


def _client(timeout: float, transport: httpx.BaseTransport | None) -> httpx.Client:
    # No redirects: a 3xx must not send the request (and its headers) somewhere else.
    return httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)


def _send(
    client: httpx.Client, action: str, target: str, method: str, url: str, *,
    payload: Mapping[str, FactValue] | None = None, headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """Send one request; transport errors become ``ActionError``."""
    try:
        if method == "GET":
            return client.get(url, params=dict(payload or {}), headers=headers)
        return client.request(method, url, json=dict(payload or {}), headers=headers)
    except httpx.HTTPError as exc:
        raise ActionError(action, target, f"{method} {url}: {type(exc).__name__}: {exc}") from exc


def _report(action: str, resp: httpx.Response) -> ActionReport:
    body = resp.text.strip().replace("\n", " ")[:_MAX_DETAIL]
    ok = 200 <= resp.status_code < 300
    return ActionReport(ok, f"{action}: HTTP {resp.status_code} {body}".rstrip())


class HttpExecutor:
    """An Executor whose actions are the names of the registered endpoints.

    Args:
        endpoints: action name → endpoint.
        timeout: seconds for each request.
        transport: an httpx transport (``httpx.MockTransport`` in tests), default the network.
    """

    def __init__(
        self, endpoints: Mapping[str, HttpEndpoint], timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        for name, ep in endpoints.items():
            if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
                raise ValueError(f"endpoint name {name!r} is not [a-z][a-z0-9_-]*")
            if ep.undo is not None and ep.undo not in endpoints:
                raise ValueError(f"endpoint {name!r}: undo {ep.undo!r} is not an endpoint")
        self._endpoints = dict(endpoints)
        self.actions = frozenset(self._endpoints)
        self._client = _client(timeout, transport)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        """Return the endpoint and its validated parameters, for ``undo`` on restore."""
        values = validate(action, target, params, self._endpoint(action, target).params)
        return {"endpoint": action, **values}

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        """Call the endpoint ``action`` with ``{"target": ..., **params}``; non-2xx fails."""
        ep = self._endpoint(action, target)
        values = validate(action, target, params, ep.params)
        payload = {"target": target, **values}
        resp = _send(
            self._client, action, target, ep.method, ep.url, payload=payload, headers=ep.headers
        )
        return _report(action, resp)

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        """Call the ``undo`` endpoint of the endpoint saved in ``state``, if it has one."""
        name = state.get("endpoint")
        if not isinstance(name, str):
            raise ActionError("restore", target, "state has no 'endpoint'")
        undo = self._endpoint(name, target).undo
        if undo is None:
            return ActionReport(True, f"{name} has no undo; nothing to restore")
        return self.execute(undo, target, {k: v for k, v in state.items() if k != "endpoint"})

    def _endpoint(self, action: str, target: str) -> HttpEndpoint:
        check_target(action, target)
        ep = self._endpoints.get(action)
        if ep is None:
            raise ActionError(action, target, f"unknown endpoint; known: {sorted(self.actions)}")
        return ep


_NAME = TARGET.pattern
_ADMIN_SCHEMAS: dict[str, Schema] = {
    "lb_weight": {
        "weight": ParamSpec("int", required=True, minimum=0, maximum=1000),
        "instance": ParamSpec("str", pattern=_NAME),
    },
    "breaker": {
        "peer": ParamSpec("str", required=True, pattern=_NAME),
        "state": ParamSpec("str", required=True, enum=("open", "closed")),
    },
}
_PATHS = {"lb_weight": ("/admin/lb", "weights", "instance"),
          "breaker": ("/admin/breaker", "state", "peer")}


class AdminApiExecutor:
    """``lb_weight`` (drain / restore an instance) and ``breaker`` (trip / reset) over HTTP.

    ``lb_weight`` params: ``weight`` (0..1000; 0 drains) and ``instance`` (default: the
    target). ``breaker`` params: ``peer`` and ``state`` (``open`` trips, ``closed`` resets).

    Args:
        admin_urls: target → base URL of the admin API that controls it.
        timeout: seconds for each request.
        transport: an httpx transport, default the network.
    """

    actions = frozenset(_ADMIN_SCHEMAS)

    def __init__(
        self, admin_urls: Mapping[str, str], timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        for target, url in admin_urls.items():
            if not _URL.fullmatch(url):
                raise ValueError(f"admin URL of {target!r} is not an http(s) URL: {url!r}")
        self._urls = {t: u.rstrip("/") for t, u in admin_urls.items()}
        self._client = _client(timeout, transport)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        """Return the current weight of the instance, or the current state of the breaker."""
        key, name = self._key(action, target, params)
        path, field_, _ = _PATHS[action]
        current = self._read(action, target, path, field_).get(name)
        if not isinstance(current, int | str) or isinstance(current, bool):
            raise ActionError(action, target, f"{path} has no {key} {name!r}")
        value_key = "weight" if action == "lb_weight" else "state"
        return {key: name, value_key: current}

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        """POST the new weight or breaker state; a non-2xx answer is a failed report."""
        values = validate(action, target, params, self._schema(action, target))
        key, name = self._key(action, target, params)
        value_key = "weight" if action == "lb_weight" else "state"
        body = {key: name, value_key: values[value_key]}
        url = self._base(action, target) + _PATHS[action][0]
        return _report(action, _send(self._client, action, target, "POST", url, payload=body))

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        """POST back the weight or breaker state captured by ``snapshot``."""
        if "weight" in state:
            params = {"instance": state.get("instance", target), "weight": state["weight"]}
            return self.execute("lb_weight", target, params)
        if "peer" in state:
            return self.execute("breaker", target, {"peer": state["peer"],
                                                    "state": state.get("state", "")})
        raise ActionError("restore", target, "state has no 'weight' or 'peer'")

    def _schema(self, action: str, target: str) -> Schema:
        schema = _ADMIN_SCHEMAS.get(action)
        if schema is None:
            raise ActionError(action, target, f"unknown action; known: {sorted(self.actions)}")
        return schema

    def _key(self, action: str, target: str, params: Params) -> tuple[str, str]:
        values = validate(action, target, params, self._schema(action, target))
        key = _PATHS[action][2]
        return key, str(values.get(key, target))

    def _base(self, action: str, target: str) -> str:
        check_target(action, target)
        url = self._urls.get(target)
        if url is None:
            raise ActionError(action, target, "no admin URL registered for this target")
        return url

    def _read(self, action: str, target: str, path: str, field_: str) -> dict[str, Any]:
        resp = _send(self._client, action, target, "GET", self._base(action, target) + path)
        if not 200 <= resp.status_code < 300:
            raise ActionError(action, target, f"GET {path}: HTTP {resp.status_code}")
        try:
            doc = resp.json()
        except ValueError as exc:
            raise ActionError(action, target, f"GET {path}: not JSON") from exc
        section = doc.get(field_) if isinstance(doc, dict) else None
        if not isinstance(section, dict):
            raise ActionError(action, target, f"GET {path}: no {field_!r} object")
        return section
