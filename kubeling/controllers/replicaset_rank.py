"""Which pods a ReplicaSet deletes first when it scales down, and the pod facts it reads.

Scaling down must not be arbitrary: Kubernetes removes the pods that cost the
least to lose (not yet scheduled, not yet running, not yet ready, cheap by
their ``pod-deletion-cost``, doubled up on a node, ready or created most
recently, restarting most) and keeps the settled ones. This module is that
ordering (ActivePodsWithRanks with LogarithmicScaleDown and PodDeletionCost,
both on by default since 1.22) as pure functions over pod dicts, so it is
tested table by table without a cluster.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

from kubeling.client.interface import Obj
from kubeling.utils.clock import parse_rfc3339

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


def is_active(pod: Obj) -> bool:
    """Not terminal and not being deleted (FilterActivePods)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def _ready_condition(pod: Obj) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond
    return None


def is_ready(pod: Obj) -> bool:
    cond = _ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def _time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def ready_since(pod: Obj) -> float | None:
    """When a ready pod became ready (None when not ready or not said)."""
    cond = _ready_condition(pod)
    if cond is None or cond.get("status") != "True":
        return None
    return _time(cond.get("lastTransitionTime"))


def is_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least ``min_ready_seconds`` (podutil.IsPodAvailable)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and since + min_ready_seconds < now


def deletion_cost(pod: Obj) -> int:
    """The ``controller.kubernetes.io/pod-deletion-cost`` annotation; 0 when absent or bad."""
    value = (pod["metadata"].get("annotations") or {}).get(DELETION_COST)
    if not value:
        return 0
    if not (value[0] == "-" or value == "0" or "1" <= value[0] <= "9"):
        return 0
    try:
        cost = int(value, 10)
    except ValueError:
        return 0
    return cost if -(2 ** 31) <= cost < 2 ** 31 else 0


def max_restarts(pod: Obj) -> int:
    return max((int(s.get("restartCount") or 0)
                for s in (pod.get("status") or {}).get("containerStatuses") or ()), default=0)


@dataclass(frozen=True)
class _Facts:
    pod: Obj
    node: str
    phase: int
    ready: bool
    cost: int
    rank: int
    ready_at: float | None
    restarts: int
    created: float | None
    uid: str


def _facts(pod: Obj, rank: int) -> _Facts:
    meta = pod["metadata"]
    status = pod.get("status") or {}
    return _Facts(pod=pod, node=(pod.get("spec") or {}).get("nodeName") or "",
                  phase=_PHASE_ORDINAL.get(status.get("phase") or "", 0), ready=is_ready(pod),
                  cost=deletion_cost(pod), rank=rank, ready_at=ready_since(pod),
                  restarts=max_restarts(pod), created=_time(meta.get("creationTimestamp")),
                  uid=meta.get("uid") or "")


def _log_rank(t: float, now: float) -> int:
    nanos = round((now - t) * 1e9)
    return int(math.log2(nanos)) if nanos > 0 else -1


def _newer_first(a: float | None, b: float | None, ua: str, ub: str, now: float) -> bool:
    """``a`` before ``b``: a zero time first, then the later time, compared on a log2 scale
    of their age so that pods of about the same age tie (broken by uid)."""
    if a is None or b is None:
        return a is None
    diff = _log_rank(a, now) - _log_rank(b, now)
    if diff == 0:
        return ua < ub
    return diff < 0


def _before(a: _Facts, b: _Facts, now: float) -> bool:
    """True when ``a`` should be deleted before ``b``."""
    if a.node != b.node and (not a.node or not b.node):
        return not a.node
    if a.phase != b.phase:
        return a.phase < b.phase
    if a.ready != b.ready:
        return not a.ready
    if a.cost != b.cost:
        return a.cost < b.cost
    if a.rank != b.rank:
        return a.rank > b.rank
    if a.ready and b.ready and a.ready_at != b.ready_at:
        return _newer_first(a.ready_at, b.ready_at, a.uid, b.uid, now)
    if a.restarts != b.restarts:
        return a.restarts > b.restarts
    if a.created != b.created:
        return _newer_first(a.created, b.created, a.uid, b.uid, now)
    return False


def colocation_ranks(pods: Iterable[Obj], related: Iterable[Obj]) -> list[int]:
    """For each pod, how many active ``related`` pods share its node (unassigned pods
    share the empty node)."""
    on_node: dict[str, int] = {}
    for pod in related:
        if is_active(pod):
            node = (pod.get("spec") or {}).get("nodeName") or ""
            on_node[node] = on_node.get(node, 0) + 1
    return [on_node.get((p.get("spec") or {}).get("nodeName") or "", 0) for p in pods]


def rank_for_deletion(pods: list[Obj], ranks: list[int], now: float) -> list[Obj]:
    """``pods`` ordered from the first to delete to the last."""
    facts = [_facts(p, r) for p, r in zip(pods, ranks, strict=True)]

    def compare(a: _Facts, b: _Facts) -> int:
        if _before(a, b, now):
            return -1
        if _before(b, a, now):
            return 1
        return 0

    return [f.pod for f in sorted(facts, key=functools.cmp_to_key(compare))]


def pods_to_delete(pods: list[Obj], related: list[Obj], count: int, now: float) -> list[Obj]:
    """The ``count`` active pods to delete, chosen as Kubernetes chooses them.

    ``related`` are the pods of every ReplicaSet with the same controlling owner
    (the Deployment's), whose placement decides which pods are "doubled up".
    """
    if count >= len(pods):
        return list(pods)
    return rank_for_deletion(pods, colocation_ranks(pods, related), now)[:count]
