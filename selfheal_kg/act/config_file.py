"""Change and roll back configuration files (JSON, YAML, .env), as an Executor.

Each target has one registered file; nothing derives a path from a target or a parameter.
Every write is atomic (a temporary file in the same directory, then ``os.replace``) and is
preceded by a saved version ``<file>.v<N>`` next to the file (the newest ``keep_versions``
are kept), which ``config_rollback`` puts back.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml

from selfheal_kg.act.executor import ActionReport, Params
from selfheal_kg.act.params import ParamSpec, check_target, validate
from selfheal_kg.errors import ActionError, UnsafeParameter
from selfheal_kg.model import FactValue

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}(\.[A-Za-z_][A-Za-z0-9_-]{0,63}){0,7}")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_ENV_LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)")
_ENV_BARE = re.compile(r"[A-Za-z0-9_./:@+,-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_VALUE = 1024
_MAX_FILE = 256 * 1024
_ROLLBACK = {"version": ParamSpec("int", minimum=1)}


class ConfigFileExecutor:
    """``config_set`` (set keys, params = ``{key: value}``) and ``config_rollback``.

    Args:
        files: target → its configuration file (``.json``, ``.yaml``/``.yml`` or ``.env``).
        keep_versions: saved versions kept next to each file.
        allowed_keys: target → the only keys ``config_set`` may change (all keys when absent).
    """

    actions = frozenset({"config_set", "config_rollback"})

    def __init__(
        self,
        files: Mapping[str, Path],
        keep_versions: int = 5,
        allowed_keys: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        for target, path in files.items():
            _format(path, "config", target)
        if keep_versions < 1:
            raise ValueError("keep_versions must be at least 1")
        self._files = dict(files)
        self._keep = keep_versions
        self._allowed = {t: frozenset(keys) for t, keys in (allowed_keys or {}).items()}

    # -- Executor port -----------------------------------------------------------------------

    def applies(self, action: str, target: str) -> str | None:
        """Return why ``action`` cannot act on ``target`` now (the ``Precondition`` port).

        A rollback needs a saved version that differs from the file: with none, or right
        after a rollback (the file is its newest version again), there is nothing to undo.
        """
        path = self._files.get(target)
        if path is None:
            return f"no configuration file registered for {target}"
        if action != "config_rollback":
            return None
        saved = self.versions(target)
        if not saved:
            return f"no saved version of {path.name}: nothing to roll back to"
        newest = _version_path(path, saved[-1])
        try:
            same = newest.read_bytes() == path.read_bytes()
        except OSError as exc:
            return f"cannot compare {path.name} with its saved version: {exc.strerror}"
        if same:
            return f"{path.name} is the same as its newest saved version: no change to undo"
        return None

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        """Return, per key to change, ``had:<key>`` and ``old:<key>`` (JSON); or the content."""
        path = self._path(action, target)
        if action == "config_rollback":
            validate(action, target, params, _ROLLBACK)
            return {"content": _read_text(path, action, target)}
        self._check_set(target, params)
        doc = _load(path, target)
        state: dict[str, FactValue] = {}
        for key in params:
            found, old = _get(doc, key)
            state[f"had:{key}"] = found
            if found:
                state[f"old:{key}"] = json.dumps(old)
        return state

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        """Set the keys in ``params`` (``config_set``) or put back a saved version."""
        path = self._path(action, target)
        if action == "config_rollback":
            values = validate(action, target, params, _ROLLBACK)
            return self._rollback(target, path, values.get("version"))
        self._check_set(target, params)
        doc = _load(path, target)
        for key, value in params.items():
            _put(doc, key, value)
        self._write(path, target, _dump(path, doc))
        return ActionReport(True, f"set {', '.join(sorted(params))} in {path.name}")

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        """Put the keys back (deleting those that did not exist), or the whole content."""
        path = self._path("restore", target)
        if isinstance(state.get("content"), str):
            self._write(path, target, str(state["content"]))
            return ActionReport(True, f"restored the content of {path.name}")
        doc = _load(path, target)
        keys = [k.removeprefix("had:") for k in state if k.startswith("had:")]
        if not keys:
            raise ActionError("restore", target, "state has no 'had:<key>' entries")
        for key in keys:
            if not _KEY.fullmatch(key):
                raise UnsafeParameter("restore", target, f"key {key!r} is not a safe key")
            if state[f"had:{key}"] is True:
                _put(doc, key, json.loads(str(state.get(f"old:{key}", "null"))))
            else:
                _delete(doc, key)
        self._write(path, target, _dump(path, doc))
        return ActionReport(True, f"restored {', '.join(sorted(keys))} in {path.name}")

    # -- versions ----------------------------------------------------------------------------

    def versions(self, target: str) -> list[int]:
        """Return the saved version numbers of the target's file, oldest first."""
        path = self._path("versions", target)
        pattern = re.compile(re.escape(path.name) + r"\.v([0-9]{1,9})")
        found = (pattern.fullmatch(p.name) for p in path.parent.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def _rollback(self, target: str, path: Path, version: FactValue | None) -> ActionReport:
        saved = self.versions(target)
        if not saved:
            raise ActionError("config_rollback", target, f"no saved version of {path.name}")
        number = saved[-1] if version is None else int(version)
        if number not in saved:
            raise ActionError("config_rollback", target, f"no version {number}; have {saved}")
        text = _read_text(_version_path(path, number), "config_rollback", target)
        self._write(path, target, text)
        return ActionReport(True, f"rolled {path.name} back to version {number}")

    def _write(self, path: Path, target: str, text: str) -> None:
        """Save the current file as a new version, then replace it atomically."""
        if path.exists():
            saved = self.versions(target)
            current = _read_text(path, "write", target)
            new = (saved[-1] if saved else 0) + 1
            _atomic_write(_version_path(path, new), current)
            for old in [*saved, new][: -self._keep]:
                _version_path(path, old).unlink(missing_ok=True)
        _atomic_write(path, text)

    # -- checks ------------------------------------------------------------------------------

    def _path(self, action: str, target: str) -> Path:
        check_target(action, target)
        if action not in self.actions and action not in ("restore", "versions", "write"):
            raise ActionError(action, target, f"unknown action; known: {sorted(self.actions)}")
        path = self._files.get(target)
        if path is None:
            raise ActionError(action, target, "no configuration file registered for this target")
        return path

    def _check_set(self, target: str, params: Params) -> None:
        if not params:
            raise UnsafeParameter("config_set", target, "no key to set")
        env = _format(self._files[target], "config_set", target) == "env"
        allowed = self._allowed.get(target)
        for key, value in params.items():
            if not (_ENV_KEY if env else _KEY).fullmatch(key):
                raise UnsafeParameter("config_set", target, f"key {key!r:.80} is not a safe key")
            if allowed is not None and key not in allowed:
                raise UnsafeParameter("config_set", target, f"key {key!r} is not allowed")
            _check_value(target, key, value)


def _check_value(target: str, key: str, value: object) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise UnsafeParameter("config_set", target, f"{key}: value must be finite")
    if isinstance(value, str) and (len(value) > _MAX_VALUE or _CONTROL.search(value)):
        raise UnsafeParameter("config_set", target, f"{key}: value too long or has a control "
                                                    "character")
    if not isinstance(value, str | int | float | bool):
        raise UnsafeParameter("config_set", target, f"{key}: value must be a scalar")


def _format(path: Path, action: str, target: str) -> str:
    suffix = path.suffix.lower() or path.name.lower()
    fmt = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".env": "env"}.get(suffix)
    if fmt is None:
        raise ActionError(action, target, f"{path.name}: not a .json, .yaml, .yml or .env file")
    return fmt


