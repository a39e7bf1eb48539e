"""The scheduler's cache: nodes, the pods on them, and pods assumed while they bind.

Informer handlers feed it nodes, bound pods and namespaces; the scheduling
loop *assumes* a pod onto its chosen node the moment it decides, so the next
pod already sees the room it took, long before the binding is written and the
informer reports it back. The informer's report confirms an assumed pod; a
failed binding forgets it; an assumed pod whose binding finished but that the
informer never showed is forgotten after a TTL.

A scheduling cycle runs without awaiting, so the cache itself is the cycle's
snapshot: nothing changes under a plugin while it runs, and nothing is copied
per pod. Besides the per-node totals it keeps the indexes the pod affinity and
topology spread plugins need to stay cheap at thousands of pods: pods by label
and by namespace, and the (anti-)affinity terms of placed pods aggregated by
term with counts per topology value.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubeling.api.selectors import LabelSelector
from kubeling.scheduler.framework import Event
from kubeling.scheduler.nodeinfo import AffinityTerm, NodeInfo, PodInfo

Obj = dict[str, Any]

REQUIRED_AFFINITY = "ra"
REQUIRED_ANTI_AFFINITY = "raa"
PREFERRED_AFFINITY = "pa"
PREFERRED_ANTI_AFFINITY = "paa"

TermKey = tuple[str, Any, int]


@dataclass
class TermCounts:
    """Placed pods' terms that are the same term: counts of pods per topology value."""

    term: AffinityTerm
    kind: str
    weight: int
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class _PodState:
    info: PodInfo
    node: str
    assumed: bool = False
    binding_finished: bool = False
    deadline: float = 0.0
    contributions: list[tuple[TermKey, str]] = field(default_factory=list)


