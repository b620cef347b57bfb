from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import networkx as nx
import pytest
from rdflib import RDF, Literal, URIRef
from rdflib.namespace import XSD

from selfheal_kg.clock import FakeClock
from selfheal_kg.errors import ConfigError, NotFound
from selfheal_kg.kg.namespaces import KNOWLEDGE_GRAPH, SHK, node_iri
from selfheal_kg.kg.store import KnowledgeStore, OxigraphStore, RdflibStore
from selfheal_kg.model import Signal
from selfheal_kg.monitor.alerts import (
    DEFAULT_POLICY,
    AlertManager,
    EscalationPolicy,
    RecordingNotifier,
    WebhookNotifier,
    alert_from_signal,
    fingerprint,
    policy_from_graph,
)
from selfheal_kg.monitor.silences import InhibitRule, Matcher

T0 = 1_700_000_000.0


def sig(
    node: str,
    metric: str = "latency.p95",
    *,
    score: float = 0.9,
    onset: float = T0,
    active: bool = True,
    sid: str | None = None,
) -> Signal:
    return Signal(
        id=sid or f"{node}/{metric}@{onset}",
        series=f"{node}/{metric}",
        node=node,
        metric=metric,
        detector="robust_z",
        score=score,
        direction="up",
        onset=onset,
        detected_at=onset + 1,
        value=2.0,
        baseline=1.0,
        active=active,
    )


def shop() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_edges_from([("frontend", "checkout"), ("checkout", "orders-db"), ("frontend", "ads")])
    return g


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def mgr(clock: FakeClock) -> AlertManager:
    return AlertManager(clock, shop)


# -- fingerprint and dedup ----------------------------------------------------------------


def test_fingerprint_is_stable_and_ignores_non_identity_labels() -> None:
    a = alert_from_signal(sig("checkout", score=0.99), T0)
    b = alert_from_signal(sig("checkout", score=0.5, onset=T0 + 50), T0 + 60)
    assert a.fingerprint == b.fingerprint
    assert a.severity == "critical" and b.severity == "info"
    assert a.fingerprint != alert_from_signal(sig("checkout", "error.ratio"), T0).fingerprint
    assert a.fingerprint == fingerprint(
        {"alertname": "latency.p95", "node": "checkout", "metric": "latency.p95", "severity": "x"}
    )


def test_resent_firing_alert_updates_instead_of_duplicating(
    mgr: AlertManager, clock: FakeClock
) -> None:
    first = mgr.from_signal(sig("checkout", sid="s1", onset=T0))
    clock.advance(5)
    again = mgr.from_signal(sig("checkout", sid="s2", onset=T0 + 4))
    assert again.fingerprint == first.fingerprint
    assert [a.fingerprint for a in mgr.alerts()] == [first.fingerprint]
    stored = mgr.alerts()[0]
    assert stored.signal_ids == ("s1", "s2")
    assert stored.starts_at == T0 and stored.updated_at == T0 + 5


def test_resolve_and_cleared_signal(mgr: AlertManager, clock: FakeClock) -> None:
    a = mgr.from_signal(sig("checkout"))
    clock.advance(10)
    done = mgr.from_signal(sig("checkout", active=False))
    assert done.status == "resolved" and done.ends_at == T0 + 10
    assert mgr.resolve(a.fingerprint, T0 + 20).ends_at == T0 + 10  # resolving twice keeps the end
    with pytest.raises(NotFound, match="no alert"):
        mgr.resolve("nope", T0)
    # a cleared signal that never fired stores nothing
    assert mgr.from_signal(sig("ads", active=False)).status == "resolved"
    assert {x.node for x in mgr.alerts()} == {"checkout"}


# -- grouping and inhibition --------------------------------------------------------------


