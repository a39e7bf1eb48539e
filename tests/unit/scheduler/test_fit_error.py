"""The FailedScheduling message: reasons counted per node and sorted as strings."""

from __future__ import annotations

from kubeling.scheduler.framework import Diagnosis, fit_error_message, unresolvable, unschedulable
from tests.unit.scheduler.util import cluster, failure, node, pod


def test_counts_sort_as_strings_and_absent_nodes_count() -> None:
    d = Diagnosis(node_to_status={
        **{f"c{i}": unschedulable("Insufficient cpu") for i in range(10)},
        "m": unschedulable("Insufficient cpu", "Insufficient memory"),
        "t": unresolvable("node(s) had untolerated taint {k: }"),
    }, absent_status=unresolvable("node(s) didn't satisfy plugin(s) [NodeAffinity]"))
    assert fit_error_message(15, d) == (
        "0/15 nodes are available: 1 Insufficient memory, "
        "1 node(s) had untolerated taint {k: }, 11 Insufficient cpu, "
        "3 node(s) didn't satisfy plugin(s) [NodeAffinity].")


def test_first_failing_plugin_only_and_the_preemption_words() -> None:
    cp = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    c = cluster([node("cp", cpu="1", taints=[cp]), node("a", cpu="1"), node("b", cpu="1")],
                [pod("x", cpu="800m", node_name="a"), pod("y", cpu="800m", node_name="b")])
    assert failure(c, pod("p", cpu="500m"), preemption=True) == (
        "0/3 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: 0/3 nodes "
        "are available: 1 Preemption is not helpful for scheduling, "
        "2 No preemption victims found for incoming pod.")
    assert failure(c, pod("p", cpu="500m", preemptionPolicy="Never"), preemption=True).endswith(
        "2 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.")


def test_no_nodes() -> None:
    import pytest

    from kubeling.scheduler.nodeinfo import PodInfo
    from kubeling.scheduler.profile import NoNodesAvailable, Profile
    with pytest.raises(NoNodesAvailable, match="no nodes available to schedule pods"):
        Profile(cluster([])).schedule(PodInfo(pod("p")))
