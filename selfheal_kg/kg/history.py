"""Triples for the incidents graph: every stage records what it did and why.

Each function turns one typed value into triples (PROV-O for provenance). Nodes get minted
IRIs under the incident's IRI, never blank nodes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from rdflib import RDF, RDFS, XSD, Literal, URIRef
from rdflib.term import Node

from selfheal_kg.kg.namespaces import PROV, SHK, node_iri
from selfheal_kg.model import (
    Candidate,
    Decision,
    Diagnosis,
    FactValue,
    Outcome,
    RootCause,
    Signal,
    StepResult,
)

Triple = tuple[Node, Node, Node]


def ts(t: float) -> Literal:
    """Return an xsd:dateTime literal (UTC, millisecond precision) for epoch seconds ``t``."""
    stamp = datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds")
    return Literal(stamp.replace("+00:00", "Z"), datatype=XSD.dateTime)


def dec(x: float) -> Literal:
    """Return an xsd:decimal literal rounded to 6 places (readable, stable in SPARQL)."""
    return Literal(f"{x:.6f}", datatype=XSD.decimal)


def incident_iri(incident_id: str) -> URIRef:
    """Return the IRI of an incident."""
    return node_iri("incident", incident_id)


def target_iri(name: str) -> URIRef:
    """Return the IRI of a topology node named ``name`` (services are the common case).

    The default of every ``iri`` argument below: the incident book passes the topology's
    own IRIs (a database is ``.../database/<name>``), so incidents join the topology.
    """
    return node_iri("service", name)


#: name of a topology node → its IRI
NodeIri = Callable[[str], URIRef]


def _json(value: Mapping[str, FactValue] | None) -> Literal:
    return Literal(json.dumps(dict(value or {}), sort_keys=True, default=str))


def incident_opened(
    incident_id: str, node: str, pattern: str, at: float, *, iri: NodeIri = target_iri
) -> list[Triple]:
    """Record a new incident affecting ``node``, first diagnosed as ``pattern``."""
    inc = incident_iri(incident_id)
    return [
        (inc, RDF.type, SHK.Incident),
        (inc, RDF.type, PROV.Entity),
        (inc, SHK.incidentId, Literal(incident_id)),
        (inc, SHK.openedAt, ts(at)),
        (inc, SHK.affects, iri(node)),
        (inc, SHK.matchesPattern, node_iri("pattern", pattern)),
    ]


def status(incident_id: str, value: str) -> Triple:
    """Return the status triple (the caller replaces the previous one)."""
    return (incident_iri(incident_id), SHK.status, Literal(value))


def signal_record(incident_id: str, sig: Signal, *, iri: NodeIri = target_iri) -> list[Triple]:
    """Record a signal that belongs to the incident."""
    inc = incident_iri(incident_id)
    rec = node_iri("signal", incident_id, sig.id)
    return [
        (inc, SHK.hasSignal, rec),
        (rec, RDF.type, SHK.SignalRecord),
        (rec, SHK.series, Literal(sig.series)),
        (rec, SHK.metric, Literal(sig.metric)),
        (rec, SHK.detector, Literal(sig.detector)),
        (rec, SHK.score, dec(sig.score)),
        (rec, SHK.direction, Literal(sig.direction)),
        (rec, SHK.onset, ts(sig.onset)),
        (rec, SHK.detectedAt, ts(sig.detected_at)),
        (rec, SHK.value, dec(sig.value)),
        (rec, SHK.baseline, dec(sig.baseline)),
        (rec, SHK.about, iri(sig.node)),
    ]


def diagnosis(incident_id: str, diag: Diagnosis, *, iri: NodeIri = target_iri) -> list[Triple]:
    """Record a diagnosis and the rule firing (a prov:Activity) that produced it."""
    inc = incident_iri(incident_id)
    d = node_iri("diagnosis", incident_id, diag.id)
    firing = node_iri("firing", incident_id, diag.id)
    out: list[Triple] = [
        (inc, SHK.hasDiagnosis, d),
        (d, RDF.type, SHK.Diagnosis),
        (d, RDF.type, PROV.Entity),
        (d, SHK.diagnosedPattern, node_iri("pattern", diag.pattern)),
        (d, SHK.about, iri(diag.node)),
        (d, SHK.at, ts(diag.at)),
        (d, SHK.onset, ts(diag.onset)),
        (d, PROV.wasGeneratedBy, firing),
        (firing, RDF.type, SHK.RuleFiring),
        (firing, RDF.type, PROV.Activity),
        (firing, SHK.firedRule, node_iri("rule", diag.rule)),
        (firing, PROV.endedAtTime, ts(diag.at)),
    ]
    for fact in diag.facts:
        fid = str(fact.get("id", ""))
        out.append((firing, SHK.usedFact, Literal(json.dumps(dict(fact), sort_keys=True))))
        if fact.get("type") == "signal":
            out.append((firing, PROV.used, node_iri("signal", incident_id, fid)))
    return out


def root_causes(
    incident_id: str, causes: list[RootCause], *, iri: NodeIri = target_iri
) -> list[Triple]:
    """Record the ranked root causes with their paths and evidence."""
    inc = incident_iri(incident_id)
    out: list[Triple] = []
    for rc in causes:
        c = node_iri("rootcause", incident_id, str(rc.rank))
        out += [
            (inc, SHK.hasRootCause, c),
            (c, RDF.type, SHK.RootCauseCandidate),
            (c, SHK.rank, Literal(rc.rank, datatype=XSD.integer)),
            (c, SHK.score, dec(rc.score)),
            (c, SHK.node, iri(rc.node)),
            (c, RDFS.label, Literal(rc.node)),
            (c, SHK.pathText, Literal(" -> ".join(rc.path))),
            (c, SHK.explanation, Literal(rc.explanation)),
            (c, SHK.components, _json(dict(rc.components))),
        ]
        out += [(c, SHK.evidence, Literal(e)) for e in rc.evidence]
    return out


def _candidate(dec_iri: URIRef, incident_id: str, i: int, cand: Candidate) -> list[Triple]:
    c = node_iri("candidate", incident_id, str(i))
    return [
        (dec_iri, SHK.hasCandidate, c),
        (c, RDF.type, SHK.CandidateEvaluation),
        (c, SHK.playbook, node_iri("playbook", cand.playbook)),
        (c, SHK.utility, dec(cand.utility)),
        (c, SHK.pSuccess, dec(cand.p_success)),
        (c, SHK.riskLevel, Literal(cand.risk)),
        (c, SHK.blastRadius, Literal(cand.blast_radius, datatype=XSD.integer)),
        (c, SHK.cost, dec(cand.cost)),
        (c, SHK.applicable, Literal(cand.applicable)),
        (c, SHK.reason, Literal(cand.reason)),
    ]


def decision(decision_value: Decision, at: float, *, iri: NodeIri = target_iri) -> list[Triple]:
    """Record the decision: every candidate with its numbers, the choice and why."""
    iid = decision_value.incident
    inc = incident_iri(iid)
    d = node_iri("decision", iid)
    out: list[Triple] = [
        (inc, SHK.hasDecision, d),
        (d, RDF.type, SHK.Decision),
        (d, RDF.type, PROV.Activity),
        (d, PROV.endedAtTime, ts(at)),
        (d, SHK.why, Literal(decision_value.why)),
        (d, SHK.needsApproval, Literal(decision_value.needs_approval)),
    ]
    if decision_value.chosen is not None:
        out.append((d, SHK.chosePlaybook, node_iri("playbook", decision_value.chosen.playbook)))
        out.append((d, SHK.target, iri(decision_value.chosen.target)))
    for i, cand in enumerate(decision_value.candidates):
        out += _candidate(d, iid, i, cand)
    return out


def step(
    incident_id: str, result: StepResult, phase: str = "repair", *, iri: NodeIri = target_iri
) -> list[Triple]:
    """Record one executed (or dry-run) step, with its rollback point when it has one."""
    inc = incident_iri(incident_id)
    # one execution per step and place: a step on the target's callers runs once per caller
    e = node_iri("execution", incident_id, phase, str(result.step), result.target)
    out: list[Triple] = [
        (inc, SHK.hasExecution, e),
        (e, RDF.type, SHK.ActionExecution),
        (e, RDF.type, PROV.Activity),
        (e, SHK.phase, Literal(phase)),
        (e, SHK.order, Literal(result.step, datatype=XSD.integer)),
        (e, SHK.action, Literal(result.action)),
        (e, SHK.target, iri(result.target)),
        (e, SHK.parameters, _json(result.params)),
        (e, PROV.startedAtTime, ts(result.started)),
        (e, PROV.endedAtTime, ts(result.ended)),
        (e, SHK.succeeded, Literal(result.ok)),
        (e, SHK.dryRun, Literal(result.dry_run)),
        (e, SHK.detail, Literal(result.detail)),
    ]
    if result.rollback_point is not None:
        rp = node_iri("rollbackpoint", incident_id, phase, str(result.step), result.target)
        out += [
            (e, SHK.hasRollbackPoint, rp),
            (rp, RDF.type, SHK.RollbackPoint),
            (rp, SHK.state, _json(result.rollback_point)),
        ]
    return out


def outcome(value: Outcome, at: float, timings: Mapping[str, float]) -> list[Triple]:
    """Record how the incident ended, with its timings in seconds (detect, repair, ...)."""
    inc = incident_iri(value.incident)
    o = node_iri("outcome", value.incident)
    out: list[Triple] = [
        (inc, SHK.hasOutcome, o),
        (inc, SHK.closedAt, ts(at)),
        (o, RDF.type, SHK.Outcome),
        (o, SHK.succeeded, Literal(value.success)),
        (o, SHK.reason, Literal(value.reason)),
    ]
    if value.verified_at is not None:
        out.append((o, SHK.verifiedAt, ts(value.verified_at)))
    for name, seconds in timings.items():
        out.append((o, SHK[name], dec(seconds)))
    return out


def approval(incident_id: str, approver: str, at: float) -> list[Triple]:
    """Record a human approval of the incident's repair (a prov:Activity by a prov:Agent)."""
    inc = incident_iri(incident_id)
    a = node_iri("approval", incident_id)
    who = node_iri("agent", approver)
    return [
        (inc, SHK.hasApproval, a),
        (a, RDF.type, SHK.Approval),
        (a, RDF.type, PROV.Activity),
        (a, PROV.wasAssociatedWith, who),
        (who, RDF.type, PROV.Agent),
        (who, RDFS.label, Literal(approver)),
        (a, PROV.endedAtTime, ts(at)),
    ]