def _version_path(path: Path, number: int) -> Path:
    return path.with_name(f"{path.name}.v{number}")


def _read_text(path: Path, action: str, target: str) -> str:
    try:
        if path.stat().st_size > _MAX_FILE:
            raise ActionError(action, target, f"{path.name} is larger than {_MAX_FILE} bytes")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ActionError(action, target, f"cannot read {path.name}: {exc}") from exc


def _atomic_write(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- documents: a dict for JSON and YAML, an ordered list of lines for .env ---------------------


def _load(path: Path, target: str) -> Any:
    text = _read_text(path, "config_set", target) if path.exists() else ""
    fmt = _format(path, "config_set", target)
    if fmt == "env":
        return _EnvDoc(text)
    try:
        doc = (json.loads(text) if text.strip() else {}) if fmt == "json" \
            else (yaml.safe_load(text) or {})
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ActionError("config_set", target, f"{path.name} does not parse: {exc}") from exc
    if not isinstance(doc, dict):
        raise ActionError("config_set", target, f"{path.name}: top level is not a mapping")
    return doc


def _dump(path: Path, doc: Any) -> str:
    if isinstance(doc, _EnvDoc):
        return doc.text()
    if path.suffix.lower() == ".json":
        return json.dumps(doc, indent=2) + "\n"
    return str(yaml.safe_dump(doc, sort_keys=False))


def _get(doc: Any, key: str) -> tuple[bool, Any]:
    if isinstance(doc, _EnvDoc):
        return doc.get(key)
    node = doc
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _put(doc: Any, key: str, value: Any) -> None:
    if isinstance(doc, _EnvDoc):
        doc.put(key, value)
        return
    *parents, last = key.split(".")
    node = doc
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def _delete(doc: Any, key: str) -> None:
    if isinstance(doc, _EnvDoc):
        doc.delete(key)
        return
    *parents, last = key.split(".")
    node = doc
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)


class _EnvDoc:
    """A .env file as lines, so comments and order survive a change."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def _find(self, key: str) -> int | None:
        for i, line in enumerate(self.lines):
            match = _ENV_LINE.fullmatch(line)
            if match and match.group(1) == key:
                return i
        return None

    def get(self, key: str) -> tuple[bool, str | None]:
        i = self._find(key)
        if i is None:
            return False, None
        match = _ENV_LINE.fullmatch(self.lines[i])
        raw = match.group(2).strip() if match else ""
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            return True, raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if len(raw) >= 2 and raw[0] == raw[-1] == "'":
            return True, raw[1:-1]
        return True, raw

    def put(self, key: str, value: Any) -> None:
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if not _ENV_BARE.fullmatch(text):
            # Single quotes keep $ and backslashes literal for dotenv readers and shells.
            text = f"'{text}'" if "'" not in text else \
                '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        i = self._find(key)
        if i is None:
            self.lines.append(f"{key}={text}")
        else:
            export = "export " if self.lines[i].lstrip().startswith("export") else ""
            self.lines[i] = f"{export}{key}={text}"

    def delete(self, key: str) -> None:
        i = self._find(key)
        if i is not None:
            del self.lines[i]

    def text(self) -> str:
        return "\n".join(self.lines) + "\n" if self.lines else ""
