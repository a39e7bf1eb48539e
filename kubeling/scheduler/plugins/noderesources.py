"""NodeResourcesFit and NodeResourcesBalancedAllocation.

Fit filters out nodes without room for the pod's requests (cpu, memory,
ephemeral storage, the pod count and extended resources) and scores the rest
by LeastAllocated: the more cpu and memory left free after placing the pod,
the better, counting containers without requests at 100m / 200Mi as Kubernetes
does for scoring. BalancedAllocation prefers nodes whose cpu and memory would
be used in equal fractions (one minus their standard deviation).
"""

from __future__ import annotations

import math

from kubeling.scheduler.framework import (
    MAX_NODE_SCORE,
    SKIP,
    Code,
    CycleState,
    Event,
    Handle,
    NodeInfo,
    PodInfo,
    PreFilterResult,
    Status,
)
from kubeling.scheduler.nodeinfo import is_extended_resource

FIT = "NodeResourcesFit"
BALANCED = "NodeResourcesBalancedAllocation"
TOO_MANY_PODS = "Too many pods"


def insufficient(pod: PodInfo, node: NodeInfo,
                 ignored: frozenset[str] = frozenset()) -> list[tuple[str, bool]]:
    """(reason, unresolvable) for each resource the node cannot give the pod now;
    unresolvable when the pod asks for more than the node has at all."""
    out: list[tuple[str, bool]] = []
    if len(node.pods) + 1 > node.allowed_pods:
        out.append((TOO_MANY_PODS, False))
    req = pod.requests
    cpu, mem, eph = req.milli_cpu, req.memory, req.ephemeral_storage
    if not (cpu or mem or eph or req.scalar):
        return out
    alloc, used = node.allocatable, node.requested
    if cpu > 0 and cpu > alloc.milli_cpu - used.milli_cpu:
        out.append(("Insufficient cpu", cpu > alloc.milli_cpu))
    if mem > 0 and mem > alloc.memory - used.memory:
        out.append(("Insufficient memory", mem > alloc.memory))
    if eph > 0 and eph > alloc.ephemeral_storage - used.ephemeral_storage:
        out.append(("Insufficient ephemeral-storage", eph > alloc.ephemeral_storage))
    for name, q in req.scalar.items():
        if q == 0 or (name in ignored and is_extended_resource(name)):
            continue
        have = alloc.scalar.get(name, 0)
        if q > have - used.scalar.get(name, 0):
            out.append((f"Insufficient {name}", q > have))
    return out


class Fit:
    name = FIT
    events = Event.NODE_ADD | Event.NODE_ALLOCATABLE | Event.ASSIGNED_POD_DELETE

    def __init__(self, ignored_resources: frozenset[str] = frozenset()) -> None:
        self.ignored = ignored_resources

    def pre_filter(self, state: CycleState,
                   pod: PodInfo) -> tuple[PreFilterResult | None, Status | None]:
        return None, None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        # Fast path: room for everything the pod asks (the common case).
        req, alloc, used = pod.requests, node.allocatable, node.requested
        if (len(node.pods) < node.allowed_pods
                and req.milli_cpu <= alloc.milli_cpu - used.milli_cpu
                and req.memory <= alloc.memory - used.memory
                and req.ephemeral_storage <= alloc.ephemeral_storage - used.ephemeral_storage
                and not req.scalar):
            return None
        found = insufficient(pod, node, self.ignored)
        if not found:
            return None
        code = (Code.UNSCHEDULABLE_AND_UNRESOLVABLE if any(u for _, u in found)
                else Code.UNSCHEDULABLE)
        return Status(code, *(r for r, _ in found))

    def filter_all(self, state: CycleState, pod: PodInfo,
                   nodes: list[NodeInfo]) -> list[tuple[int, Status]]:
        req = pod.requests
        if req.scalar:
            return [(i, st) for i, ni in enumerate(nodes)
                    if (st := self.filter(state, pod, ni)) is not None]
        c, m, e = req.milli_cpu, req.memory, req.ephemeral_storage
        return [(i, st) for i, ni in enumerate(nodes)
                if not (len(ni.pods) < ni.allowed_pods
                        and c <= ni.allocatable.milli_cpu - ni.requested.milli_cpu
                        and m <= ni.allocatable.memory - ni.requested.memory
                        and e <= ni.allocatable.ephemeral_storage
                        - ni.requested.ephemeral_storage)
                and (st := self.filter(state, pod, ni)) is not None]

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        """LeastAllocated over cpu and memory (weight 1 each)."""
        total = weights = 0
        cap = node.allocatable.milli_cpu
        if cap:
            req = node.non_zero_cpu + pod.non_zero_cpu
            total += (cap - req) * MAX_NODE_SCORE // cap if req <= cap else 0
            weights += 1
        cap = node.allocatable.memory
        if cap:
            req = node.non_zero_memory + pod.non_zero_memory
            total += (cap - req) * MAX_NODE_SCORE // cap if req <= cap else 0
            weights += 1
        return total // weights if weights else 0

    def score_all(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        pc, pm = pod.non_zero_cpu, pod.non_zero_memory
        out = []
        for ni in nodes:
            a = ni.allocatable
            ccap, mcap = a.milli_cpu, a.memory
            if ccap and mcap:
                c, m = ni.non_zero_cpu + pc, ni.non_zero_memory + pm
                out.append(((ccap - c) * 100 // ccap if c <= ccap else 0)
                           + ((mcap - m) * 100 // mcap if m <= mcap else 0) >> 1)
            else:
                out.append(self.score(state, pod, ni))
        return out

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                        scores: list[int]) -> None:
        return None


def balanced_score(fractions: list[float]) -> int:
    if len(fractions) == 2:
        std = abs(fractions[0] - fractions[1]) / 2
    elif len(fractions) > 2:
        mean = sum(fractions) / len(fractions)
        std = math.sqrt(sum((f - mean) ** 2 for f in fractions) / len(fractions))
    else:
        std = 0.0
    return int((1 - std) * MAX_NODE_SCORE)


class BalancedAllocation:
    name = BALANCED
    events = Event.NODE_ADD | Event.NODE_ALLOCATABLE | Event.ASSIGNED_POD_DELETE

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        if not pod.requests.milli_cpu and not pod.requests.memory:
            return SKIP  # best-effort pods would all pile on the emptiest node
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        fractions = []
        cap = node.allocatable.milli_cpu
        if cap:
            fractions.append(min(1.0, (node.requested.milli_cpu + pod.requests.milli_cpu) / cap))
        cap = node.allocatable.memory
        if cap:
            fractions.append(min(1.0, (node.requested.memory + pod.requests.memory) / cap))
        return balanced_score(fractions)

    def score_all(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        pc, pm = pod.requests.milli_cpu, pod.requests.memory
        out = []
        for ni in nodes:
            a = ni.allocatable
            ccap, mcap = a.milli_cpu, a.memory
            if ccap and mcap:
                r = ni.requested
                fc = (r.milli_cpu + pc) / ccap
                fm = (r.memory + pm) / mcap
                d = (fc if fc < 1 else 1.0) - (fm if fm < 1 else 1.0)
                out.append(int((1 - (d if d >= 0 else -d) / 2) * MAX_NODE_SCORE))
            else:
                out.append(self.score(state, pod, ni))
        return out

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                        scores: list[int]) -> None:
        return None


def new_fit(handle: Handle) -> Fit:
    return Fit(frozenset(handle.args.get("ignoredResources") or ()))


def new_balanced(handle: Handle) -> BalancedAllocation:
    return BalancedAllocation()
