"""PodTopologySpread: keep matching pods evenly spread over topology domains.

A ``DoNotSchedule`` constraint filters out nodes where placing the pod would
make its domain exceed the emptiest eligible domain by more than ``maxSkew``
(the emptiest counts as 0 while fewer than ``minDomains`` domains exist);
``ScheduleAnyway`` constraints score nodes, fewer matching pods in the domain
scoring higher. Eligible nodes carry every constraint's topology key and pass
the node inclusion policies (node affinity honoured, taints ignored, by
default). Matching pods are found through the cache's label index; the
eligible domains are kept between pods until a node changes.
"""

from __future__ import annotations

import math
from typing import Any

from kubeling.api.selectors import NOTHING, LabelSelector, selector_from_object
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
from kubeling.scheduler.plugins.helpers import RequiredNodeAffinity, untolerated_taint

NAME = "PodTopologySpread"
CONSTRAINTS_NOT_MATCH = "node(s) didn't match pod topology spread constraints"
NODE_LABEL_NOT_MATCH = CONSTRAINTS_NOT_MATCH + " (missing required label)"
HOSTNAME = "kubernetes.io/hostname"
_PRE = "PodTopologySpread.prefilter"
_SCORE = "PodTopologySpread.prescore"

Pair = tuple[str, str]


class Constraint:
    __slots__ = ("honor_affinity", "honor_taints", "max_skew", "min_domains", "selector",
                 "topology_key")

    def __init__(self, c: dict[str, Any], pod_labels: dict[str, str]) -> None:
        self.max_skew = int(c.get("maxSkew") or 1)
        self.topology_key: str = c.get("topologyKey", "")
        self.min_domains = int(c.get("minDomains") or 1)
        raw = c.get("labelSelector")
        keys = [k for k in c.get("matchLabelKeys") or () if k in pod_labels]
        if raw is None and not keys:
            self.selector: LabelSelector = NOTHING
        else:
            sel = dict(raw or {})
            sel["matchExpressions"] = [*(sel.get("matchExpressions") or ()), *(
                {"key": k, "operator": "In", "values": [pod_labels[k]]} for k in keys)]
            self.selector = selector_from_object(sel)
        self.honor_affinity = (c.get("nodeAffinityPolicy") or "Honor") == "Honor"
        self.honor_taints = (c.get("nodeTaintsPolicy") or "Ignore") == "Honor"


def constraints(pod: PodInfo, action: str) -> list[Constraint]:
    spec = pod.pod.get("spec") or {}
    return [Constraint(c, pod.labels) for c in spec.get("topologySpreadConstraints") or ()
            if c.get("whenUnsatisfiable", "DoNotSchedule") == action]


def _eligible(c: Constraint, node: NodeInfo, affinity: RequiredNodeAffinity,
              pod: PodInfo) -> bool:
    if c.honor_affinity and not affinity.matches(node.labels, node.name):
        return False
    if c.honor_taints and untolerated_taint(node.taints, pod.tolerations) is not None:
        return False
    return True