def test_root_and_transitive_callers_form_one_group_and_callers_are_inhibited(
    mgr: AlertManager,
) -> None:
    db = mgr.from_signal(sig("orders-db", onset=T0 + 3))
    mgr.from_signal(sig("frontend", onset=T0))
    mgr.from_signal(sig("checkout", onset=T0 + 1))
    mgr.from_signal(sig("lonely", onset=T0))
    groups = {g.root: g for g in mgr.groups()}
    assert set(groups) == {"orders-db", "lonely"}
    shop_group = groups["orders-db"]
    assert {a.node for a in shop_group.alerts} == {"frontend", "checkout", "orders-db"}
    inhibited = {a.node: a.inhibited_by for a in shop_group.alerts}
    assert inhibited == {"frontend": db.fingerprint, "checkout": db.fingerprint, "orders-db": None}
    assert groups["lonely"].alerts[0].inhibited_by is None
    # once the root's alert resolves, its callers are no longer inhibited
    mgr.resolve(db.fingerprint, T0 + 9)
    assert all(a.inhibited_by is None for a in mgr.alerts())


def test_caller_of_two_roots_joins_the_earlier_one(mgr: AlertManager) -> None:
    mgr.from_signal(sig("checkout", onset=T0 + 5))
    ads = mgr.from_signal(sig("ads", onset=T0))
    mgr.from_signal(sig("frontend", onset=T0 + 9))
    roots = {a.node: g.root for g in mgr.groups() for a in g.alerts}
    assert roots == {"checkout": "checkout", "ads": "ads", "frontend": "ads"}
    front = next(a for a in mgr.alerts() if a.node == "frontend")
    assert front.inhibited_by == ads.fingerprint


def test_dependency_cycle_forms_one_group(clock: FakeClock) -> None:
    g = nx.DiGraph([("b", "a"), ("a", "b")])
    mgr = AlertManager(clock, lambda: g)
    mgr.from_signal(sig("b"))
    mgr.from_signal(sig("a"))
    [group] = mgr.groups()
    assert group.root == "a" and len(group.alerts) == 2


def test_declarative_inhibit_rule_needs_equal_labels(clock: FakeClock) -> None:
    rule = InhibitRule(
        source=(Matcher("severity", "critical"),),
        target=(Matcher("severity", "critical", "!="),),
        equal=("node",),
    )
    mgr = AlertManager(clock, nx.DiGraph, inhibit_rules=[rule])
    crit = mgr.from_signal(sig("x", "error.ratio", score=1.0))
    mgr.from_signal(sig("x", "latency.p95", score=0.8))
    mgr.from_signal(sig("y", "latency.p95", score=0.8))
    by = {(a.node, a.name): a.inhibited_by for a in mgr.alerts()}
    assert by == {
        ("x", "error.ratio"): None,
        ("x", "latency.p95"): crit.fingerprint,
        ("y", "latency.p95"): None,
    }


# -- silences -------------------------------------------------------------------------------


def test_silence_mutes_matching_alerts_until_expired(mgr: AlertManager, clock: FakeClock) -> None:
    mgr.from_signal(sig("checkout"))
    mgr.from_signal(sig("lonely"))
    sid = mgr.add_silence([Matcher("node", "check.*", "=~")], T0, T0 + 600, "ops", "deploy")
    silenced = {a.node: a.silenced_by for a in mgr.alerts()}
    assert silenced == {"checkout": (sid,), "lonely": ()}
    clock.advance(60)
    expired = mgr.expire(sid)
    assert expired.state(clock.now()) == "expired"
    assert all(not a.silenced_by for a in mgr.alerts())
    with pytest.raises(NotFound):
        mgr.expire("unknown-id")


def test_pending_silence_does_not_mute_yet(mgr: AlertManager, clock: FakeClock) -> None:
    mgr.from_signal(sig("checkout"))
    mgr.add_silence([Matcher("node", "checkout")], T0 + 100, T0 + 200, "ops")
    assert not mgr.alerts()[0].silenced_by
    clock.advance(150)
    assert mgr.alerts()[0].silenced_by


@pytest.mark.parametrize(
    ("matchers", "starts", "ends", "reason"),
    [
        ([], T0, T0 + 10, "at least one matcher"),
        ([Matcher("node", "a")], T0 + 10, T0, "must be after"),
        ([Matcher("node", "a")], T0 - 100, T0 - 50, "in the past"),
        ([Matcher("node", ".*", "=~")], T0, T0 + 10, "mute all"),
    ],
)
def test_bad_silences_are_refused_with_a_reason(
    mgr: AlertManager, matchers: list[Matcher], starts: float, ends: float, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason) as info:
        mgr.add_silence(matchers, starts, ends, "ops", "")
    assert isinstance(info.value, ConfigError)
    assert mgr.silences() == []


