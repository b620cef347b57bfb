"""The demo: a real shop breaks and heals itself in front of the user, explained step by step.

``run_show`` starts selfheal (a real uvicorn on a loopback port), the shop (real OS processes
exporting OTLP/HTTP with the OpenTelemetry SDK) and load; injects each fault; prints every
pipeline stage as it happens; ends with a summary table and the SPARQL query that reproduces
it; and stops everything it started, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from api.main import create_app
from api.server import ServerThread
from selfheal_kg.act.config_file import ConfigFileExecutor
from selfheal_kg.act.executor import Executor
from selfheal_kg.act.http import AdminApiExecutor
from selfheal_kg.act.registry import by_action
from selfheal_kg.act.release import Hold
from selfheal_kg.config import Config
from selfheal_kg.demo import faults
from selfheal_kg.demo.database import databases, reset, sql_executor
from selfheal_kg.demo.scaling import ReplicaScaler
from selfheal_kg.demo.shop import GOOD_CONFIG, Shop, free_port
from selfheal_kg.errors import NotFound
from selfheal_kg.incident import Incident
from selfheal_kg.model import Decision, Diagnosis, Outcome, RootCause, Signal, StepResult
from selfheal_kg.monitor.liveness import HealthChange
from selfheal_kg.runtime import Runtime

# fault name → (target service, the root cause RCA must find)
SCENARIOS: dict[str, tuple[str, str]] = {
    # a process dies: restart-service
    "crash": ("inventory", "inventory"),
    # a bad configuration push fails every request of checkout (and so of its callers):
    # config-rollback, approved by the demo's operator
    "bad-config": ("checkout", "checkout"),
    # the leaf two calls below the frontend turns slow (RCA does not find it yet: see
    # docs/demo.md)
    "slow-leaf": ("inventory", "inventory"),
    # the third-party payment provider fails: nothing selfheal may do, escalated to a human
    "provider-outage": ("payment", "payment"),
    # a partner's bot triples checkout's traffic: scale-out-replicas adds instances behind
    # its load balancer; once the load has fallen selfheal retires them (the release)
    "overload": ("checkout", "checkout"),
    # frontend's memory leaks: restart-before-exhaustion restarts it before it runs out (not
    # inventory: a jitter of its database calls can make RCA infer its database as the root)
    "leak": ("frontend", "frontend"),
    # inventory's lookups lose their index and scan a grown table: the database is the root
    # (a hidden one, seen through inventory's database client latency) for add-missing-index;
    # RCA ranks inventory above it yet (see docs/demo.md)
    "dropped-index": ("inventory", "inventory-db"),
    # inventory's database connections leak until its pool is exhausted: requests wait, then
    # time out; resize-connection-pool raises pool_size in its configuration file
    "pool-exhaustion": ("inventory", "inventory"),
    # one of checkout's two instances fails every request: recover-instance trips the
    # breaker on frontend, drains the instance, scales out, restarts it, restores traffic
    "bad-instance": ("checkout", "checkout"),
}
# faults whose right outcome is an escalation to a human, not a repair
ESCALATES = frozenset({"provider-outage"})
# faults a repair works around rather than removes: the show always reverts them
PERSISTS = frozenset({"overload", "pool-exhaustion"})
# how long the show waits for a temporary repair to be put back once the fault is gone
# (the playbooks' 30 s of calm, the 10 s the level is averaged over, draining the instances)
RELEASE_TIMEOUT = 90.0
# every fault of the issue, in an order that never hits one target twice in a row (each
# target's action budget and backoff stay well clear; see docs/demo.md)
DEFAULT_FAULTS = (
    "bad-config", "crash", "provider-outage", "bad-instance", "slow-leaf", "overload",
    "pool-exhaustion", "dropped-index", "leak",
)
APPROVER = "demo-operator"
# the shipped rules diagnose a node at most once per 15 s (their throttle), plus a margin
RULE_THROTTLE = 16.0
CALM_METRICS = frozenset({
    "http.server.error.ratio", "http.server.duration.mean", "http.server.request.rate",
})
# A leak growing 0.5 % of the limit per second is predicted ~2 minutes ahead of the crash:
# inside this horizon, so the restart comes well before it.
TREND_HORIZON = 300.0

SUMMARY_QUERY = """PREFIX shk: <https://w3id.org/selfheal-kg/ontology#>
PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
SELECT ?incident ?status ?root ?playbook ?success ?timeToDetect ?timeToRecover WHERE {
  ?i a shk:Incident ; shk:incidentId ?incident ; shk:status ?status .
  OPTIONAL { ?i shk:hasRootCause ?rc . ?rc shk:rank 1 ; rdfs:label ?root }
  OPTIONAL { ?i shk:hasDecision/shk:chosePlaybook ?playbook }
  OPTIONAL { ?i shk:hasOutcome ?o . ?o shk:succeeded ?success .
             OPTIONAL { ?o shk:timeToDetect ?timeToDetect }
             OPTIONAL { ?o shk:timeToRecover ?timeToRecover } }
} ORDER BY ?incident"""


@dataclass
class FaultRun:
    """What happened to one injected fault."""

    fault: str
    target: str
    expected_root: str
    injected_at: float
    detected_at: float | None = None
    diagnosed_at: float | None = None
    root: str | None = None
    playbook: str | None = None
    healed_at: float | None = None
    rolled_back: bool = False
    outcome: Outcome | None = None
    incident: str | None = None
    # the first telemetry export received after the injection: the earliest moment any
    # detector could know (the floor of "detected after")
    first_export_at: float | None = None
    # a temporary repair (the extra instances) put back once its trigger was gone
    released_at: float | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def as_expected(self) -> bool:
        """Whether RCA found the expected root and the outcome is the expected one."""
        if self.outcome is None or self.root != self.expected_root:
            return False
        if self.fault in ESCALATES:
            return not self.outcome.success and self.playbook is None
        return self.outcome.success

    def after(self, t: float | None) -> str:
        """Seconds since injection, for the table."""
        return "-" if t is None else f"{t - self.injected_at:.1f} s"


class Narrator:
    """Prints pipeline events and fills the current ``FaultRun``."""

    def __init__(
        self, console: Console, approve: Callable[[str], None] | None = None
    ) -> None:
        self.console = console
        self.run: FaultRun | None = None
        self.approve = approve
        self.last_diagnosis = 0.0
        self._lock = threading.Lock()

    def __call__(self, kind: str, payload: dict[str, object]) -> None:
        with self._lock:
            run = self.run
            t0 = run.injected_at if run else time.time()
            stamp = f"[dim]+{time.time() - t0:5.1f}s[/dim]"
            line = self._describe(kind, payload, run)
            if line:
                self.console.print(f"{stamp} {line}")

    def _describe(self, kind: str, p: dict[str, object], run: FaultRun | None) -> str | None:
        handler = getattr(self, f"_on_{kind}", None)
        return None if handler is None else str(handler(p, run or FaultRun("", "", "", 0.0)))

    def _on_signal(self, p: dict[str, object], run: FaultRun) -> str:
        s = p["signal"]
        assert isinstance(s, Signal)
        run.detected_at = run.detected_at or time.time()
        return (
            f"[yellow]signal[/]  {s.node} {s.metric} {s.direction} "
            f"score {s.score:.2f} ({s.detector}: {s.value:.3g} vs {s.baseline:.3g})"
        )

    def _on_health(self, p: dict[str, object], run: FaultRun) -> str:
        h = p["change"]
        assert isinstance(h, HealthChange)
        if h.status == "down":
            run.detected_at = run.detected_at or time.time()
        color = "red" if h.status == "down" else "green"
        return f"[{color}]health[/]  {h.node} is {h.status} ({h.source})"

    def _on_diagnosis(self, p: dict[str, object], run: FaultRun) -> str:
        d = p["diagnosis"]
        assert isinstance(d, Diagnosis)
        run.diagnosed_at = run.diagnosed_at or time.time()
        self.last_diagnosis = time.time()
        return f"[magenta]diagnosis[/] {d.pattern} at {d.node} (rule {d.rule})"

    def _on_rca(self, p: dict[str, object], run: FaultRun) -> str:
        inc, causes = p["incident"], p["causes"]
        assert isinstance(inc, Incident) and isinstance(causes, list)
        run.incident = inc.id
        run.root = causes[0].node if causes else None
        return "[cyan]root cause[/] " + "; ".join(_cause(c) for c in causes[:3])

    def _on_decision(self, p: dict[str, object], run: FaultRun) -> str:
        dec = p["decision"]
        assert isinstance(dec, Decision)
        if dec.chosen:
            run.playbook = dec.chosen.playbook
        blocked = "".join(f"\n      {c.playbook}: {c.reason}" for c in dec.candidates
                          if not c.applicable)
        return f"[blue]decision[/] {dec.why}{blocked}"

    def _on_approval(self, p: dict[str, object], run: FaultRun) -> str:
        inc = p["incident"]
        assert isinstance(inc, Incident)
        # The demo plays the on-call human: it approves the repair proposed for the fault
        # it injected, and leaves anything else waiting (as a careful operator would).
        if self.approve is not None and inc.root == run.target:
            self.approve(inc.id)
            return f"[blue]approval[/] {inc.id} needs a human: {APPROVER} approves it"
        return f"[blue]approval[/] {inc.id} waits for a human (POST /approvals/{inc.id})"

    def _on_step(self, p: dict[str, object], run: FaultRun) -> str:
        st = p["step"]
        assert isinstance(st, StepResult)
        run.rolled_back = run.rolled_back or p.get("phase") == "rollback"
        ok = "[green]ok[/]" if st.ok else "[red]failed[/]"
        return f"[blue]{p.get('phase')}[/] {st.action} {st.target}: {ok} {st.detail}"

    def _on_hold(self, p: dict[str, object], run: FaultRun) -> str:
        h = p.get("hold")
        if h is None:
            return f"[blue]hold[/] {p.get('why')}"
        assert isinstance(h, Hold)
        return (f"[blue]hold[/] the repair of {h.target} is temporary: put back once "
                f"{h.metric} <= {h.at_most:g} x {h.before:.3g} (its level before) "
                f"for {h.stable_seconds:.0f} s")

    def _on_releasing(self, p: dict[str, object], run: FaultRun) -> str:
        return f"[blue]release[/] {p.get('why')}"

    def _on_release(self, p: dict[str, object], run: FaultRun) -> str:
        h = p.get("hold")
        assert isinstance(h, Hold)
        if p.get("ok"):
            if run.incident == h.incident.id or run.target == h.target:
                run.released_at = time.time()
            return f"[green]released[/] {h.target}: the temporary repair is put back"
        return f"[red]release failed[/] {h.target}: {p.get('why')}"

    def _on_outcome(self, p: dict[str, object], run: FaultRun) -> str:
        o = p["outcome"]
        assert isinstance(o, Outcome)
        run.outcome = o
        run.healed_at = o.verified_at
        run.done.set()
        color = "green" if o.success else "red"
        return f"[{color}]outcome[/] {o.reason}"


def _cause(c: object) -> str:
    assert isinstance(c, RootCause)
    return f"#{c.rank} {c.node} ({c.score:.2f}, path {' -> '.join(c.path)})"


def run_show(
    fault_names: Sequence[str],
    *,
    console: Console | None = None,
    workdir: Path | None = None,
    warmup: float = 15.0,
    fault_timeout: float = 90.0,
    export_interval: float = 1.0,
    db_dsn: str | None = None,
    load_pattern: str = "steady",
) -> list[FaultRun]:
    """Run the demo; return one ``FaultRun`` per fault.

    ``db_dsn``: a PostgreSQL conninfo for the inventory's database (its ``stock`` table is
    dropped first, so the show starts from a fresh one); SQLite in ``workdir`` without it.
    ``load_pattern``: the users' load, ``steady`` or ``diurnal`` (a compressed day).
    """
    # a pipe or a CI log has no width of its own: wide enough for the summary table
    console = console or (Console() if sys.stdout.isatty() else Console(width=150))
    unknown = [f for f in fault_names if f not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown fault(s) {unknown}; known: {sorted(SCENARIOS)}")
    work = workdir or Path(tempfile.mkdtemp(prefix="selfheal-demo-"))
    port = free_port()
    shop = Shop(f"http://127.0.0.1:{port}", work / "shop", export_interval=export_interval,
                db_dsn=db_dsn, load_pattern=load_pattern)
    if db_dsn:
        for db in databases(shop).values():
            reset(db)
    config = demo_config(shop, port, tick_seconds=1.0)
    executors = shop_executors(shop)
    runtime = Runtime(config, executors=by_action(executors))
    narrator = Narrator(console, approver(runtime))
    runtime.on_event(narrator)
    server = ServerThread(create_app(runtime), port=port)
    runs: list[FaultRun] = []
    try:
        server.start()
        console.print(f"[bold]selfheal[/] serving OTLP and the API on {server.url}")
        shop.start()
        shop.start_load(20.0)
        console.print(
            f"[bold]shop[/] {len(shop.services())} services up, {load_pattern} load 20 req/s; "
            f"learning the baseline for {warmup:.0f} s"
        )
        time.sleep(warmup)
        for i, name in enumerate(fault_names):
            if i:
                _settle(runtime, narrator, console)
            runs.append(_one_fault(name, shop, narrator, console, fault_timeout, runtime))
        _summary(console, runs, runtime)
    finally:
        # selfheal goes first: a shop shutting down is not an incident to heal
        server.stop()
        shop.stop()
        for ex in executors:
            close = getattr(ex, "close", None)
            if callable(close):
                close()
    return runs


def demo_config(shop: Shop, port: int, tick_seconds: float) -> Config:
    """Return selfheal's configuration for the demo shop."""
    return Config(
        port=port,
        topology_files=(shop.topology_file(),),
        tick_seconds=tick_seconds,
        trend_horizon_seconds=TREND_HORIZON,
    )