def _count_by_node(snapshot: Snapshot, c: Constraint, namespace: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pi, ni in snapshot.matching_pods((namespace,), c.selector):
        if not pi.terminating:
            counts[ni.name] = counts.get(ni.name, 0) + 1
    return counts


class _FilterState:
    __slots__ = ("constraints", "domains", "match", "min_match")

    def __init__(self) -> None:
        self.constraints: list[Constraint] = []
        self.match: dict[Pair, int] = {}
        self.domains: dict[str, int] = {}
        self.min_match: dict[str, int] = {}


class PodTopologySpread:
    name = NAME
    events = (Event.NODE_ADD | Event.NODE_DELETE | Event.NODE_LABEL | Event.NODE_TAINT
              | Event.ASSIGNED_POD_ADD | Event.ASSIGNED_POD_UPDATE | Event.ASSIGNED_POD_DELETE
              | Event.POD_UPDATE)

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._domains_memo: dict[Any, tuple[int, list[tuple[str, Pair | None]]]] = {}

    def _eligible_nodes(self, pod: PodInfo, cs: list[Constraint],
                        affinity: RequiredNodeAffinity) -> list[tuple[str, list[Pair | None]]]:
        """(node name, the pair each constraint counts it in, or None) for the nodes with
        every topology key; remembered until nodes change."""
        sig = (tuple((c.topology_key, c.honor_affinity, c.honor_taints) for c in cs),
               repr((affinity.node_selector, affinity.terms)),
               repr(pod.tolerations) if any(c.honor_taints for c in cs) else "")
        gen = self.snapshot.node_generation
        memo = self._domains_memo.get(sig)
        if memo is not None and memo[0] == gen:
            return memo[1]  # type: ignore[return-value]
        out: list[tuple[str, list[Pair | None]]] = []
        keys = [c.topology_key for c in cs]
        for ni in self.snapshot.node_infos():
            labels = ni.labels
            if not all(k in labels for k in keys):
                continue
            out.append((ni.name, [(c.topology_key, labels[c.topology_key])
                                  if _eligible(c, ni, affinity, pod) else None for c in cs]))
        if len(self._domains_memo) > 64:
            self._domains_memo.clear()
        self._domains_memo[sig] = (gen, out)  # type: ignore[assignment]
        return out

    def pre_filter(self, state: CycleState,
                   pod: PodInfo) -> tuple[PreFilterResult | None, Status | None]:
        cs = constraints(pod, "DoNotSchedule")
        if not cs:
            return None, SKIP
        s = _FilterState()
        s.constraints = cs
        affinity = RequiredNodeAffinity(pod.pod)
        counts = [_count_by_node(self.snapshot, c, pod.namespace) for c in cs]
        for name, pairs in self._eligible_nodes(pod, cs, affinity):
            for i, pair in enumerate(pairs):
                if pair is not None:
                    s.match[pair] = s.match.get(pair, 0) + counts[i].get(name, 0)
        for (key, _), n in s.match.items():
            s.domains[key] = s.domains.get(key, 0) + 1
            m = s.min_match.get(key)
            if m is None or n < m:
                s.min_match[key] = n
        state.write(_PRE, s)
        return None, None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        s: _FilterState = state.read(_PRE)
        for c in s.constraints:
            value = node.labels.get(c.topology_key)
            if value is None:
                return unresolvable(NODE_LABEL_NOT_MATCH)
            min_match = s.min_match.get(c.topology_key, 0)
            if s.domains.get(c.topology_key, 0) < c.min_domains:
                min_match = 0
            self_match = 1 if c.selector.matches(pod.labels) else 0
            skew = s.match.get((c.topology_key, value), 0) + self_match - min_match
            if skew > c.max_skew:
                return unschedulable(CONSTRAINTS_NOT_MATCH)
        return None

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        cs = constraints(pod, "ScheduleAnyway")
        if not cs or not nodes:
            return SKIP
        keys = [c.topology_key for c in cs]
        ignored = {ni.name for ni in nodes if not all(k in ni.labels for k in keys)}
        pair_counts: dict[Pair, int] = {}
        sizes = [0] * len(cs)
        for ni in nodes:
            if ni.name in ignored:
                continue
            for i, c in enumerate(cs):
                if c.topology_key == HOSTNAME:
                    continue
                pair = (c.topology_key, ni.labels[c.topology_key])
                if pair not in pair_counts:
                    pair_counts[pair] = 0
                    sizes[i] += 1
        weights = [math.log((len(nodes) - len(ignored) if c.topology_key == HOSTNAME
                             else sizes[i]) + 2) for i, c in enumerate(cs)]
        affinity = RequiredNodeAffinity(pod.pod)
        per_node = [_count_by_node(self.snapshot, c, pod.namespace) for c in cs]
        for name, pairs in self._eligible_nodes(pod, cs, affinity):
            for i, maybe in enumerate(pairs):
                if maybe is not None and maybe in pair_counts:
                    pair_counts[maybe] += per_node[i].get(name, 0)
        state.write(_SCORE, (cs, ignored, pair_counts, weights, per_node))
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        cs, ignored, pair_counts, weights, per_node = state.read(_SCORE)
        if node.name in ignored:
            return 0
        total = 0.0
        for i, c in enumerate(cs):
            value = node.labels.get(c.topology_key)
            if value is None:
                continue
            if c.topology_key == HOSTNAME:
                cnt = per_node[i].get(node.name, 0)
            else:
                cnt = pair_counts.get((c.topology_key, value), 0)
            total += cnt * weights[i] + (c.max_skew - 1)
        return math.floor(total + 0.5)

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                        scores: list[int]) -> None:
        data = state.read(_SCORE)
        if data is None:
            return
        ignored = data[1]
        lo, hi = None, 0
        for ni, s in zip(nodes, scores, strict=True):
            if ni.name in ignored:
                continue
            lo = s if lo is None or s < lo else lo
            hi = max(hi, s)
        lo = lo or 0
        for i, ni in enumerate(nodes):
            if ni.name in ignored:
                scores[i] = 0
            elif hi == 0:
                scores[i] = MAX_NODE_SCORE
            else:
                scores[i] = MAX_NODE_SCORE * (hi + lo - scores[i]) // hi


def new(handle: Handle) -> PodTopologySpread:
    return PodTopologySpread(handle.snapshot)
