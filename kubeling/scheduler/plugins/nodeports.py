"""NodePorts: a pod asking for host ports fits only where those ports are free.

A port in use on 0.0.0.0 conflicts with the same port and protocol on any
address, and a port wanted on 0.0.0.0 conflicts with it in use on any address.
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
    unschedulable,
)

NAME = "NodePorts"
REASON = "node(s) didn't have free ports for the requested pod ports"
_FAIL = unschedulable(REASON)
ANY = "0.0.0.0"


def conflicts(wanted: list[tuple[str, str, int]], used: dict[tuple[str, str, int], int]) -> bool:
    if not used:
        return False
    for ip, proto, port in wanted:
        if (ip, proto, port) in used:
            return True
        if ip == ANY:
            if any(p == port and pr == proto for (_, pr, p) in used):
                return True
        elif (ANY, proto, port) in used:
            return True
    return False


class NodePorts:
    name = NAME
    events = Event.NODE_ADD | Event.ASSIGNED_POD_DELETE

    def pre_filter(self, state: CycleState,
                   pod: PodInfo) -> tuple[PreFilterResult | None, Status | None]:
        if not pod.host_ports:
            return None, SKIP
        return None, None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if conflicts(pod.host_ports, node.used_ports):
            return _FAIL
        return None


def new(handle: Handle) -> NodePorts:
    return NodePorts()
