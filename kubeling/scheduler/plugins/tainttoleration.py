"""TaintToleration: a node's NoSchedule and NoExecute taints keep out pods that do not
tolerate them; PreferNoSchedule taints the pod does not tolerate lower a node's score."""

from __future__ import annotations

from kubeling.scheduler.framework import (
    CycleState,
    Event,
    Handle,
    NodeInfo,
    PodInfo,
    Status,
    default_normalize,
    unresolvable,
)
from kubeling.scheduler.plugins.helpers import tolerated, untolerated_taint

NAME = "TaintToleration"
_STATE = "TaintToleration.prescore"


class TaintToleration:
    name = NAME
    events = Event.NODE_ADD | Event.NODE_TAINT | Event.POD_UPDATE

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.taints:
            return None
        taint = untolerated_taint(node.taints, pod.tolerations)
        if taint is None:
            return None
        return unresolvable(
            f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}")

    def filter_all(self, state: CycleState, pod: PodInfo,
                   nodes: list[NodeInfo]) -> list[tuple[int, Status]]:
        return [(i, st) for i, ni in enumerate(nodes)
                if ni.taints and (st := self.filter(state, pod, ni)) is not None]

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        state.write(_STATE, [t for t in pod.tolerations
                             if (t.get("effect") or "PreferNoSchedule") == "PreferNoSchedule"])
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        if not node.taints:
            return 0
        tolerations = state.read(_STATE) or []
        return sum(1 for t in node.taints if t.get("effect") == "PreferNoSchedule"
                   and not tolerated(tolerations, t))

    def score_all(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        score = self.score
        return [score(state, pod, ni) if ni.taints else 0 for ni in nodes]

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                        scores: list[int]) -> None:
        default_normalize(scores, reverse=True)


def new(handle: Handle) -> TaintToleration:
    return TaintToleration()
