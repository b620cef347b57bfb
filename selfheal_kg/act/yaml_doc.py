"""Read a YAML file as a document and as a node tree, to report problems at their line.

Duplicate keys, keys YAML does not read as strings, and alias bombs are refused while reading;
``Invalid`` names a JSON path, which ``line_of`` turns back into the 1-based YAML line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from selfheal_kg.errors import SchemaError

MAX_FILE_BYTES = 1_000_000
_MAX_NODES = 100_000  # aliases can expand a small file into a huge tree
_MAX_DEPTH = 32

JsonPath = tuple[str | int, ...]


class Invalid(Exception):
    """A problem at a JSON path; the file's loader turns it into a ``SchemaError``."""

    def __init__(self, path: JsonPath, reason: str, *, key: str | None = None,
                 line: int | None = None) -> None:
        super().__init__(reason)
        self.path, self.reason, self.key, self.line = path, reason, key, line


def read_yaml(path: Path) -> tuple[yaml.Node, dict[str, Any]]:
    """Return the composed YAML tree (for line numbers) and the document it constructs."""
    file = str(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SchemaError(file, f"file larger than {MAX_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(file, f"cannot read: {exc}") from exc
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SchemaError(file, "the file is empty; declare at least one section")
        try:
            _check_nodes(node, (), 0, [0])
        except Invalid as exc:
            raise SchemaError(file, f"{json_path(exc.path)}: {exc.reason}",
                              line=exc.line or line_of(node, exc.path)) from None
        doc = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise SchemaError(file, f"YAML syntax error: {exc.problem or exc}", line=line) from exc
    except yaml.YAMLError as exc:
        raise SchemaError(file, f"YAML error: {exc}") from exc
    finally:
        loader.dispose()
    if not isinstance(doc, dict):
        raise SchemaError(file, f"$: expected a mapping of sections, got {type(doc).__name__}",
                          line=node.start_mark.line + 1)
    return node, doc


def _check_nodes(node: yaml.Node, path: JsonPath, depth: int, count: list[int]) -> None:
    """Refuse duplicate keys, keys that are not strings, and alias bombs or cycles."""
    count[0] += 1
    if depth > _MAX_DEPTH or count[0] > _MAX_NODES:
        raise Invalid(path, "nested too deep or too large (recursive or repeated YAML aliases?)")
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_nodes(item, (*path, i), depth + 1, count)
    elif isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                continue
            line = key.start_mark.line + 1
            if not isinstance(key, yaml.ScalarNode) or key.tag != "tag:yaml.org,2002:str":
                raise Invalid(path, f"key {getattr(key, 'value', key)!r} is not read as a "
                                     f"string by YAML (tag {key.tag}); quote it", line=line)
            if key.value in seen:
                raise Invalid(path, f"key {key.value!r} appears twice", line=line)
            seen.add(key.value)
            _check_nodes(value, (*path, key.value), depth + 1, count)


def line_of(node: yaml.Node, path: JsonPath, key: str | None = None) -> int:
    """Return the 1-based line of ``path`` (of its ``key``, if given) in the YAML tree.

    A mapping entry is reported at its key's line, where a reader looks for it.
    """
    mark = node.start_mark
    for part in [*path, key] if key is not None else path:
        found = _child(node, part)
        if found is None:
            break
        node, mark = found
    return int(mark.line) + 1


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node, yaml.Mark] | None:
    """Return the child at ``part`` and the mark to report it at."""
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        item: yaml.Node = node.value[part]
        return item, item.start_mark
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if getattr(k, "value", None) == part:
                return v, k.start_mark
    return None


def json_path(path: JsonPath) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
