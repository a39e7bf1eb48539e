"""Which pods a ReplicaSet deletes first, and the status counts it reports."""

from __future__ import annotations

from typing import Any

import pytest

from kubeling.controllers.replicaset_rank import (
    colocation_ranks,
    deletion_cost,
    is_active,
    is_available,
    pods_to_delete,
    rank_for_deletion,
)
from kubeling.controllers.replicaset_status import (
    compute_status,
    next_available_in,
    status_changed,
)
from kubeling.utils.clock import rfc3339

NOW = 1_700_000_000.0


def pod(name: str, *, node: str = "n1", phase: str = "Running", ready: bool = True,
        ready_age: float | None = 1000.0, age: float | None = 5000.0, restarts: int = 0,
        cost: str | None = None, uid: str = "", labels: dict[str, str] | None = None,
        deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": uid or name,
                            "labels": labels or {"app": "web"}}
    if age is not None:
        meta["creationTimestamp"] = rfc3339(NOW - age)
    if cost is not None:
        meta["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": cost}
    if deleting:
        meta["deletionTimestamp"] = rfc3339(NOW)
    cond: dict[str, Any] = {"type": "Ready", "status": "True" if ready else "False"}
    if ready_age is not None:
        cond["lastTransitionTime"] = rfc3339(NOW - ready_age)
    return {"metadata": meta, "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase, "conditions": [cond],
                       "containerStatuses": [{"name": "c", "restartCount": restarts}]}}


# (why, pods in input order, related pods or None for "same as pods", expected order)
CASES: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]] | None, list[str]]] = [
    ("unassigned before assigned",
     [pod("bound"), pod("unbound", node="", phase="Pending", ready=False)], None,
     ["unbound", "bound"]),
    ("pending before unknown before running",
     [pod("run"), pod("unk", phase="Unknown"), pod("pend", phase="Pending")], None,
     ["pend", "unk", "run"]),
    ("a phase outside the three counts as pending",
     [pod("run"), pod("odd", phase="")], None, ["odd", "run"]),
    ("not ready before ready",
     [pod("ready"), pod("notready", ready=False)], None, ["notready", "ready"]),
    ("lower deletion cost first",
     [pod("cheap", cost="-5"), pod("dear", cost="100"), pod("none")], None,
     ["cheap", "none", "dear"]),
    ("an invalid deletion cost counts as zero",
     [pod("plus", cost="+5", age=100), pod("zeros", cost="007", age=200),
      pod("neg", cost="-1", age=300)], None, ["neg", "plus", "zeros"]),
    ("more replicas on the same node first",
     [pod("alone", node="a"), pod("crowded", node="b")],
     [pod("alone", node="a"), pod("crowded", node="b"), pod("x", node="b"), pod("y", node="b")],
     ["crowded", "alone"]),
    ("inactive related pods do not crowd a node",
     [pod("alone", node="a", age=100), pod("other", node="b", age=9000)],
     [pod("alone", node="a"), pod("other", node="b"), pod("gone", node="a", deleting=True),
      pod("done", node="a", phase="Succeeded")],
     ["alone", "other"]),
    ("ready more recently first",
     [pod("old", ready_age=10_000), pod("new", ready_age=10)], None, ["new", "old"]),
    ("ready times in the same power of two tie, broken by uid",
     [pod("b", ready_age=100, age=9000, uid="u2"), pod("a", ready_age=120, age=10, uid="u1")],
     None, ["a", "b"]),
    ("a ready pod with no ready time first",
     [pod("timed", ready_age=10), pod("untimed", ready_age=None)], None, ["untimed", "timed"]),
    ("more restarts first",
     [pod("calm", restarts=0), pod("flappy", restarts=7)], None, ["flappy", "calm"]),
    ("not ready pods skip ready time and compare restarts",
     [pod("x", ready=False, ready_age=1, restarts=1), pod("y", ready=False, restarts=2)],
     None, ["y", "x"]),
    ("newer creation first",
     [pod("older", age=100_000), pod("newer", age=10)], None, ["newer", "older"]),
    ("no creation time first",
     [pod("dated", age=10), pod("undated", age=None)], None, ["undated", "dated"]),
    ("creation in the same power of two ties, broken by uid",
     [pod("late", age=1200, uid="b"), pod("early", age=1300, uid="a")], None,
     ["early", "late"]),
]


