"""PostFilter: would evicting lower-priority pods make room? (DefaultPreemption's dry run)

When no node fits, Kubernetes asks, node by node, whether removing every pod
of lower priority would let the pod in, and says so in the FailedScheduling
message ("preemption: 0/3 nodes are available: 3 No preemption victims found
for incoming pod."). This module runs that dry run and returns the words and
the nodes where preemption would help, with the victims it would need
(fewest and lowest-priority first, as Kubernetes reprieves pods greedily).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubeling.scheduler.framework import (
    Code,
    CycleState,
    Diagnosis,
    NodeInfo,
    PodInfo,
    Status,
    fit_error_message,
    unresolvable,
)
from kubeling.scheduler.profile import Profile

NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
NEVER = "not eligible due to preemptionPolicy=Never."


@dataclass
class Candidate:
    node: str
    victims: list[PodInfo] = field(default_factory=list)


@dataclass
class PostFilterResult:
    message: str
    candidates: list[Candidate] = field(default_factory=list)


def _trial_node(ni: NodeInfo, keep: list[PodInfo]) -> NodeInfo:
    assert ni.node is not None
    trial = NodeInfo(ni.node)
    for p in keep:
        trial.add_pod(p)
    return trial


def _victims(profile: Profile, state: CycleState, pod: PodInfo, ni: NodeInfo,
             lower: list[PodInfo], higher: list[PodInfo]) -> list[PodInfo] | None:
    if profile.run_filters(state, pod, _trial_node(ni, higher)) is not None:
        return None
    kept = list(higher)
    victims = []
    for p in sorted(lower, key=lambda p: -p.priority):
        if profile.run_filters(state, pod, _trial_node(ni, [*kept, p])) is None:
            kept.append(p)
        else:
            victims.append(p)
    return victims


def dry_run(profile: Profile, state: CycleState, pod: PodInfo,
            diagnosis: Diagnosis) -> PostFilterResult:
    spec = pod.pod.get("spec") or {}
    if spec.get("preemptionPolicy") == "Never":
        return PostFilterResult("preemption: " + NEVER)
    all_nodes = profile.snapshot.node_infos()
    statuses: dict[str, Status] = {}
    candidates: list[Candidate] = []
    for ni in all_nodes:
        st = diagnosis.node_to_status.get(ni.name) or diagnosis.absent_status
        if st is None or st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
            continue
        lower = [p for p in ni.pods.values() if p.priority < pod.priority]
        if not lower:
            statuses[ni.name] = unresolvable(NO_VICTIMS)
            continue
        higher = [p for p in ni.pods.values() if p.priority >= pod.priority]
        victims = _victims(profile, state, pod, ni, lower, higher)
        if victims is None:
            failed = profile.run_filters(state, pod, _trial_node(ni, higher))
            statuses[ni.name] = failed or unresolvable(NO_VICTIMS)
        else:
            candidates.append(Candidate(ni.name, victims))
    if candidates:
        candidates.sort(key=lambda c: (max((v.priority for v in c.victims), default=0),
                                       len(c.victims)))
        return PostFilterResult("", candidates)
    d = Diagnosis(node_to_status=statuses, absent_status=unresolvable(NOT_HELPFUL))
    return PostFilterResult("preemption: " + fit_error_message(len(all_nodes), d))
