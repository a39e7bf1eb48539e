"""NodeAffinity: ``nodeSelector`` and required node affinity filter nodes; preferred node
affinity terms add their weights to the nodes they match.

Required terms that pin ``metadata.name`` (as DaemonSet pods do) narrow the
nodes to filter in PreFilter, so such a pod costs one node, not thousands.
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
    default_normalize,
    unresolvable,
)
from kubeling.scheduler.plugins.helpers import RequiredNodeAffinity, term_matches

NAME = "NodeAffinity"
REASON = "node(s) didn't match Pod's node affinity/selector"
CONFLICT = "pod affinity terms conflict"
_FAIL = unresolvable(REASON)
_STATE = "NodeAffinity.prefilter"
_SCORE = "NodeAffinity.prescore"


def _pinned_names(terms: list[dict]) -> set[str] | None:
    """Node names the terms allow through ``metadata.name In``, or None when any term
    leaves the name free."""
    names: set[str] = set()
    for term in terms:
        term_names: set[str] | None = None
        for req in term.get("matchFields") or ():
            if req.get("key") == "metadata.name" and req.get("operator") == "In":
                vals = set(req.get("values") or ())
                term_names = vals if term_names is None else term_names & vals
        if term_names is None:
            return None
        names |= term_names
    return names


class NodeAffinity:
    name = NAME
    events = Event.NODE_ADD | Event.NODE_LABEL | Event.POD_UPDATE

    def pre_filter(self, state: CycleState,
                   pod: PodInfo) -> tuple[PreFilterResult | None, Status | None]:
        req = RequiredNodeAffinity(pod.pod)
        if req.empty:
            return None, SKIP
        state.write(_STATE, req)
        if not req.terms:
            return None, None
        names = _pinned_names(req.terms)
        if names is None:
            return None, None
        if not names:
            return None, unresolvable(CONFLICT)
        return PreFilterResult(names), None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        req: RequiredNodeAffinity | None = state.read(_STATE)
        if req is None:
            req = RequiredNodeAffinity(pod.pod)
        if req.matches(node.labels, node.name):
            return None
        return _FAIL

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        na = ((pod.pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
        preferred = [(int(t.get("weight") or 0), t.get("preference") or {})
                     for t in na.get("preferredDuringSchedulingIgnoredDuringExecution") or ()]
        preferred = [(w, p) for w, p in preferred if w and (p.get("matchExpressions")
                                                             or p.get("matchFields"))]
        if not preferred:
            return SKIP
        state.write(_SCORE, preferred)
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        preferred = state.read(_SCORE) or ()
        return sum(w for w, term in preferred if term_matches(term, node.labels, node.name))

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                        scores: list[int]) -> None:
        default_normalize(scores)


def new(handle: Handle) -> NodeAffinity:
    return NodeAffinity()