def shop_executors(shop: Shop) -> list[Executor]:
    """Return the executors that act on the shop.

    Its process supervisor, its configuration files, its replica sets (scale, drain, restart
    an instance, restore traffic), the admin API of its services' client-side circuit
    breakers, and the SQL executor over its databases (target: the database node, e.g.
    ``inventory-db``).
    """
    keys = {name: tuple(GOOD_CONFIG) for name in shop.services()}
    # the client-side circuit breakers of each single-instance service (a replicated
    # service's address is its balancer's, which has no breakers of its own)
    breakers = {name: shop.url(name) for name in shop.services()
                if name not in shop.replica_sets}
    return [
        shop.supervisor,
        ConfigFileExecutor(shop.config_files(), allowed_keys=keys),
        ReplicaScaler(shop.replica_sets),
        AdminApiExecutor(breakers),
        sql_executor(shop),
    ]


def approver(runtime: Runtime, delay: float = 1.0) -> Callable[[str], None]:
    """Return a function approving an incident's repair as ``APPROVER`` after ``delay`` s.

    The approval event is emitted inside a pipeline tick, which holds the pipeline's lock:
    approving goes through another thread, as a human's click on the API would.
    """

    def approve(incident_id: str) -> None:
        def later() -> None:
            time.sleep(delay)
            # expired or closed meanwhile: nothing to approve
            with contextlib.suppress(NotFound):
                runtime.pipeline.approve(incident_id, APPROVER)

        threading.Thread(target=later, name=f"approve-{incident_id}", daemon=True).start()

    return approve


