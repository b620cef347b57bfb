"""The executors file: the shipped example, every kind of mistake, and real executors."""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from selfheal_kg.act.command import CommandExecutor
from selfheal_kg.act.config_file import ConfigFileExecutor
from selfheal_kg.act.executor import Executor
from selfheal_kg.act.executors_file import load_executors
from selfheal_kg.act.http import AdminApiExecutor, HttpExecutor
from selfheal_kg.act.kubectl import KubectlExecutor
from selfheal_kg.act.process import ProcessSupervisor
from selfheal_kg.act.registry import by_action
from selfheal_kg.act.sql import SqlExecutor
from selfheal_kg.act.systemd import SystemdExecutor
from selfheal_kg.clock import FakeClock
from selfheal_kg.errors import SchemaError

EXAMPLE = Path(__file__).parents[2] / "examples" / "executors.yaml"
SECRETS = {"CDN_TOKEN": "t0k3n", "CATALOG_DB_PASSWORD": "pw"}


def load(path: Path, environ: dict[str, str] | None = None, **kw: Any) -> list[Executor]:
    return load_executors(path, FakeClock(), environ=environ or {}, log_dir=path.parent / "logs",
                          **kw)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "executors.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def close_all(executors: list[Executor]) -> None:
    for ex in executors:
        close = getattr(ex, "close", None)
        if close is not None:
            close()


@pytest.fixture
def example(tmp_path: Path) -> Iterator[dict[type, Any]]:
    executors = load_executors(EXAMPLE, FakeClock(), environ=SECRETS, log_dir=tmp_path)
    yield {type(ex): ex for ex in executors}
    close_all(executors)


# -- the shipped example --------------------------------------------------------------------


def test_example_builds_one_executor_per_section_with_its_actions(
    example: dict[type, Any],
) -> None:
    actions = {kind: set(ex.actions) for kind, ex in example.items()}
    assert actions == {
        ProcessSupervisor: {"restart", "start", "stop"},
        CommandExecutor: {"flush-cache", "set-log-level", "drain-queue"},
        HttpExecutor: {"purge-cdn", "feature-off", "feature-on"},
        AdminApiExecutor: {"lb_weight", "breaker"},
        ConfigFileExecutor: {"config_set", "config_rollback"},
        SqlExecutor: {"sql_explain", "create_index", "drop_index", "sql_setting"},
        SystemdExecutor: {"systemd_restart", "systemd_start", "systemd_stop"},
        KubectlExecutor: {"scale", "rollout_restart", "set_resources"},
    }
    assert len(by_action(example.values())) == 23


def test_example_values_reach_the_executors(example: dict[type, Any]) -> None:
    supervisor = example[ProcessSupervisor]
    assert supervisor.names() == ("checkout", "worker")
    assert supervisor.spec("checkout").cwd == EXAMPLE.parent / "."
    assert supervisor.spec("checkout").health_url == "http://127.0.0.1:8081/"
    assert example[SystemdExecutor].unit("systemd_restart", "payments") == "payments.service"
    kubectl = example[KubectlExecutor]
    assert kubectl.deployment("scale", "recommendations") == ("shop", "recommendations")
    assert kubectl.deployment("scale", "search") == ("shop", "search")


def test_example_is_refused_without_its_secrets(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"environment variable CDN_TOKEN is not set") as err:
        load_executors(EXAMPLE, FakeClock(), environ={}, log_dir=tmp_path)
    assert err.value.file == str(EXAMPLE)
    assert err.value.line is not None
    line = EXAMPLE.read_text().splitlines()[err.value.line - 1]
    assert "${CDN_TOKEN}" in line


# -- real executors from a file -------------------------------------------------------------


def test_command_from_file_runs_a_real_command(tmp_path: Path) -> None:
    script = "import sys; print('|'.join(sys.argv[1:]))"
    path = write(tmp_path, f"""
commands:
  echo-args:
    argv: [{json.dumps(sys.executable)}, -c, {json.dumps(script)}, "{{target}}", "{{n}}"]
    params:
      n: {{kind: int, default: 3, minimum: 1, maximum: 9}}
    timeout: 10
""")
    (executor,) = load(path)
    report = executor.execute("echo-args", "checkout", {"n": 7})
    assert report.ok
    assert "checkout|7" in report.detail
    assert executor.execute("echo-args", "checkout", {}).detail.endswith("checkout|3")