def test_matcher_parsing_and_bad_regex() -> None:
    m = Matcher.parse('severity=~"crit.*"')
    assert (m.name, m.op, m.value) == ("severity", "=~", "crit.*")
    assert m.matches({"severity": "critical"}) and not m.matches({"severity": "xcritical"})
    assert Matcher.parse("node!=a").matches({})
    with pytest.raises(ConfigError, match="regex"):
        Matcher("node", "(", "=~")
    with pytest.raises(ConfigError, match="label name"):
        Matcher("bad name", "x")
    with pytest.raises(ConfigError, match="no operator"):
        Matcher.parse("node")


# -- notifications --------------------------------------------------------------------------


def test_group_wait_interval_repeat_and_resolution(mgr: AlertManager, clock: FakeClock) -> None:
    db = mgr.from_signal(sig("orders-db"))
    assert mgr.due(T0 + 1) == []  # within group_wait
    [first] = mgr.due(T0 + 2)
    assert first.status == "firing" and first.root == "orders-db" and not first.repeat
    assert [a.node for a in first.alerts] == ["orders-db"]
    assert mgr.due(T0 + 3) == []
    clock.set(T0 + 5)
    ads = mgr.from_signal(sig("ads", onset=T0 + 5))
    assert mgr.due(T0 + 6) == []  # the new group waits for its own group_wait
    [ads_note] = mgr.due(T0 + 7)
    assert ads_note.root == "ads"
    assert mgr.due(T0 + 32) == []  # nothing changed: no message before repeat_interval
    assert mgr.due(T0 + 62) == []
    repeats = mgr.due(T0 + 3700)
    assert sorted(n.root for n in repeats) == ["ads", "orders-db"]
    assert all(n.repeat for n in repeats)
    clock.set(T0 + 4000)
    mgr.resolve(db.fingerprint, T0 + 4000)
    mgr.resolve(ads.fingerprint, T0 + 4000)
    resolved = mgr.due(T0 + 4000)
    assert sorted((n.root, n.status) for n in resolved) == [
        ("ads", "resolved"),
        ("orders-db", "resolved"),
    ]
    assert mgr.alerts() == []  # resolved alerts are dropped once sent
    assert mgr.due(T0 + 5000) == []


def test_change_in_group_is_sent_at_next_group_interval(
    mgr: AlertManager, clock: FakeClock
) -> None:
    mgr.from_signal(sig("checkout"))
    assert len(mgr.due(T0 + 2)) == 1
    clock.set(T0 + 10)
    mgr.from_signal(sig("frontend", onset=T0 + 10))  # a caller: inhibited, not a change
    assert mgr.due(T0 + 32) == []
    mgr.from_signal(sig("checkout", "error.ratio", onset=T0 + 40))
    assert mgr.due(T0 + 50) == []  # next flush is at T0 + 62
    [note] = mgr.due(T0 + 62)
    assert {a.name for a in note.alerts} == {"latency.p95", "error.ratio"}


def test_muted_alerts_are_not_notified(mgr: AlertManager) -> None:
    mgr.from_signal(sig("checkout"))
    mgr.add_silence([Matcher("node", "checkout")], T0, T0 + 999, "ops")
    assert mgr.due(T0 + 5) == []
    assert len(mgr.alerts()) == 1  # kept and visible


def test_never_notified_resolution_is_dropped_silently(mgr: AlertManager) -> None:
    a = mgr.from_signal(sig("checkout"))
    mgr.resolve(a.fingerprint, T0 + 1)
    assert mgr.due(T0 + 2) == []
    assert mgr.alerts() == []


def test_dispatch_sends_through_a_notifier(mgr: AlertManager) -> None:
    mgr.from_signal(sig("checkout"))
    rec = RecordingNotifier()
    sent = mgr.dispatch(rec, T0 + 2)
    assert rec.sent == sent and len(sent) == 1
    body = sent[0].as_dict()
    assert body["status"] == "firing" and json.dumps(body)


# -- escalation -----------------------------------------------------------------------------


