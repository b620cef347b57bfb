"""Scale, restart and resize Kubernetes deployments through ``kubectl``, as an Executor.

Every value that reaches the command line has passed a strict pattern first: deployment
and namespace names are DNS-1123 names, replica counts are bounded integers, resource
quantities match Kubernetes' quantity syntax. ``kubectl`` runs without a shell.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from selfheal_kg.act.command import run_argv
from selfheal_kg.act.executor import ActionReport, Params
from selfheal_kg.act.params import ParamSpec, Schema, check_target, validate
from selfheal_kg.errors import ActionError, UnsafeParameter
from selfheal_kg.model import FactValue

_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_QUANTITY = r"(0|[1-9][0-9]{0,8}(\.[0-9]{1,3})?(m|k|M|G|Ki|Mi|Gi)?)"
_RESOURCES = ("limits.cpu", "limits.memory", "requests.cpu", "requests.memory")
_TIMEOUT = ParamSpec("float", default=60.0, minimum=1.0, maximum=600.0)


def _schemas(max_replicas: int) -> dict[str, Schema]:
    quantity = ParamSpec("str", pattern=_QUANTITY)
    return {
        "scale": {
            "replicas": ParamSpec("int", minimum=0, maximum=max_replicas),
            "increment": ParamSpec("int", minimum=-10, maximum=10),
            "timeout": _TIMEOUT,
        },
        "rollout_restart": {"timeout": _TIMEOUT},
        "set_resources": {
            "container": ParamSpec("str", required=True, pattern=_DNS_LABEL),
            **{name: quantity for name in _RESOURCES},
            "timeout": _TIMEOUT,
        },
    }


class KubectlExecutor:
    """``scale``, ``rollout_restart`` and ``set_resources`` on a target's deployment.

    Args:
        deployments: target → ``name`` or ``namespace/name``; when ``None`` the target itself
            names the deployment (it must be a DNS-1123 name) in ``namespace``.
        namespace: the default namespace.
        kubectl: path or name (looked up on PATH) of the ``kubectl`` binary.
        max_replicas: the most replicas ``scale`` may ask for.
    """

    actions = frozenset({"scale", "rollout_restart", "set_resources"})

    def __init__(
        self,
        deployments: Mapping[str, str] | None = None,
        namespace: str = "default",
        kubectl: str = "kubectl",
        max_replicas: int = 50,
    ) -> None:
        if not re.fullmatch(_DNS_LABEL, namespace):
            raise ValueError(f"namespace {namespace!r} is not a DNS-1123 label")
        self._namespace = namespace
        self._deployments = dict(deployments) if deployments is not None else None
        for ref in (deployments or {}).values():
            self._split(ref, "config", ref)
        self._kubectl = kubectl
        self._schemas = _schemas(max_replicas)

    def deployment(self, action: str, target: str) -> tuple[str, str]:
        """Return ``(namespace, name)`` of the target's deployment."""
        check_target(action, target)
        if self._deployments is None:
            return self._split(target, action, target)
        ref = self._deployments.get(target)
        if ref is None:
            raise ActionError(action, target, "no deployment registered for this target")
        return self._split(ref, action, target)

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        """Return the replicas (``scale``), the revision (``rollout_restart``) or resources."""
        values = validate(action, target, params, self._schema(action, target))
        timeout = float(values["timeout"])
        if action == "scale":
            replicas = self._get(action, target, "{.spec.replicas}", timeout)
            return {"replicas": _int(action, target, replicas)}
        if action == "rollout_restart":
            path = r"{.metadata.annotations.deployment\.kubernetes\.io/revision}"
            return {"revision": _int(action, target, self._get(action, target, path, timeout))}
        container = str(values["container"])
        path = f'{{.spec.template.spec.containers[?(@.name=="{container}")].resources}}'
        raw = self._get(action, target, path, timeout)
        return {"container": container, **_flatten_resources(action, target, raw)}

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        """Run the kubectl command of ``action``; a non-zero exit is a failed report.

        Params: ``scale``: ``replicas`` (absolute) or ``increment`` (relative, -10..10);
        ``set_resources``: ``container`` and any of ``limits.cpu``, ``limits.memory``,
        ``requests.cpu``, ``requests.memory``; all: ``timeout`` seconds.
        """
        values = validate(action, target, params, self._schema(action, target))
        ns, name = self.deployment(action, target)
        timeout = float(values["timeout"])
        if action == "scale":
            args = ["scale", f"deployment/{name}", f"--replicas={self._replicas(target, values)}"]
        elif action == "rollout_restart":
            args = ["rollout", "restart", f"deployment/{name}"]
        else:
            args = ["set", "resources", f"deployment/{name}", "-c", str(values["container"])]
            args += _resource_flags(action, target, values)
        return self._run(action, target, [*args, "-n", ns], timeout)

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        """Scale back, undo to the saved revision, or put the saved resources back."""
        if "replicas" in state:
            return self.execute("scale", target, {"replicas": state["replicas"]})
        ns, name = self.deployment("restore", target)
        if "revision" in state:
            rev = _int("restore", target, str(state["revision"]))
            args = ["rollout", "undo", f"deployment/{name}", f"--to-revision={rev}", "-n", ns]
            return self._run("restore", target, args, 60.0)
        if "container" in state:
            # An unset resource is put back as 0, which kubectl set resources reads as "remove".
            params: dict[str, FactValue] = {"container": state["container"]}
            params.update({k: str(state.get(k) or "0") for k in _RESOURCES})
            return self.execute("set_resources", target, params)
        raise ActionError("restore", target, "state has no replicas, revision or container")

    def _schema(self, action: str, target: str) -> Schema:
        schema = self._schemas.get(action)
        if schema is None:
            raise ActionError(action, target, f"unknown action; known: {sorted(self.actions)}")
        return schema

    def _replicas(self, target: str, values: Mapping[str, FactValue]) -> int:
        if ("replicas" in values) == ("increment" in values):
            raise UnsafeParameter("scale", target, "give exactly one of replicas, increment")
        if "replicas" in values:
            return int(values["replicas"])
        current = int(self.snapshot("scale", target, {})["replicas"])
        want = current + int(values["increment"])
        high = self._schemas["scale"]["replicas"].maximum or 0
        if not 0 <= want <= high:
            raise UnsafeParameter("scale", target, f"{current}{values['increment']:+} replicas "
                                  f"is outside 0..{high:g}")
        return want

    def _get(self, action: str, target: str, jsonpath: str, timeout: float) -> str:
        ns, name = self.deployment(action, target)
        argv = [self._kubectl, "get", "deployment", name, "-n", ns, "-o", f"jsonpath={jsonpath}"]
        result = run_argv(action, target, argv, timeout)
        if result.returncode != 0:
            raise ActionError(action, target, f"kubectl get failed: {result.summary()}")
        return result.stdout.strip()

    def _run(self, action: str, target: str, args: list[str], timeout: float) -> ActionReport:
        result = run_argv(action, target, [self._kubectl, *args], timeout)
        shown = " ".join(args[:3])
        return ActionReport(result.returncode == 0, f"kubectl {shown}: {result.summary()}")

    def _split(self, ref: str, action: str, target: str) -> tuple[str, str]:
        ns, _, name = ref.rpartition("/")
        ns = ns or self._namespace
        if not _DNS_NAME.fullmatch(name) or not re.fullmatch(_DNS_LABEL, ns):
            raise UnsafeParameter(action, target, f"deployment {ref!r} is not a DNS-1123 name")
        return ns, name


