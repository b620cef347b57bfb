from __future__ import annotations

from selfheal_kg.rca.graph import TopologySnapshot, is_proxy, proxy_targets


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


def test_merged_repoints_edges_and_drops_self_loops() -> None:
    snap = TopologySnapshot.from_edges([("web", "lb_remote"), ("lb_remote", "api"),
                                        ("api", "db")], kinds={"lb_remote": "x", "db": "database"})
    merged = snap.merged({"lb_remote": "api"})
    assert set(merged.graph.edges) == {("web", "api"), ("api", "db")}
    assert "lb_remote" not in merged.graph and merged.kinds == {"db": "database"}
    assert snap.merged({}) is snap


def test_client_proxy_with_one_callee_stands_for_it() -> None:
    snap = TopologySnapshot.from_edges([("search_client", "search"), ("multi_client", "a"),
                                        ("multi_client", "b")])
    assert proxy_targets(snap) == {"search_client": "search"}
    assert is_proxy("x_remote") and is_proxy("x_client") and not is_proxy("remote_x")


def test_leaf_proxy_maps_by_a_distinguishing_host_word() -> None:
    # "servi" is in every balancer's label and in SimpleNotificationService: it names the
    # naming scheme, so only "searc" / "lista" decide.
    snap = TopologySnapshot.from_edges([
        ("PetSite", "servi-searc.elb.example.com_remote"),
        ("PetSite", "servi-lista.elb.example.com_remote"),
        ("PetSite", "PetSearch_ECS"), ("PetSite", "petlistadoptions_ECS"),
        ("PetSite", "SimpleNotificationService_SNS"),
        ("PetSite", "amazon.com_remote"), ("PetSite", "10.0.0.1_remote"),
    ])
    assert proxy_targets(snap) == {
        "servi-searc.elb.example.com_remote": "PetSearch_ECS",
        "servi-lista.elb.example.com_remote": "petlistadoptions_ECS",
    }


def test_ambiguous_leaf_proxy_is_left_alone() -> None:
    snap = TopologySnapshot.from_edges([("web", "orders.example.com_remote"),
                                        ("web", "orders-api"), ("web", "orders-db")])
    assert proxy_targets(snap) == {}