@pytest.mark.parametrize(("why", "pods", "related", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_deletion_order(why: str, pods: list[dict[str, Any]],
                        related: list[dict[str, Any]] | None, expected: list[str]) -> None:
    ranks = colocation_ranks(pods, pods if related is None else related)
    ordered = rank_for_deletion(pods, ranks, NOW)
    assert [p["metadata"]["name"] for p in ordered] == expected


def test_pods_to_delete_takes_the_first_ranked() -> None:
    pods = [pod("a"), pod("b", node="", phase="Pending", ready=False), pod("c", ready=False)]
    chosen = pods_to_delete(pods, pods, 2, NOW)
    assert [p["metadata"]["name"] for p in chosen] == ["b", "c"]


def test_pods_to_delete_all_when_count_covers_them() -> None:
    pods = [pod("a"), pod("b")]
    assert pods_to_delete(pods, [], 5, NOW) == pods


def test_deletion_cost_parsing() -> None:
    assert deletion_cost(pod("p", cost="42")) == 42
    assert deletion_cost(pod("p", cost="-42")) == -42
    assert deletion_cost(pod("p", cost="0")) == 0
    assert deletion_cost(pod("p", cost="2147483648")) == 0
    assert deletion_cost(pod("p", cost="abc")) == 0


def test_active_and_available() -> None:
    assert is_active(pod("p"))
    assert not is_active(pod("p", phase="Failed"))
    assert not is_active(pod("p", deleting=True))
    assert is_available(pod("p", ready_age=5), 0, NOW)
    assert not is_available(pod("p", ready_age=5), 10, NOW)
    assert is_available(pod("p", ready_age=11), 10, NOW)
    assert not is_available(pod("p", ready=False, ready_age=100), 10, NOW)


def rs(replicas: int = 3, *, min_ready: int = 0, generation: int = 2,
       status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "default", "generation": generation},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                     "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}}}},
            "status": status or {}}


def test_status_counts() -> None:
    pods = [pod("a", labels={"app": "web", "tier": "fe", "x": "1"}, ready_age=5),
            pod("b", labels={"app": "web"}, ready_age=100),
            pod("c", labels={"app": "web", "tier": "fe"}, ready=False)]
    status = compute_status(rs(min_ready=10), pods, failure=None, failure_reason="", now=NOW)
    assert status == {"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2,
                      "availableReplicas": 1}
    assert next_available_in(pods, 10, NOW) == pytest.approx(5.0)


def test_zero_counts_are_left_out_and_failure_is_a_condition() -> None:
    status = compute_status(rs(), [], failure='pods "x" is forbidden: quota',
                            failure_reason="FailedCreate", now=NOW)
    assert status == {"replicas": 0, "conditions": [
        {"type": "ReplicaFailure", "status": "True", "lastTransitionTime": rfc3339(NOW),
         "reason": "FailedCreate", "message": 'pods "x" is forbidden: quota'}]}
    owner = rs(status={**status, "observedGeneration": 2})
    again = compute_status(owner, [], failure="another", failure_reason="FailedCreate",
                           now=NOW + 60)
    assert again["conditions"] == status["conditions"]
    assert not status_changed(owner, again)
    cleared = compute_status(owner, [pod("a")], failure=None, failure_reason="", now=NOW)
    assert "conditions" not in cleared
    assert status_changed(owner, cleared)


def test_status_changed_on_unobserved_generation() -> None:
    owner = rs(generation=3, status={"replicas": 0, "observedGeneration": 2})
    assert status_changed(owner, compute_status(owner, [], failure=None, failure_reason="",
                                                now=NOW))
