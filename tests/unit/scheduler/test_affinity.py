"""NodeAffinity, InterPodAffinity and PodTopologySpread through the whole profile."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.scheduler.util import cluster, failure, node, place, pod

ZONE = "topology.kubernetes.io/zone"


def required_node_affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": list(terms)}}}


@pytest.mark.parametrize(("spec", "fits"), [
    ({"nodeSelector": {"disk": "ssd"}}, {"b"}),
    ({"affinity": required_node_affinity(
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd", "ssd"]}]})},
     {"a", "b"}),
    ({"affinity": required_node_affinity(
        {"matchExpressions": [{"key": "disk", "operator": "DoesNotExist"}]})}, {"c"}),
    ({"affinity": required_node_affinity(
        {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]})}, {"b"}),
    ({"affinity": required_node_affinity(
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]})},
     {"c"}),
])
def test_node_affinity_filter(spec: dict, fits: set[str]) -> None:
    nodes = [node("a", labels={"disk": "hdd", "cores": "4"}),
             node("b", labels={"disk": "ssd", "cores": "16"}), node("c")]
    got = {place(cluster(nodes), pod("p", **spec)) for _ in range(12)}
    assert got == fits


def test_node_affinity_failure_message_and_preferred_weights() -> None:
    c = cluster([node("a"), node("b", labels={"disk": "ssd"})])
    assert failure(c, pod("p", nodeSelector={"disk": "nvme"})) == (
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.")
    preferred = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": {"matchExpressions": [
            {"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}
    assert {place(c, pod("p", affinity=preferred)) for _ in range(8)} == {"b"}


def test_daemonset_style_node_name_pin_reports_the_other_nodes() -> None:
    c = cluster([node("a", cpu="1"), node("b"), node("c")])
    spec = {"affinity": required_node_affinity(
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]})}
    assert failure(c, pod("p", cpu="2", **spec)) == (
        "0/3 nodes are available: 1 Insufficient cpu, "
        "2 node(s) didn't satisfy plugin(s) [NodeAffinity].")


def anti(selector: dict[str, str], key: str = "kubernetes.io/hostname") -> dict[str, Any]:
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": selector}, "topologyKey": key}]}}


def aff(selector: dict[str, str], key: str = "kubernetes.io/hostname") -> dict[str, Any]:
    return {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": selector}, "topologyKey": key}]}}


def test_pod_anti_affinity_spreads_and_then_fails() -> None:
    c = cluster([node("a"), node("b")])
    from kubeling.scheduler.nodeinfo import PodInfo
    from kubeling.scheduler.profile import Profile
    prof = Profile(c)
    placed = []
    for i in range(2):
        p = PodInfo(pod(f"w{i}", labels={"app": "web"}, affinity=anti({"app": "web"})))
        n = prof.schedule(p).node
        c.assume_pod(p, n)
        placed.append(n)
    assert sorted(placed) == ["a", "b"]
    assert failure(c, pod("w3", labels={"app": "web"}, affinity=anti({"app": "web"})),
                   preemption=True) == (
        "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules. "
        "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.")
    # A pod without terms is kept away by the placed pods' anti-affinity.
    assert failure(c, pod("plain", labels={"app": "web"})).startswith(
        "0/2 nodes are available: 2 node(s) didn't satisfy existing pods anti-affinity rules.")
    assert place(c, pod("other", labels={"app": "db"})) in {"a", "b"}


def test_pod_affinity_by_zone_and_first_pod_of_a_group() -> None:
    nodes = [node("a", labels={ZONE: "z1"}), node("b", labels={ZONE: "z2"}),
             node("c", labels={ZONE: "z2"})]
    c = cluster(nodes, [pod("db", labels={"app": "db"}, node_name="b")])
    assert {place(c, pod("p", affinity=aff({"app": "db"}, ZONE))) for _ in range(10)} <= {
        "b", "c"}
    # No pod matches, and the pod does not match its own term: nowhere.
    assert failure(c, pod("q", affinity=aff({"app": "cache"}, ZONE))).startswith(
        "0/3 nodes are available: 3 node(s) didn't match pod affinity rules.")
    # No pod matches but the pod matches its own term: it may start the group.
    assert place(c, pod("r", labels={"app": "cache"}, affinity=aff({"app": "cache"}, ZONE)))


def test_preferred_pod_affinity_scores() -> None:
    nodes = [node("a", labels={ZONE: "z1"}), node("b", labels={ZONE: "z2"})]
    c = cluster(nodes, [pod("db", labels={"app": "db"}, node_name="b")])
    preferred = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}},
                                            "topologyKey": ZONE}}]}}
    assert {place(c, pod("p", affinity=preferred)) for _ in range(8)} == {"b"}
    away = {"podAntiAffinity": preferred["podAffinity"]}
    assert {place(c, pod("p", affinity=away)) for _ in range(8)} == {"a"}


def spread(max_skew: int, key: str, when: str = "DoNotSchedule", **kw: Any) -> list[dict]:
    return [{"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
             "labelSelector": {"matchLabels": {"app": "web"}}, **kw}]


def test_topology_spread_filter() -> None:
    nodes = [node("a", labels={ZONE: "z1"}), node("b", labels={ZONE: "z2"}), node("nolabel")]
    placed = [pod("x1", labels={"app": "web"}, node_name="a"),
              pod("x2", labels={"app": "web"}, node_name="a")]
    c = cluster(nodes, placed)
    p = pod("p", labels={"app": "web"}, topologySpreadConstraints=spread(1, ZONE))
    assert {place(c, p) for _ in range(8)} == {"b"}
    c.add_pod(pod("x3", labels={"app": "web"}, node_name="b"))
    # minDomains above the number of domains: the global minimum counts as 0.
    p2 = pod("p2", labels={"app": "web"},
             topologySpreadConstraints=spread(1, ZONE, minDomains=3))
    assert failure(c, p2, preemption=True) == (
        "0/3 nodes are available: 1 node(s) didn't match pod topology spread constraints "
        "(missing required label), 2 node(s) didn't match pod topology spread constraints. "
        "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
        "2 No preemption victims found for incoming pod.")
    assert place(c, pod("p3", labels={"app": "web"},
                        topologySpreadConstraints=spread(1, ZONE))) == "b"


def test_topology_spread_score_prefers_emptier_domain() -> None:
    nodes = [node("a", labels={ZONE: "z1"}), node("b", labels={ZONE: "z2"})]
    c = cluster(nodes, [pod("x1", labels={"app": "web"}, node_name="a")])
    p = pod("p", labels={"app": "web"},
            topologySpreadConstraints=spread(1, ZONE, when="ScheduleAnyway"))
    assert {place(c, p) for _ in range(8)} == {"b"}
