"""NodeName: a pod that names its node (``spec.nodeName`` requested) fits only there.

The scheduler only sees pods without a node, so this matters for pods whose
name was set through a nominated or requested placement; it keeps Kubernetes'
wording all the same.
"""

from __future__ import annotations

from kubeling.scheduler.framework import (
    SKIP,
    CycleState,
    Event,
    Handle,
    NodeInfo,
    PodInfo,
    PreFilterResult,
    Status,
    unresolvable,
)

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"
_FAIL = unresolvable(REASON)


class NodeName:
    name = NAME
    events = Event.NODE_ADD

    def pre_filter(self, state: CycleState,
                   pod: PodInfo) -> tuple[PreFilterResult | None, Status | None]:
        return None, (None if pod.node_name else SKIP)

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if pod.node_name and pod.node_name != node.name:
            return _FAIL
        return None


def new(handle: Handle) -> NodeName:
    return NodeName()