def _int(action: str, target: str, raw: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        raise ActionError(action, target, f"kubectl returned {raw!r:.80}, not a count")
    return int(raw)


def _flatten_resources(action: str, target: str, raw: str) -> dict[str, FactValue]:
    """Turn ``{"limits": {"cpu": "1"}, ...}`` into ``{"limits.cpu": "1", ...}`` ("" = unset)."""
    try:
        doc = json.loads(raw) if raw else {}
    except json.JSONDecodeError as exc:
        raise ActionError(action, target, f"kubectl returned invalid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ActionError(action, target, "kubectl returned resources that are not an object")
    out: dict[str, FactValue] = {}
    for key in _RESOURCES:
        group, res = key.split(".")
        section = doc.get(group) or {}
        value = section.get(res, "") if isinstance(section, dict) else ""
        out[key] = str(value)
    return out


def _resource_flags(action: str, target: str, values: Mapping[str, FactValue]) -> list[str]:
    flags = []
    for group in ("limits", "requests"):
        pairs = [f"{res}={values[f'{group}.{res}']}" for res in ("cpu", "memory")
                 if f"{group}.{res}" in values]
        if pairs:
            flags.append(f"--{group}={','.join(pairs)}")
    if not flags:
        raise UnsafeParameter(action, target, "set_resources needs a limit or a request")
    return flags
