"""NodeUnschedulable: cordoned nodes (``spec.unschedulable``) take no new pods, unless the
pod tolerates the ``node.kubernetes.io/unschedulable:NoSchedule`` taint."""

from __future__ import annotations

from kubeling.scheduler.framework import (
    CycleState,
    Event,
    Handle,
    NodeInfo,
    PodInfo,
    Status,
    unresolvable,
)
from kubeling.scheduler.plugins.helpers import tolerated

NAME = "NodeUnschedulable"
REASON = "node(s) were unschedulable"
TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
_FAIL = unresolvable(REASON)


class NodeUnschedulable:
    name = NAME
    events = Event.NODE_ADD | Event.NODE_TAINT | Event.POD_UPDATE

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if node.unschedulable and not tolerated(pod.tolerations, TAINT):
            return _FAIL
        return None

    def filter_all(self, state: CycleState, pod: PodInfo,
                   nodes: list[NodeInfo]) -> list[tuple[int, Status]]:
        return [(i, st) for i, ni in enumerate(nodes)
                if ni.unschedulable and (st := self.filter(state, pod, ni)) is not None]


def new(handle: Handle) -> NodeUnschedulable:
    return NodeUnschedulable()
