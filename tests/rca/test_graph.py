from __future__ import annotations

from selfheal_kg.rca.graph import TopologySnapshot


def test_snapshot_builds_csr_and_descendants() -> None:
    snap = TopologySnapshot.from_edges([("a", "b"), ("b", "c"), ("x", "c"), ("a", "a")],
                                       kinds={"c": "database"}, version=3)
    assert snap.version == 3 and snap.kinds == {"c": "database"}
    assert snap.csr.shape == (4, 4) and snap.csr.nnz == 3  # self-loop dropped
    assert snap.descendants("a") == {"a", "b", "c"}
    assert snap.descendants("unknown") == {"unknown"}
    callers = {snap.names[i] for i in snap.callers(snap.index["c"]).tolist()}
    assert callers == {"b", "x"}


def test_with_nodes_adds_only_missing_nodes_and_keeps_original() -> None:
    snap = TopologySnapshot.from_edges([("a", "b")])
    assert snap.with_nodes(["a"]) is snap
    bigger = snap.with_nodes(["z"])
    assert "z" in bigger.graph and "z" not in snap.graph
