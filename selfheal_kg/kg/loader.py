"""Files → named graphs: parse everything, validate the candidate graph, only then swap it in.

Graphs and where they come from:

- ontology  ← ``ontology/selfheal.ttl``
- shapes    ← ``ontology/shapes.ttl``
- topology  ← declared Turtle files (+ the discovered part already in the store)
- knowledge ← ``ontology/patterns.ttl`` + playbooks (YAML) + compiled rules (triples)

A refused load raises a ``FileLoadError`` subclass and leaves the previous graph in force.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import rdflib
from rdflib import RDF, RDFS

from selfheal_kg.decide.playbook import Playbook, load_playbook, playbook_files, playbook_triples
from selfheal_kg.errors import FileLoadError, SchemaError, ShaclError, Violation
from selfheal_kg.kg import shacl
from selfheal_kg.kg.namespaces import (
    KNOWLEDGE_GRAPH,
    ONTOLOGY_GRAPH,
    SHAPES_GRAPH,
    TOPOLOGY_GRAPH,
)
from selfheal_kg.kg.store import KnowledgeStore, RdflibStore, Triple
from selfheal_kg.kg.topology import declared_triples, discovered_triples, parse_turtle

ONTOLOGY_FILE = "selfheal.ttl"
SHAPES_FILE = "shapes.ttl"
PATTERNS_FILE = "patterns.ttl"
RULES_SOURCE = "rules"


class KnowledgeLoader:
    """Load the user-authored files into the store's named graphs, SHACL-checked."""

    def __init__(
        self, store: KnowledgeStore, ontology_dir: Path, shapes: Path | None = None
    ) -> None:
        self.store = store
        self.ontology_dir = Path(ontology_dir)
        self.shapes_path = shapes or self.ontology_dir / SHAPES_FILE
        self.ontology = parse_turtle(self.ontology_dir / ONTOLOGY_FILE, skolemize=True)
        self.shapes = parse_turtle(self.shapes_path, skolemize=True)
        self._patterns: list[Triple] = []
        self._playbooks: list[Triple] = []
        self._rules: list[Triple] = []
        self._sources: dict[str, str] = {}  # rendered subject → file it came from

    # -- whole and per-kind loads ---------------------------------------------------------

    def load_all(
        self,
        topology_files: Sequence[Path],
        playbooks_dir: Path,
        rules_triples: Iterable[Triple] = (),
    ) -> None:
        """Load ontology, shapes, topology and knowledge; raise ``FileLoadError`` if refused."""
        self.reload_ontology()
        self.reload_topology(topology_files)
        self._patterns = self._read_patterns()
        self._playbooks = self._read_playbooks(playbooks_dir)
        self._rules = list(rules_triples)
        self._swap_knowledge(self._patterns, self._playbooks, self._rules)

    def reload_ontology(self) -> None:
        """Re-read the ontology and shapes files and replace their graphs."""
        ontology = parse_turtle(self.ontology_dir / ONTOLOGY_FILE, skolemize=True)
        shapes = parse_turtle(self.shapes_path, skolemize=True)
        self.store.replace_graph(ONTOLOGY_GRAPH, ontology)
        self.store.replace_graph(SHAPES_GRAPH, shapes)
        self.ontology, self.shapes = ontology, shapes

    def reload_topology(self, files: Sequence[Path]) -> None:
        """Replace the declared topology (keeping what was discovered and is not contradicted)."""
        declared = declared_triples(files)
        self._remember_sources(files)
        candidate = declared + discovered_triples(self.store, declared)
        self._check(candidate, ", ".join(str(f) for f in files) or "topology")
        self.store.replace_graph(TOPOLOGY_GRAPH, candidate)

    def reload_playbooks(self, playbooks_dir: Path) -> None:
        """Re-read the playbooks and patterns, then replace the knowledge graph."""
        patterns = self._read_patterns()
        playbooks = self._read_playbooks(playbooks_dir)
        self._swap_knowledge(patterns, playbooks, self._rules)
        self._patterns, self._playbooks = patterns, playbooks

    def reload_rules(self, rules_triples: Iterable[Triple]) -> None:
        """Replace the compiled rules in the knowledge graph."""
        rules = list(rules_triples)
        self._swap_knowledge(self._patterns, self._playbooks, rules)
        self._rules = rules

    # -- checks without loading -----------------------------------------------------------

    def validate_paths(self, paths: Sequence[Path]) -> list[str]:
        """Check topology .ttl, playbook and rule .yaml files and directories; return problems."""
        files = _expand(paths)
        problems: list[str] = []
        topo = [f for f in files if f.suffix == ".ttl" and f.name not in _ONTOLOGY_NAMES]
        for f in files:
            if f.suffix == ".ttl" and f.name in (ONTOLOGY_FILE, SHAPES_FILE):
                problems += _attempt(lambda f=f: parse_turtle(f, skolemize=True))  # type: ignore[misc]
        patterns = self._patterns_for(files, problems)
        problems += _attempt(lambda: self._check(declared_triples(topo), _join(topo)))
        playbooks, rules = _split_yaml(files)
        knowledge = list(patterns)
        for f in playbooks:
            problems += _attempt(lambda f=f: knowledge.extend(self._playbook_file(f)))  # type: ignore[misc]
        problems += _duplicate_ids(playbooks)
        knowledge += _rule_checks(rules, problems)
        problems += _attempt(lambda: self._check(knowledge, _join(playbooks) or "knowledge"))
        return problems

    # -- internals -------------------------------------------------------------------------

    def _patterns_for(self, files: list[Path], problems: list[str]) -> list[Triple]:
        given = [f for f in files if f.name == PATTERNS_FILE]
        path = given[0] if given else self.ontology_dir / PATTERNS_FILE
        try:
            graph = parse_turtle(path)
        except FileLoadError as exc:
            problems.append(str(exc))
            return []
        self._remember_graph(graph, str(path))
        return list(graph)

    def _read_patterns(self) -> list[Triple]:
        path = self.ontology_dir / PATTERNS_FILE
        if not path.is_file():
            return []
        graph = parse_turtle(path)
        self._remember_graph(graph, str(path))
        return list(graph)

    def _read_playbooks(self, directory: Path) -> list[Triple]:
        seen: dict[str, Playbook] = {}
        out: list[Triple] = []
        for path in playbook_files(directory) if directory.is_dir() else []:
            pb = load_playbook(path)
            if pb.id in seen:
                raise SchemaError(
                    str(path), f"duplicate playbook id (also in {seen[pb.id].source})", item=pb.id
                )
            seen[pb.id] = pb
            out += self._playbook_file(path, pb)
        return out

    def _playbook_file(self, path: Path, pb: Playbook | None = None) -> list[Triple]:
        pb = pb or load_playbook(path)
        triples = playbook_triples(pb)
        for s, _, _ in triples:
            self._sources[shacl.show_term(s)] = str(path)
        return triples

    def _swap_knowledge(self, *parts: list[Triple]) -> None:
        candidate = [t for part in parts for t in part]
        self._check(candidate, "knowledge")
        self.store.replace_graph(KNOWLEDGE_GRAPH, candidate)

    def _check(self, candidate: Sequence[Triple], default_file: str) -> None:
        """Raise ``ShaclError`` naming the file of the first violation's focus node."""
        data = rdflib.Graph()
        for t in candidate:
            data.add(t)
        violations = shacl.validate(data, self.shapes, ontology=self.ontology)
        if violations:
            raise ShaclError(self._file_of(violations[0], default_file), violations)

    def _file_of(self, violation: Violation, default: str) -> str:
        return self._sources.get(violation.focus, default)

    def _remember_sources(self, files: Sequence[Path]) -> None:
        for f in files:
            self._remember_graph(parse_turtle(f), str(f))

    def _remember_graph(self, graph: rdflib.Graph, file: str) -> None:
        for s in set(graph.subjects(RDF.type, None)) | set(graph.subjects(RDFS.label, None)):
            self._sources[shacl.show_term(s)] = file