def _one_fault(
    name: str, shop: Shop, narrator: Narrator, console: Console, timeout: float,
    runtime: Runtime,
) -> FaultRun:
    target, expected = SCENARIOS[name]
    console.rule(f"fault: {name} on {target}")
    run = FaultRun(name, target, expected, injected_at=time.time())
    narrator.run = run
    injected = faults.inject(shop, name, target)
    run.first_export_at = _first_export_after(runtime, run.injected_at, timeout=5.0)
    if not run.done.wait(timeout):
        console.print(f"[red]no outcome within {timeout:.0f} s[/]")
    _clean_up(shop, injected, run)
    if name in PERSISTS:
        console.print(f"[dim]the fault on {target} was reverted (a repair works around it)[/dim]")
    _await_release(runtime, target, console)
    narrator.run = None
    return run


def _await_release(runtime: Runtime, target: str, console: Console) -> None:
    """Wait while a temporary repair of ``target`` is held (selfheal puts it back itself).

    A verified repair's hold is taken before its outcome is sent, so it is pending here.
    """
    releases = runtime.pipeline.repairs.releases
    if not releases.pending(target):
        return
    console.print(f"[dim]waiting for selfheal to put back the temporary repair of {target}[/dim]")
    deadline = time.monotonic() + RELEASE_TIMEOUT
    while releases.pending(target) and time.monotonic() < deadline:
        time.sleep(0.5)
    if releases.pending(target):
        console.print(f"[yellow]{target}'s temporary repair still held after "
                      f"{RELEASE_TIMEOUT:.0f} s; going on[/]")