class Cache:
    def __init__(self, *, assumed_ttl: float = 30.0) -> None:
        self.assumed_ttl = assumed_ttl
        self._nodes: dict[str, NodeInfo] = {}
        self._node_list: list[NodeInfo] | None = None
        self.node_generation = 0
        self._pods: dict[str, _PodState] = {}
        self._by_label: dict[str, set[str]] = {}
        self._by_namespace: dict[str, set[str]] = {}
        self._terms: dict[TermKey, TermCounts] = {}
        self._ns_labels: dict[str, dict[str, str]] = {}

    # ----- nodes ---------------------------------------------------------------------

    def add_node(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        ni = self._nodes.get(name)
        if ni is None:
            ni = self._nodes[name] = NodeInfo(node)
        else:
            old_labels = ni.labels
            ni.set_node(node)
            if old_labels != ni.labels:
                self._relabel(ni)
        self._node_list = None
        self.node_generation += 1

    def update_node(self, old: Obj, new: Obj) -> Event:
        """Apply a node update; the events it amounts to (for the queue)."""
        name = new["metadata"]["name"]
        ni = self._nodes.get(name)
        if ni is None or ni.node is None:
            self.add_node(new)
            return Event.NODE_ADD
        before = ni.node
        old_labels = ni.labels
        ni.set_node(new)
        ev = Event.NONE
        if old_labels != ni.labels:
            ev |= Event.NODE_LABEL
            self._relabel(ni)
        ospec, nspec = before.get("spec") or {}, new.get("spec") or {}
        if (ospec.get("taints") != nspec.get("taints")
                or bool(ospec.get("unschedulable")) != bool(nspec.get("unschedulable"))):
            ev |= Event.NODE_TAINT
        if ((before.get("status") or {}).get("allocatable")
                != (new.get("status") or {}).get("allocatable")):
            ev |= Event.NODE_ALLOCATABLE
        if ev & (Event.NODE_LABEL | Event.NODE_TAINT):
            self.node_generation += 1
        return ev

    def remove_node(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        ni = self._nodes.get(name)
        if ni is None:
            return
        if ni.pods:
            ni.node = None  # pods still point at it until their deletion is seen
        else:
            del self._nodes[name]
        self._node_list = None
        self.node_generation += 1

    def _relabel(self, ni: NodeInfo) -> None:
        for pi in list(ni.pods.values()):
            st = self._pods.get(pi.key)
            if st is not None:
                self._uncount_terms(st)
                self._count_terms(st, ni)

    # ----- pods ----------------------------------------------------------------------

    def add_pod(self, pod: Obj) -> None:
        """A bound pod seen by the informer (confirms it if it was assumed)."""
        node = (pod.get("spec") or {}).get("nodeName") or ""
        if not node:
            return
        key = f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}"
        st = self._pods.get(key)
        if st is not None:
            if st.node == node and (st.assumed or _same_shape(st.info.pod, pod)) \
                    and st.info.labels == (pod["metadata"].get("labels") or {}) \
                    and st.info.terminating == bool(pod["metadata"].get("deletionTimestamp")):
                # The binding confirmed (or a status change): same requests, same place.
                st.info.pod = pod
                st.info.node_name = node
                st.assumed = False
                return
            self._remove(key)
        self._add(PodInfo(pod), node, assumed=False)

    def update_pod(self, old: Obj, new: Obj) -> None:
        self.add_pod(new)

    def remove_pod(self, pod: Obj) -> None:
        self._remove(f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}")

    def assume_pod(self, pi: PodInfo, node: str) -> None:
        self._add(pi, node, assumed=True)

    def finish_binding(self, key: str, now: float) -> None:
        st = self._pods.get(key)
        if st is not None and st.assumed:
            st.binding_finished = True
            st.deadline = now + self.assumed_ttl

    def forget_pod(self, key: str) -> None:
        st = self._pods.get(key)
        if st is not None and st.assumed:
            self._remove(key)

    def is_assumed(self, key: str) -> bool:
        st = self._pods.get(key)
        return st is not None and st.assumed

    def has_pod(self, key: str) -> bool:
        return key in self._pods

    def cleanup_expired(self, now: float) -> list[str]:
        """Forget assumed pods whose binding finished more than the TTL ago."""
        if self.assumed_ttl <= 0:
            return []
        gone = [k for k, st in self._pods.items()
                if st.assumed and st.binding_finished and st.deadline < now]
        for k in gone:
            self._remove(k)
        return gone

    def _add(self, pi: PodInfo, node: str, *, assumed: bool) -> None:
        if pi.key in self._pods:
            self._remove(pi.key)
        ni = self._nodes.get(node)
        if ni is None:
            ni = self._nodes[node] = NodeInfo(name=node)
        ni.add_pod(pi)
        st = _PodState(pi, node, assumed=assumed)
        self._pods[pi.key] = st
        for k, v in pi.labels.items():
            self._by_label.setdefault(f"{k}={v}", set()).add(pi.key)
        self._by_namespace.setdefault(pi.namespace, set()).add(pi.key)
        if pi.has_affinity:
            self._count_terms(st, ni)

    def _remove(self, key: str) -> None:
        st = self._pods.pop(key, None)
        if st is None:
            return
        pi = st.info
        ni = self._nodes.get(st.node)
        if ni is not None:
            ni.remove_pod(key)
            if ni.node is None and not ni.pods:
                del self._nodes[st.node]
        for k, v in pi.labels.items():
            s = self._by_label.get(f"{k}={v}")
            if s is not None:
                s.discard(key)
                if not s:
                    del self._by_label[f"{k}={v}"]
        s = self._by_namespace.get(pi.namespace)
        if s is not None:
            s.discard(key)
            if not s:
                del self._by_namespace[pi.namespace]
        self._uncount_terms(st)

    def _count_terms(self, st: _PodState, ni: NodeInfo) -> None:
        pi = st.info
        for kind, terms in ((REQUIRED_AFFINITY, pi.required_affinity),
                            (REQUIRED_ANTI_AFFINITY, pi.required_anti_affinity),
                            (PREFERRED_AFFINITY, pi.preferred_affinity),
                            (PREFERRED_ANTI_AFFINITY, pi.preferred_anti_affinity)):
            for term in terms:
                value = ni.labels.get(term.topology_key)
                if value is None:
                    continue
                tk: TermKey = (kind, term.key, term.weight)
                tc = self._terms.get(tk)
                if tc is None:
                    tc = self._terms[tk] = TermCounts(term, kind, term.weight)
                tc.counts[value] = tc.counts.get(value, 0) + 1
                st.contributions.append((tk, value))

    def _uncount_terms(self, st: _PodState) -> None:
        for tk, value in st.contributions:
            tc = self._terms.get(tk)
            if tc is None:
                continue
            n = tc.counts.get(value, 0) - 1
            if n > 0:
                tc.counts[value] = n
            else:
                tc.counts.pop(value, None)
                if not tc.counts:
                    del self._terms[tk]
        st.contributions = []

    # ----- namespaces ----------------------------------------------------------------

    def set_namespace(self, ns: Obj) -> None:
        self._ns_labels[ns["metadata"]["name"]] = ns["metadata"].get("labels") or {}

    def remove_namespace(self, ns: Obj) -> None:
        self._ns_labels.pop(ns["metadata"]["name"], None)

    # ----- the snapshot a cycle reads ------------------------------------------------

    def node_infos(self) -> list[NodeInfo]:
        if self._node_list is None:
            self._node_list = [ni for ni in self._nodes.values() if ni.node is not None]
        return self._node_list

    def num_nodes(self) -> int:
        return len(self.node_infos())

    def get(self, name: str) -> NodeInfo | None:
        ni = self._nodes.get(name)
        return ni if ni is not None and ni.node is not None else None

    def with_pods_with_affinity(self) -> Iterable[NodeInfo]:
        return [ni for ni in self.node_infos() if ni.pods_with_affinity]

    def with_required_anti_affinity(self) -> Iterable[NodeInfo]:
        return [ni for ni in self.node_infos() if ni.pods_with_required_anti_affinity]

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self._ns_labels.get(namespace)

    def namespaces(self) -> Iterable[tuple[str, Mapping[str, str]]]:
        return self._ns_labels.items()

    def term_counts(self, kind: str) -> Iterator[TermCounts]:
        """Placed pods' terms of one kind (see the constants), aggregated."""
        return (tc for tc in self._terms.values() if tc.kind == kind)

    def has_terms(self, kind: str) -> bool:
        return any(tc.kind == kind for tc in self._terms.values())

    def matching_pods(self, namespaces: Iterable[str] | None,
                      selector: LabelSelector) -> Iterator[tuple[PodInfo, NodeInfo]]:
        """Placed pods in ``namespaces`` (all when None) whose labels match ``selector``,
        with the node each is on (found through the label index when it pins a value)."""
        if selector.nothing:
            return
        keys: Iterable[str] | None = None
        for req in selector.requirements:
            value = selector.requires_exact_match(req.key)
            if value is not None:
                keys = self._by_label.get(f"{req.key}={value}", ())
                break
        ns_set = None if namespaces is None else set(namespaces)
        if keys is None:
            if ns_set is not None:
                keys = [k for ns in ns_set for k in self._by_namespace.get(ns, ())]
                ns_set = None
            else:
                keys = self._pods.keys()
        pods, nodes = self._pods, self._nodes
        for key in keys:
            st = pods.get(key)
            if st is None:
                continue
            pi = st.info
            if ns_set is not None and pi.namespace not in ns_set:
                continue
            if not selector.matches(pi.labels):
                continue
            ni = nodes.get(st.node)
            if ni is not None and ni.node is not None:
                yield pi, ni

    def node_of(self, key: str) -> str | None:
        st = self._pods.get(key)
        return None if st is None else st.node

    @property
    def pod_count(self) -> int:
        return len(self._pods)


def _same_shape(a: Obj, b: Obj) -> bool:
    """True when two versions of a pod count the same for scheduling."""
    ma, mb = a["metadata"], b["metadata"]
    return (a.get("spec") == b.get("spec") and ma.get("labels") == mb.get("labels")
            and bool(ma.get("deletionTimestamp")) == bool(mb.get("deletionTimestamp")))