_ONTOLOGY_NAMES = (ONTOLOGY_FILE, SHAPES_FILE, PATTERNS_FILE)


def validate_paths(paths: Sequence[Path], ontology_dir: Path) -> list[str]:
    """Check files against the ontology of ``ontology_dir`` without touching any store."""
    return KnowledgeLoader(RdflibStore(), ontology_dir).validate_paths(paths)


def _expand(paths: Sequence[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            # not recursive: rules/tests/ holds rule test cases, not rules
            out += sorted(
                f for f in p.iterdir() if f.suffix in (".ttl", ".yaml", ".yml") and f.is_file()
            )
        else:
            out.append(p)
    return out


def _join(files: Sequence[Path]) -> str:
    return ", ".join(str(f) for f in files)


def _attempt(fn: Callable[[], Any]) -> list[str]:
    """Run ``fn``; return the message of a refused file (one per SHACL violation)."""
    try:
        fn()
    except ShaclError as exc:
        return [f"{exc.file}: {v}" for v in exc.violations] or [str(exc)]
    except FileLoadError as exc:
        return [str(exc)]
    return []


def _is_rule_file(path: Path) -> bool:
    if path.parent.name == "rules":
        return True
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:20_000]
    except OSError:
        return False
    return any(line.startswith(("rules:", "ruleset:")) for line in head.splitlines())


def _split_yaml(files: list[Path]) -> tuple[list[Path], list[Path]]:
    yamls = [f for f in files if f.suffix in (".yaml", ".yml")]
    rules = [f for f in yamls if _is_rule_file(f)]
    return [f for f in yamls if f not in rules], rules


def _duplicate_ids(files: list[Path]) -> list[str]:
    seen: dict[str, Path] = {}
    out: list[str] = []
    for f in files:
        try:
            pb = load_playbook(f)
        except FileLoadError:
            continue  # already reported
        if pb.id in seen:
            out.append(
                str(
                    SchemaError(
                        str(f), f"duplicate playbook id (also in {seen[pb.id]})", item=pb.id
                    )
                )
            )
        seen.setdefault(pb.id, f)
    return out


def _rule_checks(files: list[Path], problems: list[str]) -> list[Triple]:
    """Load rule files with the rule engine's loader (when importable); return their triples."""
    if not files:
        return []
    try:
        rules_mod = importlib.import_module("selfheal_kg.engine.rules")
    except ImportError:
        problems.append(f"note: rule engine not importable; {len(files)} rule file(s) not checked")
        return []
    to_triples = _optional(("selfheal_kg.engine.to_graph", "rule_triples"))
    out: list[Triple] = []
    for f in files:
        try:
            ruleset = rules_mod.load_rule_file(f)
        except FileLoadError as exc:
            problems.append(str(exc))
            continue
        if to_triples is not None:
            out += list(to_triples(ruleset))
    return out


def _optional(target: tuple[str, str]) -> Callable[..., Iterable[Triple]] | None:
    try:
        fn: Callable[..., Iterable[Triple]] = getattr(importlib.import_module(target[0]), target[1])
    except (ImportError, AttributeError):
        return None
    return fn


def rules_dir_triples(rules_dir: Path) -> list[Triple]:
    """Compile the rules of ``rules_dir`` to triples through the rule engine, when it is importable.

    Returns an empty list when ``selfheal_kg.engine.rules`` or ``engine.to_graph`` is missing.
    """
    load = _optional(("selfheal_kg.engine.rules", "load_rules"))
    to_triples = _optional(("selfheal_kg.engine.to_graph", "rule_triples"))
    if load is None or to_triples is None or not rules_dir.is_dir():
        return []
    return list(to_triples(load(rules_dir)))