def _settle(runtime: Runtime, narrator: Narrator, console: Console, timeout: float = 60.0) -> None:
    """Wait until the shop is calm again before the next fault.

    Calm: no open incident, no active signal on what the rules diagnose from (errors,
    latency, request rate: a tail-latency wobble does not count), and the rules' throttle
    window (15 s per node) passed since the last diagnosis — a new fault's symptoms must not
    be taken for the tail of the previous one, nor be swallowed by a throttle it left.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        loud = [s for s in runtime.pipeline.active.values() if s.metric in CALM_METRICS]
        calm = not runtime.book.open_incidents() and not loud
        if calm and time.time() - narrator.last_diagnosis > RULE_THROTTLE:
            return
        time.sleep(0.5)
    console.print(f"[yellow]not calm after {timeout:.0f} s; going on[/]")


def _first_export_after(runtime: Runtime, t: float, timeout: float) -> float | None:
    """Wait for the first OTLP export received after ``t``; return when it came (or None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = max(runtime.series.last_seen().values(), default=0.0)
        if seen > t:
            return seen
        time.sleep(0.02)
    return None


def _clean_up(shop: Shop, injected: faults.Injected, run: FaultRun) -> None:
    """Undo what the repair did not (an escalated fault stays until a human fixes it)."""
    if injected.fault in PERSISTS:
        faults.revert(shop, injected)
        return
    if injected.fault == "crash" and shop.supervisor.is_running(injected.target):
        return
    if injected.fault != "crash" and run.outcome is not None and run.outcome.success:
        return
    faults.revert(shop, injected)


def _verdict(run: FaultRun, ok: bool) -> str:
    if run.fault in ESCALATES and run.as_expected:
        return "[yellow]escalated (as it should)[/]"
    return "[green]healed[/]" if ok else "[red]not healed[/]"


def _summary(console: Console, runs: list[FaultRun], runtime: Runtime) -> None:
    table = Table(title="summary")
    for col in (
        "fault",
        "detected after",
        "root cause",
        "correct?",
        "playbook",
        "healed after",
        "rolled back?",
        "put back after",
        "outcome",
    ):
        table.add_column(col)
    for r in runs:
        ok = r.outcome is not None and r.outcome.success
        table.add_row(
            f"{r.fault} ({r.target})",
            r.after(r.detected_at),
            r.root or "-",
            "yes" if r.root == r.expected_root else "no",
            r.playbook or "-",
            r.after(r.healed_at),
            "yes" if r.rolled_back else "no",
            r.after(r.released_at),
            _verdict(r, ok),
        )
    console.print(table)
    console.print("Reproduce it from the graph (selfheal query, or GET/POST /sparql):")
    console.print(SUMMARY_QUERY, markup=False, highlight=False)
    res = runtime.store.query(SUMMARY_QUERY)
    rows = res.dicts()  # type: ignore[union-attr]
    console.print(f"{len(rows)} incident(s) in the graph")
