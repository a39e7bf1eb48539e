"""A DaemonSet's rolling update, decided from the pods on each node.

With ``maxSurge`` 0 an old pod is deleted first and its replacement comes once
it is gone: unavailable old pods go at once, available ones only while fewer
than ``maxUnavailable`` nodes lack an available pod. With ``maxSurge`` > 0 the
new pod is created beside the old one (on at most ``maxSurge`` nodes at a time,
any number where the old pod is unavailable anyway) and the old pod is deleted
once the new one is available — Kubernetes' two rolling-update paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubeling.controllers import daemonset_util as du

Obj = dict[str, Any]


@dataclass
class NodePods:
    """An eligible node and its live daemon pods (at most one old and one new)."""

    node: str
    pods: list[Obj]
    terminating: bool = False


@dataclass
class Plan:
    delete: list[Obj] = field(default_factory=list)
    create: list[str] = field(default_factory=list)
    recheck_in: float | None = None


def _split(np: NodePods, hash_: str) -> tuple[Obj | None, Obj | None, bool]:
    new = [p for p in np.pods if (p["metadata"].get("labels") or {}).get(du.REVISION_HASH)
           == hash_]
    old = [p for p in np.pods if p not in new]
    if len(new) > 1 or len(old) > 1:
        return None, None, False
    return (new[0] if new else None), (old[0] if old else None), True


def plan_rollout(nodes: list[NodePods], hash_: str, max_surge: int, max_unavailable: int,
                 min_ready: int, now: float) -> Plan:
    plan = Plan()

    def available(pod: Obj) -> bool:
        left = du.available_in(pod, min_ready, now)
        if left is not None and left > 0:
            plan.recheck_in = min(plan.recheck_in or left, left)
        return left == 0

    if max_surge == 0:
        unavailable = 0
        replace_now: list[Obj] = []
        candidates: list[Obj] = []
        for np in sorted(nodes, key=lambda n: n.node):
            new, old, ok = _split(np, hash_)
            if not ok or np.terminating:
                unavailable += 1
                continue
            if old is None:
                if new is None or not available(new):
                    unavailable += 1
                continue
            if new is not None:
                continue
            if not available(old):
                replace_now.append(old)
            else:
                candidates.append(old)
        room = max(0, max_unavailable - unavailable - len(replace_now))
        plan.delete = replace_now + candidates[:room]
        return plan

    surging = 0
    allowed: list[str] = []
    candidate_nodes: list[str] = []
    for np in sorted(nodes, key=lambda n: n.node):
        new, old, ok = _split(np, hash_)
        if not ok or old is None:
            continue
        if new is None:
            if not available(old):
                allowed.append(np.node)
            else:
                candidate_nodes.append(np.node)
            continue
        if available(new):
            plan.delete.append(old)
        else:
            surging += 1
    room = max(0, max_surge - surging)
    plan.create = allowed + candidate_nodes[:room]
    return plan
