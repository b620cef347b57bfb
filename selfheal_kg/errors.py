"""One error tree for the whole project.

::

    SelfHealError
     ├── ConfigError(ValueError)             bad configuration value
     ├── FileLoadError(ValueError)           a user-authored file was refused
     │    ├── TurtleSyntaxError              Turtle that does not parse (file, line)
     │    ├── SchemaError                    YAML/JSON that fails its JSON Schema (file, id, path)
     │    ├── ShaclError                     data that violates a SHACL shape (focus, path, reason)
     │    └── RuleLoadError                  a rule that cannot be compiled (file, rule id)
     ├── TelemetryError(ValueError)          an OTLP body that cannot be decoded
     │    ├── UnsupportedMediaType           content type other than protobuf / JSON
     │    └── PayloadTooLarge                body above the cap after decompression
     ├── Overloaded(RuntimeError)            intake queue full: retry later
     ├── QueryError(ValueError)              SPARQL that does not parse or is not read-only
     ├── NotFound(LookupError)               an incident, playbook or pattern id that is unknown
     ├── AuthError(PermissionError)          missing or wrong bearer token
     ├── RuleActionError(RuntimeError)       an exception raised inside a rule action
     └── ActionError(RuntimeError)           an executor step that failed (target, action)
          └── UnsafeParameter(ValueError)    a parameter refused by its schema (never run)

Outcomes such as "not conformant", "no diagnosis" or "verification failed" are values,
not exceptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class SelfHealError(Exception):
    """Base of every error raised by selfheal-kg."""


class ConfigError(SelfHealError, ValueError):
    """A configuration value is missing or invalid."""


class FileLoadError(SelfHealError, ValueError):
    """A user-authored file (topology, rule, playbook, pattern) was refused.

    Args:
        file: path of the refused file.
        reason: what is wrong, in words a user can act on.
        line: 1-based line for syntax errors, when known.
        item: id of the rule/playbook/node concerned, when known.
    """

    def __init__(
        self, file: str, reason: str, *, line: int | None = None, item: str | None = None
    ) -> None:
        self.file = file
        self.reason = reason
        self.line = line
        self.item = item
        where = file if line is None else f"{file}:{line}"
        what = f" [{item}]" if item else ""
        super().__init__(f"{where}{what}: {reason}")


class TurtleSyntaxError(FileLoadError):
    """Turtle that does not parse."""


class SchemaError(FileLoadError):
    """A YAML or JSON document that fails its JSON Schema."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One SHACL validation result, read out of pySHACL's report graph."""

    focus: str
    path: str | None
    value: str | None
    message: str
    shape: str
    severity: str

    def __str__(self) -> str:
        prop = f" {self.path}" if self.path else ""
        val = f" (value {self.value})" if self.value is not None else ""
        return f"{self.focus}{prop}{val}: {self.message}"


class ShaclError(FileLoadError):
    """Data that violates the SHACL shapes; carries every violation."""

    def __init__(self, file: str, violations: Sequence[Violation]) -> None:
        self.violations = tuple(violations)
        reason = "; ".join(str(v) for v in self.violations) or "SHACL validation failed"
        super().__init__(file, reason)


class RuleLoadError(FileLoadError):
    """A rule file or rule that cannot be compiled."""


class TelemetryError(SelfHealError, ValueError):
    """An OTLP request body that cannot be decoded (HTTP 400)."""


class UnsupportedMediaType(TelemetryError):
    """A content type other than application/x-protobuf or application/json (HTTP 415)."""


class PayloadTooLarge(TelemetryError):
    """A body above the size cap after decompression (HTTP 413)."""


class Overloaded(SelfHealError, RuntimeError):
    """The intake queue is full; the client should retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class QueryError(SelfHealError, ValueError):
    """SPARQL that does not parse, or an update sent to the read-only endpoint."""


class NotFound(SelfHealError, LookupError):
    """An id (incident, playbook, pattern, approval) that is unknown."""


class AuthError(SelfHealError, PermissionError):
    """A mutating request without the right bearer token."""


class RuleActionError(SelfHealError, RuntimeError):
    """An exception raised inside a rule action (durable-rules would swallow it)."""

    def __init__(self, rule: str, action: str, cause: BaseException) -> None:
        self.rule = rule
        self.action = action
        self.cause = cause
        super().__init__(f"rule {rule}: action {action} failed: {cause!r}")


class ActionError(SelfHealError, RuntimeError):
    """An executor step that failed."""

    def __init__(self, action: str, target: str, reason: str) -> None:
        self.action = action
        self.target = target
        self.reason = reason
        super().__init__(f"{action} on {target}: {reason}")


class UnsafeParameter(ActionError, ValueError):
    """A parameter refused by the playbook's parameter schema; nothing was run."""
