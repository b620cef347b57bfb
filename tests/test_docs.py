"""The reference docs stay true to the code: OpenAPI file, CLI, routes, settings, links."""

from __future__ import annotations

import argparse
import importlib.util
import re
from dataclasses import fields
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.routing import APIRoute

from api.deps import require_token
from api.main import ROUTERS
from selfheal_kg.cli.main import COMMANDS, build_parser
from selfheal_kg.config import Config

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def _generator() -> ModuleType:
    path = ROOT / "scripts" / "gen_openapi.py"
    spec = importlib.util.spec_from_file_location("gen_openapi", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """Return the text under ``heading`` up to the next heading of the same level."""
    level = heading.split(" ", 1)[0]
    start = text.index(heading + "\n")
    rest = text[start + len(heading) + 1 :]
    nxt = re.search(rf"^{level} ", rest, re.MULTILINE)
    return rest if nxt is None else rest[: nxt.start()]


def _routes() -> list[tuple[str, str, bool]]:
    """Return (method, path, needs token) for every route of every router."""
    out = []
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            guarded = any(d.dependency is require_token for d in route.dependencies)
            out += [(m, route.path, guarded) for m in sorted(route.methods or ())]
    return out


def test_openapi_file_is_what_the_app_describes() -> None:
    gen = _generator()
    assert _read("openapi.json") == gen.render(), (
        "docs/openapi.json is out of date: run .venv/bin/python scripts/gen_openapi.py "
        "and update docs/api.md for any new or changed endpoint"
    )


def test_generator_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    gen = _generator()
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n", encoding="utf-8")
    assert gen.main(["--check", "--output", str(stale)]) == 1
    assert gen.main(["--output", str(stale)]) == 0
    assert gen.main(["--check", "--output", str(stale)]) == 0


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_and_flag_is_documented(name: str) -> None:
    text = _read("cli.md")
    section = _section(text, f"## `selfheal {name}`")
    sub = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    parser: argparse.ArgumentParser = sub.choices[name]
    for action in parser._actions:
        for flag in action.option_strings:
            if flag not in {"-h", "--help"}:
                assert f"`{flag}" in section, f"docs/cli.md: selfheal {name} lacks {flag}"


def test_every_route_is_documented_with_its_auth() -> None:
    text = _read("api.md")
    headings = {line for line in text.splitlines() if line.startswith("### ")}
    for method, path, guarded in _routes():
        mark = " — token" if guarded else ""
        assert f"### `{method} {path}`{mark}" in headings, (
            f"docs/api.md needs the heading: ### `{method} {path}`{mark}"
        )


def test_api_doc_documents_no_route_that_does_not_exist() -> None:
    routes = {(m, p) for m, p, _ in _routes()}
    for line in _read("api.md").splitlines():
        m = re.match(r"^### `([A-Z]+) (\S+)`", line)
        if m:
            assert (m.group(1), m.group(2)) in routes, f"docs/api.md: no such route: {line}"


def test_every_setting_is_documented() -> None:
    text = _read("configuration.md")
    for f in fields(Config):
        assert f"`{f.name}`" in text, f"docs/configuration.md lacks {f.name}"
        assert f"`SELFHEAL_{f.name.upper()}`" in text, f"lacks SELFHEAL_{f.name.upper()}"


def _links() -> list[tuple[Path, str]]:
    out = []
    for doc in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        text = FENCE.sub("", doc.read_text(encoding="utf-8"))
        out += [(doc, target) for target in LINK.findall(text)]
    return out


def test_relative_links_point_to_existing_files() -> None:
    broken = []
    for doc, target in _links():
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http(s), mailto and in-page anchors
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not broken, "broken relative links:\n" + "\n".join(broken)


def test_link_check_sees_the_readme_links() -> None:
    # guards the checker itself: a regex that matched nothing would pass every doc
    targets = {t for d, t in _links() if d.name == "README.md"}
    assert "docs/api.md" in targets and "docs/cli.md" in targets
