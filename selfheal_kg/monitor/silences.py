"""Label matchers, silences and declarative inhibit rules, as in Prometheus Alertmanager.

A matcher tests one label (``=``, ``!=``, ``=~``, ``!~``; regexes are anchored, as in
Alertmanager). A silence mutes the alerts all its matchers select between ``starts`` and
``ends``. An inhibit rule mutes the alerts matching its target matchers while an alert matching
its source matchers fires with the same values of the ``equal`` labels.
Spec: https://prometheus.io/docs/alerting/latest/configuration/#inhibit_rule
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from selfheal_kg.errors import ConfigError, NotFound

MatchOp = Literal["=", "!=", "=~", "!~"]
_OPS: tuple[MatchOp, ...] = ("=~", "!~", "!=", "=")  # longest first, for parsing
_LABEL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$")
MAX_PATTERN = 512  # long user regexes are refused rather than risk pathological matching


@dataclass(frozen=True, slots=True)
class Matcher:
    """Test one label value; a missing label matches as the empty string (Alertmanager)."""

    name: str
    value: str
    op: MatchOp = "="
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not _LABEL_RE.match(self.name):
            raise ConfigError(f"matcher label name {self.name!r} is not a valid label name")
        if self.op not in _OPS:
            raise ConfigError(f"matcher operator {self.op!r} is not one of = != =~ !~")
        if self.op in ("=~", "!~"):
            if len(self.value) > MAX_PATTERN:
                raise ConfigError(f"matcher regex on {self.name!r} is above {MAX_PATTERN} chars")
            try:
                object.__setattr__(self, "_regex", re.compile(self.value))
            except re.error as exc:
                raise ConfigError(f"matcher regex {self.value!r} is invalid: {exc}") from exc

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Build a matcher from ``name<op>value``, e.g. ``severity=~"crit.*"``."""
        for op in _OPS:
            name, sep, value = text.partition(op)
            if sep:
                return cls(name.strip(), value.strip().strip('"'), op)
        raise ConfigError(f"matcher {text!r} has no operator (= != =~ !~)")

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether ``labels`` satisfy this matcher."""
        got = labels.get(self.name, "")
        if self._regex is not None:
            hit = self._regex.fullmatch(got) is not None
            return hit if self.op == "=~" else not hit
        return (got == self.value) if self.op == "=" else (got != self.value)

    def as_dict(self) -> dict[str, object]:
        """Return the Alertmanager API form (name, value, isRegex, isEqual)."""
        return {
            "name": self.name,
            "value": self.value,
            "isRegex": self.op in ("=~", "!~"),
            "isEqual": self.op in ("=", "=~"),
        }


def match_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Return whether every matcher selects ``labels``."""
    return all(m.matches(labels) for m in matchers)


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes matching alerts from ``starts`` (inclusive) to ``ends`` (exclusive)."""

    id: str
    matchers: tuple[Matcher, ...]
    starts: float
    ends: float
    created_by: str
    comment: str

    def state(self, now: float) -> str:
        """Return ``pending``, ``active`` or ``expired`` at ``now``."""
        if now < self.starts:
            return "pending"
        return "active" if now < self.ends else "expired"

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        """Return whether this silence mutes ``labels`` at ``now``."""
        return self.state(now) == "active" and match_all(self.matchers, labels)


class Silences:
    """The silences known to one alert manager; ids are random UUIDs."""

    def __init__(self) -> None:
        self._by_id: dict[str, Silence] = {}

    def add(
        self,
        matchers: Sequence[Matcher],
        starts: float,
        ends: float,
        created_by: str,
        comment: str,
        *,
        now: float,
    ) -> str:
        """Add a silence and return its id; raise ``ConfigError`` (a ValueError) saying why not."""
        if not matchers:
            raise ConfigError("a silence needs at least one matcher")
        if all(m.matches({}) for m in matchers):
            raise ConfigError("a silence whose matchers all match the empty label would mute all")
        if ends <= starts:
            raise ConfigError(f"silence ends ({ends}) must be after it starts ({starts})")
        if ends <= now:
            raise ConfigError(f"silence ends ({ends}) in the past: it would never be active")
        if not created_by.strip():
            raise ConfigError("a silence needs created_by (who set it)")
        sid = str(uuid.uuid4())
        self._by_id[sid] = Silence(sid, tuple(matchers), starts, ends, created_by, comment)
        return sid

    def expire(self, sid: str, now: float) -> Silence:
        """End a silence now; raise ``NotFound`` for an unknown id."""
        sil = self._by_id.get(sid)
        if sil is None:
            raise NotFound(f"no silence {sid!r}")
        if sil.state(now) == "expired":
            return sil
        ended = replace(sil, ends=now, starts=min(sil.starts, now))
        self._by_id[sid] = ended
        return ended

    def all(self) -> list[Silence]:
        """Return every silence, oldest start first."""
        return sorted(self._by_id.values(), key=lambda s: (s.starts, s.id))

    def muting(self, labels: Mapping[str, str], now: float) -> tuple[str, ...]:
        """Return the ids of the silences muting ``labels`` at ``now``."""
        return tuple(s.id for s in self.all() if s.mutes(labels, now))


@dataclass(frozen=True, slots=True)
class InhibitRule:
    """Mute target alerts while a source alert fires with equal values of ``equal`` labels."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.source or not self.target:
            raise ConfigError("an inhibit rule needs source and target matchers")

    def inhibits(self, source: Mapping[str, str], target: Mapping[str, str]) -> bool:
        """Return whether a firing alert labelled ``source`` inhibits one labelled ``target``."""
        return (
            match_all(self.source, source)
            and match_all(self.target, target)
            and all(source.get(k, "") == target.get(k, "") for k in self.equal)
        )