def test_default_escalation_levels_fire_once_each(mgr: AlertManager) -> None:
    mgr.from_signal(sig("checkout"))
    first = mgr.escalations(T0)
    assert [(e.level, e.action) for e in first] == [("auto-heal", "heal"), ("notify", "notify")]
    assert mgr.escalations(T0 + 299) == []
    [page] = mgr.escalations(T0 + 300)
    assert (page.level, page.action, page.root) == ("page", "page", "checkout")
    assert mgr.escalations(T0 + 900) == []


def test_no_page_when_resolved_or_silenced(mgr: AlertManager, clock: FakeClock) -> None:
    a = mgr.from_signal(sig("checkout"))
    mgr.escalations(T0)
    mgr.resolve(a.fingerprint, T0 + 100)
    assert mgr.escalations(T0 + 400) == []
    mgr.from_signal(sig("ads"))
    mgr.add_silence([Matcher("node", "ads")], T0, T0 + 9999, "ops")
    assert mgr.escalations(T0 + 1000) == []


def test_escalation_policy_refuses_bad_levels() -> None:
    with pytest.raises(ConfigError, match=">= 0"):
        EscalationPolicy.of([("page", -1, "page")])
    with pytest.raises(ConfigError, match="unique"):
        EscalationPolicy.of([("a", 0, "x"), ("a", 5, "y")])
    with pytest.raises(ConfigError, match="name and an action"):
        EscalationPolicy.of([("a", 0, "")])


@pytest.fixture(params=["oxigraph", "rdflib"])
def store(request: pytest.FixtureRequest) -> KnowledgeStore:
    return OxigraphStore(None) if request.param == "oxigraph" else RdflibStore()


def _policy(store: KnowledgeStore, levels: list[tuple[str, object, str]]) -> None:
    pol = node_iri("escalation-policy", "default")
    triples: list[tuple[URIRef, URIRef, URIRef | Literal]] = [(pol, RDF.type, SHK.EscalationPolicy)]
    for name, after, action in levels:
        lv = node_iri("escalation-level", "default", name)
        value = Literal(after, datatype=XSD.decimal) if isinstance(after, int) else Literal(after)
        triples += [
            (pol, SHK.hasLevel, lv),
            (lv, RDF.type, SHK.EscalationLevel),
            (lv, SHK.levelName, Literal(name)),
            (lv, SHK.afterSeconds, value),
            (lv, SHK.levelAction, Literal(action)),
        ]
    store.add(KNOWLEDGE_GRAPH, triples)


def test_policy_from_graph_reads_levels_or_defaults(store: KnowledgeStore) -> None:
    assert policy_from_graph(store) == DEFAULT_POLICY
    _policy(store, [("page-oncall", 120, "page"), ("heal", 0, "heal")])
    pol = policy_from_graph(store)
    assert [(lv.name, lv.after_seconds, lv.action) for lv in pol.levels] == [
        ("heal", 0.0, "heal"),
        ("page-oncall", 120.0, "page"),
    ]


def test_policy_from_graph_refuses_a_non_numeric_delay(store: KnowledgeStore) -> None:
    _policy(store, [("page", "soon", "page")])
    with pytest.raises(ConfigError, match=r"'page'.*no number"):
        policy_from_graph(store)


# -- webhook notifier (a real HTTP server on loopback) ---------------------------------------


class _Sink(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, object]]] = []
    status = 200

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def sink() -> Iterator[tuple[str, type[_Sink]]]:
    handler = type("Sink", (_Sink,), {"bodies": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_notifier_posts_json_and_counts_failures(
    mgr: AlertManager, sink: tuple[str, type[_Sink]]
) -> None:
    url, handler = sink
    mgr.from_signal(sig("checkout"))
    [note] = mgr.due(T0 + 2)
    hook = WebhookNotifier(url, timeout=2.0)
    assert hook.send(note)
    assert handler.bodies[0]["groupKey"] == note.group_id
    handler.status = 500
    assert not hook.send(note)
    hook.close()
    assert (hook.delivered, hook.failures) == (1, 1)


def test_webhook_notifier_counts_connection_errors(mgr: AlertManager) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    mgr.from_signal(sig("checkout"))
    [note] = mgr.due(T0 + 2)
    hook = WebhookNotifier(f"http://127.0.0.1:{port}/", timeout=1.0)
    assert not hook.send(note)
    assert hook.failures == 1
    hook.close()
    with pytest.raises(ConfigError, match="not http"):
        WebhookNotifier("file:///etc/passwd")
