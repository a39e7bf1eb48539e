"""NodeResourcesFit (filter and LeastAllocated) and BalancedAllocation on hand-built nodes."""

from __future__ import annotations

import pytest

from kubeling.scheduler.framework import Code, CycleState
from kubeling.scheduler.nodeinfo import NodeInfo, PodInfo, pod_requests
from kubeling.scheduler.plugins.noderesources import BalancedAllocation, Fit
from tests.unit.scheduler.util import node, pod


def info(n: dict, *pods: dict) -> NodeInfo:
    ni = NodeInfo(n)
    for p in pods:
        ni.add_pod(PodInfo(p))
    return ni


@pytest.mark.parametrize(("node_kw", "placed", "want", "code"), [
    ({"cpu": "1"}, [], None, None),
    ({"cpu": "1"}, ["600m"], ("Insufficient cpu",), Code.UNSCHEDULABLE),
    ({"cpu": "100m"}, [], ("Insufficient cpu",), Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
    ({"cpu": "1", "pods": 1}, ["600m"], ("Too many pods", "Insufficient cpu"),
     Code.UNSCHEDULABLE),
    ({"cpu": "1", "memory": "100Mi"}, [], ("Insufficient memory",),
     Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
])
def test_fit_filter(node_kw: dict, placed: list[str], want: tuple | None,
                    code: Code | None) -> None:
    ni = info(node(**({"name": "n"} | node_kw)),
              *(pod(f"x{i}", cpu=c) for i, c in enumerate(placed)))
    st = Fit().filter(CycleState(), PodInfo(pod("p", cpu="500m", memory="200Mi")), ni)
    if want is None:
        assert st is None
    else:
        assert st is not None and st.reasons == want and st.code == code


def test_extended_resources() -> None:
    p = pod("p")
    p["spec"]["containers"][0]["resources"] = {"requests": {"example.com/gpu": "2"}}
    fit = Fit()
    assert fit.filter(CycleState(), PodInfo(p), info(node("n"))).reasons == (
        "Insufficient example.com/gpu",)
    assert fit.filter(CycleState(), PodInfo(p),
                      info(node("n", extra={"example.com/gpu": "4"}))) is None
    assert Fit(frozenset({"example.com/gpu"})).filter(
        CycleState(), PodInfo(p), info(node("n"))) is None


def test_requests_init_containers_sidecars_and_overhead() -> None:
    spec = {
        "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}},
                       {"name": "b", "resources": {"requests": {"cpu": "200m"}}}],
        "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1"}}},
                           {"name": "s", "restartPolicy": "Always",
                            "resources": {"requests": {"cpu": "50m"}}}],
        "overhead": {"cpu": "10m"},
    }
    # max(300m + 50m sidecar, 1 init) + 10m overhead
    assert pod_requests(spec).milli_cpu == 1010
    nz = pod_requests({"containers": [{"name": "a"}]}, non_zero=True)
    assert (nz.milli_cpu, nz.memory) == (100, 200 * 1024 * 1024)


def test_least_allocated_prefers_emptier_nodes() -> None:
    p = PodInfo(pod("p", cpu="1", memory="1Gi"))
    empty = info(node("a", cpu="4", memory="4Gi"))
    busy = info(node("b", cpu="4", memory="4Gi"), pod("x", cpu="2", memory="2Gi"))
    fit = Fit()
    # (4-1)/4 -> 75 for both resources; (4-3)/4 -> 25
    assert [fit.score(CycleState(), p, n) for n in (empty, busy)] == [75, 25]
    assert fit.score_all(CycleState(), p, [empty, busy]) == [75, 25]


def test_balanced_allocation() -> None:
    p = PodInfo(pod("p", cpu="1", memory="1Gi"))
    even = info(node("a", cpu="4", memory="4Gi"))
    skewed = info(node("b", cpu="4", memory="4Gi"), pod("x", cpu="2"))
    ba = BalancedAllocation()
    # fractions .25/.25 -> 100; .75/.25 -> std .25 -> 75
    assert [ba.score(CycleState(), p, n) for n in (even, skewed)] == [100, 75]
    assert ba.score_all(CycleState(), p, [even, skewed]) == [100, 75]
    assert ba.pre_score(CycleState(), PodInfo(pod("be")), [even]) is not None  # skipped
