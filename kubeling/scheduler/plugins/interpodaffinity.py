"""InterPodAffinity: pods placed near (affinity) or away from (anti-affinity) other pods,
by topology domain (the value of ``topologyKey`` on the nodes).

Filter: the pod's required affinity terms each need a matching pod in the
node's domain (a pod whose terms match itself may start a group alone), its
required anti-affinity terms need none, and no placed pod's required
anti-affinity may match the pod in the node's domain. Score: preferred terms
both ways, and placed pods' required affinity at weight 1, summed per domain
and scaled between the lowest and the highest node.

The counting is done once per pod in PreFilter/PreScore from the cache's
label index and its per-term aggregates, so Filter and Score are lookups.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kubeling.scheduler import cache as c
from kubeling.scheduler.framework import (
    MAX_NODE_SCORE,
    SKIP,
    CycleState,
    Event,
    Handle,
    NodeInfo,
    PodInfo,
    PreFilterResult,
    Snapshot,
    Status,
    unresolvable,
    unschedulable,
)
from kubeling.scheduler.nodeinfo import AffinityTerm

NAME = "InterPodAffinity"
AFFINITY_NOT_MATCH = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY_NOT_MATCH = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY_NOT_MATCH = "node(s) didn't satisfy existing pods anti-affinity rules"
HARD_POD_AFFINITY_WEIGHT = 1
_PRE = "InterPodAffinity.prefilter"
_SCORE = "InterPodAffinity.prescore"

Pair = tuple[str, str]


class _PreFilterState:
    __slots__ = ("affinity", "anti_affinity", "existing_anti", "pod")

    def __init__(self, pod: PodInfo) -> None:
        self.pod = pod
        self.existing_anti: dict[Pair, int] = {}
        self.affinity: dict[Pair, int] = {}
        self.anti_affinity: dict[Pair, int] = {}


def _merge_namespaces(terms: list[AffinityTerm], snapshot: Snapshot) -> list[AffinityTerm]:
    """Resolve a term's namespaceSelector to the namespaces it selects now."""
    out = []
    for t in terms:
        if t.ns_selector is None:
            out.append(t)
            continue
        nss = set(t.namespaces)
        nss.update(name for name, labels in snapshot.namespaces()
                   if t.ns_selector.matches(labels))
        out.append(AffinityTerm(frozenset(nss), t.selector, t.topology_key, None, t.weight))
    return out


def _count(terms: Iterable[AffinityTerm], snapshot: Snapshot, into: dict[Pair, int],
           weight_of: int | None = None, sign: int = 1) -> None:
    for term in terms:
        key = term.topology_key
        w = sign * (term.weight if weight_of is None else weight_of)
        for _, ni in snapshot.matching_pods(term.namespaces, term.selector):
            value = ni.labels.get(key)
            if value is not None:
                into[(key, value)] = into.get((key, value), 0) + w


def _matches_own_terms(pod: PodInfo, terms: list[AffinityTerm]) -> bool:
    return all(t.matches(pod.namespace, pod.labels, None) for t in terms)


class InterPodAffinity:
    name = NAME
    events = (Event.NODE_ADD | Event.NODE_LABEL | Event.ASSIGNED_POD_ADD
              | Event.ASSIGNED_POD_UPDATE | Event.ASSIGNED_POD_DELETE | Event.POD_UPDATE)

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def pre_filter(self, state: CycleState,
                   pod: PodInfo) -> tuple[PreFilterResult | None, Status | None]:
        snap = self.snapshot
        existing = snap.has_terms(c.REQUIRED_ANTI_AFFINITY)
        if not pod.required_affinity and not pod.required_anti_affinity and not existing:
            return None, SKIP
        s = _PreFilterState(pod)
        if existing:
            ns_labels = snap.namespace_labels(pod.namespace)
            for tc in snap.term_counts(c.REQUIRED_ANTI_AFFINITY):
                if tc.term.matches(pod.namespace, pod.labels, ns_labels):
                    key = tc.term.topology_key
                    for value, n in tc.counts.items():
                        s.existing_anti[(key, value)] = s.existing_anti.get((key, value), 0) + n
        affinity = _merge_namespaces(pod.required_affinity, snap)
        anti = _merge_namespaces(pod.required_anti_affinity, snap)
        _count(affinity, snap, s.affinity, weight_of=1)
        _count(anti, snap, s.anti_affinity, weight_of=1)
        state.write(_PRE, (s, affinity))
        return None, None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        s, affinity = state.read(_PRE)
        labels = node.labels
        if affinity:
            exist = True
            for term in affinity:
                value = labels.get(term.topology_key)
                if value is None:
                    return unresolvable(AFFINITY_NOT_MATCH)
                if s.affinity.get((term.topology_key, value), 0) <= 0:
                    exist = False
            if not exist and not (not s.affinity and _matches_own_terms(pod, affinity)):
                return unresolvable(AFFINITY_NOT_MATCH)
        if s.anti_affinity:
            for term in pod.required_anti_affinity:
                value = labels.get(term.topology_key)
                if value is not None and s.anti_affinity.get((term.topology_key, value), 0) > 0:
                    return unschedulable(ANTI_AFFINITY_NOT_MATCH)
        if s.existing_anti:
            for pair in labels.items():
                if s.existing_anti.get(pair, 0) > 0:
                    return unschedulable(EXISTING_ANTI_AFFINITY_NOT_MATCH)
        return None

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        snap = self.snapshot
        has_own = bool(pod.preferred_affinity or pod.preferred_anti_affinity)
        scores: dict[Pair, int] = {}
        if has_own:
            _count(_merge_namespaces(pod.preferred_affinity, snap), snap, scores)
            _count(_merge_namespaces(pod.preferred_anti_affinity, snap), snap, scores, sign=-1)
        ns_labels: Mapping[str, str] | None = None
        first = True
        for kind, sign, hard in ((c.REQUIRED_AFFINITY, 1, True), (c.PREFERRED_AFFINITY, 1, False),
                                 (c.PREFERRED_ANTI_AFFINITY, -1, False)):
            for tc in snap.term_counts(kind):
                if first:
                    ns_labels = snap.namespace_labels(pod.namespace)
                    first = False
                if not tc.term.matches(pod.namespace, pod.labels, ns_labels):
                    continue
                w = sign * (HARD_POD_AFFINITY_WEIGHT if hard else tc.weight)
                key = tc.term.topology_key
                for value, n in tc.counts.items():
                    scores[(key, value)] = scores.get((key, value), 0) + w * n
        if not scores:
            return SKIP
        by_key: dict[str, dict[str, int]] = {}
        for (key, value), n in scores.items():
            by_key.setdefault(key, {})[value] = n
        state.write(_SCORE, by_key)
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        by_key: dict[str, dict[str, int]] = state.read(_SCORE)
        total = 0
        labels = node.labels
        for key, values in by_key.items():
            value = labels.get(key)
            if value is not None:
                total += values.get(value, 0)
        return total

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                        scores: list[int]) -> None:
        if not scores or state.read(_SCORE) is None:
            return
        lo, hi = min(scores), max(scores)
        diff = hi - lo
        for i, s in enumerate(scores):
            scores[i] = int(MAX_NODE_SCORE * ((s - lo) / diff)) if diff > 0 else 0


def new(handle: Handle) -> InterPodAffinity:
    return InterPodAffinity(handle.snapshot)