def release_held(
    incident_id: str,
    target: str,
    metric: str,
    before: float,
    threshold: float,
    stable_seconds: float,
    at: float,
    *,
    iri: NodeIri = target_iri,
) -> list[Triple]:
    """Record that a verified temporary repair is held until its trigger is gone."""
    r = node_iri("release", incident_id)
    return [
        (incident_iri(incident_id), SHK.hasRelease, r),
        (r, RDF.type, SHK.Release),
        (r, SHK.target, iri(target)),
        (r, SHK.metric, Literal(metric)),
        (r, SHK.levelBefore, dec(before)),
        (r, SHK.threshold, dec(threshold)),
        (r, SHK.stableSeconds, dec(stable_seconds)),
        (r, SHK.heldSince, ts(at)),
    ]


def release_kept(
    incident_id: str, target: str, metric: str, reason: str, at: float,
    *, iri: NodeIri = target_iri,
) -> list[Triple]:
    """Record that a temporary repair's change stays: its trigger cannot be watched."""
    r = node_iri("release", incident_id)
    return [
        (incident_iri(incident_id), SHK.hasRelease, r),
        (r, RDF.type, SHK.Release),
        (r, SHK.target, iri(target)),
        (r, SHK.metric, Literal(metric)),
        (r, SHK.heldSince, ts(at)),
        (r, SHK.reason, Literal(reason)),
    ]


def release_done(
    incident_id: str, ok: bool, level: float, reason: str, at: float
) -> list[Triple]:
    """Record that a held repair was put back (or that putting it back failed), and why."""
    r = node_iri("release", incident_id)
    return [
        (r, SHK.releasedAt, ts(at)),
        (r, SHK.succeeded, Literal(ok)),
        (r, SHK.levelAtRelease, dec(level)),
        (r, SHK.reason, Literal(reason)),
    ]
