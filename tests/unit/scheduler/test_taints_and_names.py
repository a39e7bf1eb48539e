"""TaintToleration, NodeUnschedulable, NodeName and NodePorts."""

from __future__ import annotations

import pytest

from kubeling.scheduler.framework import Code, CycleState
from kubeling.scheduler.nodeinfo import NodeInfo, PodInfo
from kubeling.scheduler.plugins.nodename import NodeName
from kubeling.scheduler.plugins.nodeports import NodePorts
from kubeling.scheduler.plugins.nodeunschedulable import NodeUnschedulable
from kubeling.scheduler.plugins.tainttoleration import TaintToleration
from tests.unit.scheduler.util import node, pod

CP = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


@pytest.mark.parametrize(("taints", "tolerations", "reason"), [
    ([], [], None),
    ([CP], [], "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"),
    ([{"key": "k", "value": "v", "effect": "NoExecute"}], [],
     "node(s) had untolerated taint {k: v}"),
    ([CP], [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}], None),
    ([{"key": "k", "value": "v", "effect": "NoSchedule"}],
     [{"key": "k", "value": "w", "effect": "NoSchedule"}], "node(s) had untolerated taint {k: v}"),
    ([{"key": "k", "value": "v", "effect": "NoSchedule"}], [{"operator": "Exists"}], None),
    ([{"key": "k", "effect": "PreferNoSchedule"}], [], None),
])
def test_taint_filter(taints: list, tolerations: list, reason: str | None) -> None:
    st = TaintToleration().filter(CycleState(), PodInfo(pod("p", tolerations=tolerations)),
                                  NodeInfo(node("n", taints=taints)))
    if reason is None:
        assert st is None
    else:
        assert st is not None and st.reasons == (reason,)
        assert st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_taint_score_prefers_fewer_untolerated_prefer_no_schedule() -> None:
    soft = {"key": "k", "value": "v", "effect": "PreferNoSchedule"}
    nodes = [NodeInfo(node("a")), NodeInfo(node("b", taints=[soft])),
             NodeInfo(node("c", taints=[soft, {**soft, "key": "k2"}]))]
    tt, state, p = TaintToleration(), CycleState(), PodInfo(pod("p"))
    tt.pre_score(state, p, nodes)
    scores = tt.score_all(state, p, nodes)
    tt.normalize_score(state, p, nodes, scores)
    assert scores == [100, 50, 0]


def test_unschedulable_node() -> None:
    n = NodeInfo(node("n", unschedulable=True))
    st = NodeUnschedulable().filter(CycleState(), PodInfo(pod("p")), n)
    assert st is not None and st.reasons == ("node(s) were unschedulable",)
    tolerant = pod("p", tolerations=[{"key": "node.kubernetes.io/unschedulable",
                                      "operator": "Exists", "effect": "NoSchedule"}])
    assert NodeUnschedulable().filter(CycleState(), PodInfo(tolerant), n) is None


def test_node_name() -> None:
    p = PodInfo(pod("p", node_name="b"))
    assert NodeName().filter(CycleState(), p, NodeInfo(node("b"))) is None
    st = NodeName().filter(CycleState(), p, NodeInfo(node("a")))
    assert st is not None and st.reasons == ("node(s) didn't match the requested node name",)


@pytest.mark.parametrize(("used", "wanted", "conflict"), [
    ({"hostPort": 80}, {"hostPort": 80}, True),
    ({"hostPort": 80}, {"hostPort": 81}, False),
    ({"hostPort": 80, "protocol": "UDP"}, {"hostPort": 80}, False),
    ({"hostPort": 80, "hostIP": "10.0.0.1"}, {"hostPort": 80, "hostIP": "10.0.0.2"}, False),
    ({"hostPort": 80, "hostIP": "10.0.0.1"}, {"hostPort": 80}, True),
    ({"hostPort": 80}, {"hostPort": 80, "hostIP": "10.0.0.2"}, True),
])
def test_node_ports(used: dict, wanted: dict, conflict: bool) -> None:
    ni = NodeInfo(node("n"))
    ni.add_pod(PodInfo(pod("x", ports=[{"containerPort": 1, **used}])))
    st = NodePorts().filter(CycleState(), PodInfo(pod("p", ports=[{"containerPort": 1,
                                                                    **wanted}])), ni)
    assert (st is not None) == conflict
    if conflict:
        assert st is not None and st.reasons == (
            "node(s) didn't have free ports for the requested pod ports",)
