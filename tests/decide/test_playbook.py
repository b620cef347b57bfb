"""Playbook files: schema check, typed values, triples."""

from __future__ import annotations

from pathlib import Path

import pytest
from rdflib import Literal

from selfheal_kg.decide.playbook import (
    Playbook,
    load_playbook,
    load_playbooks,
    playbook_iri,
    playbook_triples,
)
from selfheal_kg.errors import SchemaError
from selfheal_kg.kg.namespaces import SHK
from selfheal_kg.paths import shipped

MINIMAL = """\
id: demo
name: Demo
handles: [ServiceDown]
target_types: [Service]
risk: low
cost: 1
requires_approval: false
steps:
  - action: restart
success:
  - metric: health
    condition: health == up
    deadline_seconds: 30
"""


def _write(tmp_path: Path, text: str, name: str = "pb.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_restart_playbook() -> None:
    pb = load_playbook(shipped("playbooks") / "restart-service.yaml")
    assert pb.id == "restart-service"
    assert pb.handles == ("ServiceDown",)
    assert [s.action for s in pb.steps] == ["restart"]
    [crit] = pb.success
    assert (crit.metric, crit.condition, crit.deadline_seconds) == ("health", "health == up", 30)
    assert pb.risk == "low"
    assert pb.requires_approval is False


def test_all_shipped_playbooks_load(shipped_playbook_ids: list[str]) -> None:
    pbs = load_playbooks(shipped("playbooks"))
    assert sorted(pbs) == shipped_playbook_ids
    assert pbs["config-rollback"].requires_approval is True
    assert pbs["scale-out"].steps[0].action == "scale"
    assert all(pb.handles for pb in pbs.values())


def test_defaults_and_frozen(tmp_path: Path) -> None:
    pb = load_playbook(_write(tmp_path, MINIMAL))
    assert isinstance(pb, Playbook)
    assert pb.steps[0].timeout_seconds == 30
    assert pb.steps[0].retries == 0
    assert pb.rollback == ()
    with pytest.raises(AttributeError):
        pb.id = "other"  # type: ignore[misc]


def test_missing_field_names_file_id_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL.replace("risk: low\n", ""))
    with pytest.raises(SchemaError) as info:
        load_playbook(path)
    err = info.value
    assert err.file == str(path)
    assert err.item == "demo"
    assert "'risk' is a required property" in err.reason


def test_json_path_of_nested_error(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL.replace("action: restart", "action: Restart Now"))
    with pytest.raises(SchemaError, match=r"\$\.steps\[0\]\.action"):
        load_playbook(path)


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "id: x\nname: [unclosed\nrisk: low\n")
    with pytest.raises(SchemaError) as info:
        load_playbook(path)
    assert info.value.line is not None
    assert info.value.line >= 2
    assert "YAML syntax error" in info.value.reason


def test_step_params_checked_against_parameter_schema(tmp_path: Path) -> None:
    text = (
        MINIMAL.replace(
            "  - action: restart\n", "  - action: restart\n    params: {signal: KILL}\n"
        )
        + "parameters:\n  type: object\n  additionalProperties: false\n  properties: {}\n"
    )
    with pytest.raises(SchemaError, match=r"\$\.steps\[0\]\.params"):
        load_playbook(_write(tmp_path, text))


def test_duplicate_ids_refused(tmp_path: Path) -> None:
    _write(tmp_path, MINIMAL, "a.yaml")
    _write(tmp_path, MINIMAL, "b.yaml")
    with pytest.raises(SchemaError, match="duplicate playbook id") as info:
        load_playbooks(tmp_path)
    assert info.value.item == "demo"


def test_not_a_mapping_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="is not of type 'object'"):
        load_playbook(_write(tmp_path, "- just\n- a list\n"))


def test_triples_describe_the_playbook(tmp_path: Path) -> None:
    pb = load_playbook(_write(tmp_path, MINIMAL))
    triples = playbook_triples(pb)
    s = playbook_iri("demo")
    assert (s, SHK.playbookId, Literal("demo")) in triples
    assert (s, SHK.requiresApproval, Literal(False)) in triples
    assert sum(1 for t in triples if t[1] == SHK.hasStep) == 1
    params = [o for _, p, o in triples if p == SHK.parameters]
    assert params == [Literal("{}")]


RELEASE = MINIMAL + """\
release:
  metric: http.server.request.rate
  at_most: 1.25
  stable_seconds: 30
"""


def test_a_release_condition_is_typed_and_described_in_the_graph(tmp_path: Path) -> None:
    pb = load_playbook(_write(tmp_path, RELEASE))
    assert pb.release is not None
    assert (pb.release.metric, pb.release.at_most, pb.release.stable_seconds) == (
        "http.server.request.rate", 1.25, 30.0)
    triples = playbook_triples(pb)
    (cond,) = [o for s, p, o in triples if s == playbook_iri("demo") and p == SHK.releaseWhen]
    values = {p: o for s, p, o in triples if s == cond}
    assert values[SHK.metric] == Literal("http.server.request.rate")
    assert float(values[SHK.atMost]) == 1.25 and float(values[SHK.stableSeconds]) == 30.0
    assert load_playbook(_write(tmp_path, MINIMAL, "plain.yaml")).release is None


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ("at_most: 1.25", "$.release: 'at_most' is a required property"),
        ("at_most: 0", "$.release.at_most: 0 is less than or equal to the minimum of 0"),
        ("stable_seconds: 30", "$.release: 'stable_seconds' is a required property"),
    ],
)
def test_a_bad_release_condition_is_refused_with_its_path(
    tmp_path: Path, change: str, where: str
) -> None:
    text = RELEASE
    if change.startswith("at_most: 0"):
        text = text.replace("at_most: 1.25", change)
    else:
        text = text.replace(f"  {change}\n", "")
    with pytest.raises(SchemaError, match=where.replace("$", r"\$").replace(".", r"\.")):
        load_playbook(_write(tmp_path, text))


def test_a_release_undoes_only_actions_of_the_playbooks_steps(tmp_path: Path) -> None:
    pb = load_playbook(_write(tmp_path, RELEASE + "  undo: [restart]\n"))
    assert pb.release is not None and pb.release.undo == ("restart",)
    assert (
        next(o for s, p, o in playbook_triples(pb) if p == SHK.undoes) == Literal("restart"))
    bad = _write(tmp_path, RELEASE + "  undo: [scale_out]\n", "bad.yaml")
    with pytest.raises(SchemaError, match=r"release\.undo\[0\]: 'scale_out' is not an action"):
        load_playbook(bad)