def test_sqlite_path_is_relative_to_the_file(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "orders.sqlite") as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, customer_id INTEGER)")
    conn.close()
    path = write(tmp_path, """
sql:
  databases:
    orders-db: {dialect: sqlite, dsn: orders.sqlite}
  queries:
    by-customer: "SELECT id FROM orders WHERE customer_id = 1"
""")
    (executor,) = load(path)
    try:
        report = executor.execute("sql_explain", "orders-db", {"query": "by-customer"})
        assert report.ok and "SCAN orders" in report.detail
    finally:
        close_all([executor])


def test_config_file_path_is_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "app.json").write_text('{"pool": {"size": 4}}', encoding="utf-8")
    path = write(tmp_path, """
config_files:
  files: {checkout: app.json}
  keep_versions: 2
  allowed_keys: {checkout: [pool.size]}
""")
    (executor,) = load(path)
    assert isinstance(executor, ConfigFileExecutor)
    assert executor.execute("config_set", "checkout", {"pool.size": 8}).ok
    assert json.loads((tmp_path / "app.json").read_text()) == {"pool": {"size": 8}}
    assert executor.versions("checkout") == [1]


class _Sink(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        _Sink.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Sink.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_http_header_secret_is_resolved_from_the_environment(tmp_path: Path, sink: str) -> None:
    path = write(tmp_path, f"""
http:
  notify:
    url: {sink}/hook
    headers: {{Authorization: "Bearer ${{HOOK_TOKEN}}"}}
""")
    (executor,) = load(path, {"HOOK_TOKEN": "s3cret"})
    try:
        assert executor.execute("notify", "checkout", {}).ok
    finally:
        close_all([executor])
    assert _Sink.seen == [("/hook", "Bearer s3cret")]


# -- mistakes: each a SchemaError naming file, line and JSON path ----------------------------

ECHO = f"[{json.dumps(sys.executable)}, -c, pass]"
MISTAKES = {
    "unknown section": (
        "commands:\n  a:\n    argv: [x]\nnonsense: {}\n",
        4, ["$: unknown key 'nonsense'", "accepted:"],
    ),
    "unknown key": (
        "commands:\n  a:\n    argv: [x]\n    argz: [y]\n",
        4, ["$.commands.a: unknown key 'argz'"],
    ),
    "wrong type": (
        "kubectl:\n  deployments: {a: b}\n  max_replicas: ten\n",
        3, ["$.kubectl.max_replicas", "not of type 'integer'"],
    ),
    "missing argv": (
        "processes:\n  - name: shop\n    cwd: /tmp\n",
        2, ["$.processes[0]", "'argv' is a required property"],
    ),
    "bad placeholder": (
        "commands:\n  a:\n    argv: [x, '{nope}']\n",
        2, ["$.commands.a", "{nope} is not a declared parameter"],
    ),
    "spliced placeholder": (
        "commands:\n  a:\n    argv: [x, '--svc={target}']\n",
        2, ["$.commands.a", "a placeholder must be a whole element"],
    ),
    "unset env var": (
        "sql:\n  databases:\n    db:\n      dialect: postgresql\n      dsn: 'host=${PGHOST_X}'\n",
        5, ["$.sql.databases.db.dsn", "environment variable PGHOST_X is not set"],
    ),
    "env ref outside secrets": (
        "commands:\n  a:\n    argv: [x, '${HOME}']\n",
        3, ["$.commands.a.argv[1]", "allowed only in"],
    ),
    "malformed env ref": (
        "sql:\n  databases:\n    db: {dialect: postgresql, dsn: 'host=${1X}'}\n",
        3, ["$.sql.databases.db.dsn", "malformed environment reference"],
    ),
    "duplicate action": (
        f"processes:\n  - name: shop\n    argv: {ECHO}\ncommands:\n  restart:\n    argv: [x]\n",
        5, ["$.commands.restart: action 'restart' is declared twice: by $.processes (which "
            "offers restart, start, stop) and by $.commands.restart"],
    ),
    "duplicate action over sections": (
        "http:\n  scale: {url: 'http://h/x'}\nkubectl:\n  deployments: {a: b}\n",
        3, ["action 'scale' is declared twice: by $.http.scale and by $.kubectl (which offers "
            "rollout_restart, scale, set_resources)"],
    ),
    "yaml syntax error": (
        "commands:\n  a:\n    argv: [x, y\n  b: {}\n",
        4, ["YAML syntax error"],
    ),
    "duplicate yaml key": (
        "commands:\n  a:\n    argv: [x]\n  a:\n    argv: [y]\n",
        4, ["$.commands: key 'a' appears twice"],
    ),
    "non-string key": (
        "config_files:\n  files:\n    on: a.json\n",
        3, ["$.config_files.files", "key 'on' is not read as a string", "quote it"],
    ),
    "bad target name": (
        "admin:\n  'bad target': http://h\n",
        2, ["$.admin: name 'bad target'"],
    ),
    "default out of range": (
        "commands:\n  a:\n    argv: [x]\n    params:\n"
        "      n: {kind: int, maximum: 5, default: 9}\n",
        5, ["$.commands.a.params.n.default", "must be <= 5"],
    ),
    "boolean in a str enum": (
        "commands:\n  a:\n    argv: [x]\n    params:\n      s: {kind: str, enum: [on, off]}\n",
        5, ["$.commands.a.params.s.enum[0]", "must be str", "quote them"],
    ),
    "bad regex": (
        "commands:\n  a:\n    argv: [x]\n    params:\n      s: {kind: str, pattern: '(['}\n",
        5, ["$.commands.a.params.s.pattern", "not a valid regex"],
    ),
    "pattern on a number": (
        "commands:\n  a:\n    argv: [x]\n    params:\n      n: {kind: int, pattern: '[0-9]'}\n",
        5, ["$.commands.a.params.n.pattern", "does not apply to kind int"],
    ),
    "unknown undo endpoint": (
        "http:\n  a:\n    url: http://h/a\n    undo: b\n",
        4, ["$.http.a.undo", "'b' is not an endpoint"],
    ),
    "query that is not a select": (
        "sql:\n  databases: {db: {dialect: sqlite, dsn: x.db}}\n  queries:\n"
        "    wipe: 'DELETE FROM t'\n",
        4, ["$.sql.queries.wipe", "only a single SELECT"],
    ),
    "allowed keys of an unknown target": (
        "config_files:\n  files: {a: a.json}\n  allowed_keys:\n    b: [k]\n",
        4, ["$.config_files.allowed_keys", "'b' has no file"],
    ),
    "duplicate process": (
        f"processes:\n  - name: p\n    argv: {ECHO}\n  - name: p\n    argv: {ECHO}\n",
        4, ["$.processes[1]", "already supervised"],
    ),
    "not finite": (
        "commands:\n  a:\n    argv: [x]\n    params:\n      n: {kind: float, maximum: .nan}\n",
        5, ["$.commands.a.params.n.maximum", "not a finite number"],
    ),
    "top level list": ("- a\n- b\n", 1, ["expected a mapping of sections"]),
    "recursive alias": ("commands: &a\n  x: *a\n", None, ["too deep or too large"]),
}


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_each_mistake_is_a_clear_schema_error(tmp_path: Path, case: str) -> None:
    text, line, fragments = MISTAKES[case]
    path = write(tmp_path, text)
    with pytest.raises(SchemaError) as err:
        load(path)
    message = str(err.value)
    assert err.value.file == str(path)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message
    if line is not None:
        assert err.value.line == line, message


def test_alias_bomb_is_refused_not_expanded(tmp_path: Path) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    path = write(tmp_path, "\n".join(levels) + "\n")
    with pytest.raises(SchemaError, match="too deep or too large"):
        load(path)


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_empty_file_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(SchemaError, match="the file is empty"):
        load(write(tmp_path, text))


def test_missing_file_is_a_schema_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="cannot read"):
        load(tmp_path / "absent.yaml")


def test_header_secret_with_a_newline_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = write(tmp_path, "http:\n  a:\n    url: http://h/a\n    headers: {X-Key: '${K}'}\n")
    with pytest.raises(SchemaError, match="control character") as err:
        load(path, {"K": "abc\nInjected: 1"})
    assert "Injected" not in str(err.value)
    assert err.value.line == 4


def test_docs_show_the_shipped_example_verbatim() -> None:
    docs = (EXAMPLE.parents[1] / "docs" / "executors-file.md").read_text(encoding="utf-8")
    assert f"```yaml\n{EXAMPLE.read_text(encoding='utf-8')}```" in docs
