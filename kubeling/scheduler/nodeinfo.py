"""What the scheduler knows of a pod and of a node, computed once and kept.

Filters run for hundreds of nodes per pod, so nothing here is parsed in a
filter: a :class:`PodInfo` holds the pod's resource requests (containers
summed, init containers as a maximum, sidecars counted, overhead added), its
host ports, tolerations and (anti-)affinity terms as compiled selectors; a
:class:`NodeInfo` holds the node's allocatable resources, taints, labels and
the running totals of the pods placed on it (requests, the non-zero requests
scoring uses, host ports in use, and which pods carry affinity terms).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubeling.api.quantity import parse_quantity
from kubeling.api.selectors import NOTHING, LabelSelector, selector_from_object

Obj = dict[str, Any]

DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


def is_scalar_resource(name: str) -> bool:
    """Extended, hugepages and attachable-volume resources: counted as plain integers."""
    return "/" in name or name.startswith(("hugepages-", "attachable-volumes-"))


def is_extended_resource(name: str) -> bool:
    return "/" in name and "kubernetes.io/" not in name and not name.startswith("requests.")


_AMOUNTS: dict[tuple[Any, bool], int] = {}


def _amount(value: Any, milli: bool) -> int:
    """A quantity as an integer (milli-units or units), remembered: the same few strings
    ("100m", "1Gi") come back for every pod and every node update."""
    key = (value, milli)
    got = _AMOUNTS.get(key)
    if got is None:
        q = parse_quantity(value)
        got = q.milli_value() if milli else q.value()
        if len(_AMOUNTS) > 4096:
            _AMOUNTS.clear()
        _AMOUNTS[key] = got
    return got


class Resource:
    """Amounts of cpu (milli), memory and ephemeral storage (bytes) and scalar resources."""

    __slots__ = ("ephemeral_storage", "memory", "milli_cpu", "scalar")

    def __init__(self, milli_cpu: int = 0, memory: int = 0, ephemeral_storage: int = 0,
                 scalar: dict[str, int] | None = None) -> None:
        self.milli_cpu = milli_cpu
        self.memory = memory
        self.ephemeral_storage = ephemeral_storage
        self.scalar: dict[str, int] = scalar or {}

    @classmethod
    def from_list(cls, rl: Mapping[str, Any] | None) -> Resource:
        r = cls()
        for name, value in (rl or {}).items():
            r.set(name, value)
        return r

    def set(self, name: str, value: Any) -> None:
        if name == "cpu":
            self.milli_cpu = _amount(value, True)
        elif name == "memory":
            self.memory = _amount(value, False)
        elif name == "ephemeral-storage":
            self.ephemeral_storage = _amount(value, False)
        elif is_scalar_resource(name):
            self.scalar[name] = _amount(value, False)

    def add(self, other: Resource, sign: int = 1) -> None:
        self.milli_cpu += sign * other.milli_cpu
        self.memory += sign * other.memory
        self.ephemeral_storage += sign * other.ephemeral_storage
        for k, v in other.scalar.items():
            self.scalar[k] = self.scalar.get(k, 0) + sign * v

    def maximum(self, other: Resource) -> None:
        self.milli_cpu = max(self.milli_cpu, other.milli_cpu)
        self.memory = max(self.memory, other.memory)
        self.ephemeral_storage = max(self.ephemeral_storage, other.ephemeral_storage)
        for k, v in other.scalar.items():
            self.scalar[k] = max(self.scalar.get(k, 0), v)

    def copy(self) -> Resource:
        return Resource(self.milli_cpu, self.memory, self.ephemeral_storage, dict(self.scalar))

    def is_zero(self) -> bool:
        return not (self.milli_cpu or self.memory or self.ephemeral_storage
                    or any(self.scalar.values()))

    def __repr__(self) -> str:
        return (f"Resource(cpu={self.milli_cpu}m, memory={self.memory}, "
                f"ephemeral={self.ephemeral_storage}, scalar={self.scalar})")


def _container_requests(c: Obj, non_zero: bool) -> Resource:
    requests = (c.get("resources") or {}).get("requests") or {}
    r = Resource.from_list(requests)
    if non_zero:
        if "cpu" not in requests:
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST
        if "memory" not in requests:
            r.memory = DEFAULT_MEMORY_REQUEST
    return r


def pod_requests(spec: Obj, *, non_zero: bool = False) -> Resource:
    """The pod's effective requests: app containers and sidecars summed, each ordinary
    init container (plus the sidecars started before it) as a maximum, overhead added.
    ``non_zero`` gives containers without a cpu or memory request the scoring defaults
    (100m, 200Mi)."""
    total = Resource()
    for c in spec.get("containers") or ():
        total.add(_container_requests(c, non_zero))
    sidecars = Resource()
    init_max = Resource()
    for c in spec.get("initContainers") or ():
        req = _container_requests(c, non_zero)
        if c.get("restartPolicy") == "Always":
            total.add(req)
            sidecars.add(req)
            init_max.maximum(sidecars)
        else:
            req.add(sidecars)
            init_max.maximum(req)
    total.maximum(init_max)
    overhead = spec.get("overhead")
    if overhead:
        total.add(Resource.from_list(overhead))
    return total


class AffinityTerm:
    """A pod (anti-)affinity term compiled: which pods it selects and by which topology."""

    __slots__ = ("key", "namespaces", "ns_selector", "selector", "topology_key", "weight")

    def __init__(self, namespaces: frozenset[str], selector: LabelSelector, topology_key: str,
                 ns_selector: LabelSelector | None, weight: int = 0) -> None:
        self.namespaces = namespaces
        self.selector = selector
        self.topology_key = topology_key
        self.ns_selector = ns_selector
        self.weight = weight
        self.key = (namespaces, str(selector), selector.nothing, topology_key,
                    None if ns_selector is None else str(ns_selector))

    @classmethod
    def from_obj(cls, own_namespace: str, term: Obj, weight: int = 0) -> AffinityTerm:
        sel_obj = term.get("labelSelector")
        selector = NOTHING if sel_obj is None else selector_from_object(sel_obj)
        nss = frozenset(term.get("namespaces") or ())
        ns_sel_obj = term.get("namespaceSelector")
        ns_selector = None if ns_sel_obj is None else selector_from_object(ns_sel_obj)
        if not nss and ns_selector is None:
            nss = frozenset((own_namespace,))
        return cls(nss, selector, term.get("topologyKey", ""), ns_selector, weight)

    def matches(self, namespace: str, labels: Mapping[str, str] | None,
                ns_labels: Mapping[str, str] | None) -> bool:
        if namespace not in self.namespaces:
            if self.ns_selector is None or ns_labels is None \
                    or not self.ns_selector.matches(ns_labels):
                return False
        return self.selector.matches(labels)


def _terms(namespace: str, block: Obj | None, field: str) -> list[AffinityTerm]:
    if not block:
        return []
    out = []
    for t in block.get(field) or ():
        if field.startswith("preferred"):
            out.append(AffinityTerm.from_obj(namespace, t.get("podAffinityTerm") or {},
                                             int(t.get("weight") or 0)))
        else:
            out.append(AffinityTerm.from_obj(namespace, t))
    return out


REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


class PodInfo:
    """A pod with everything the plugins read from it, computed once."""

    __slots__ = (
        "host_ports",
        "key",
        "labels",
        "name",
        "namespace",
        "node_name",
        "non_zero_cpu",
        "non_zero_memory",
        "pod",
        "preferred_affinity",
        "preferred_anti_affinity",
        "priority",
        "requests",
        "required_affinity",
        "required_anti_affinity",
        "terminating",
        "tolerations",
        "uid",
    )

    def __init__(self, pod: Obj) -> None:
        self.pod = pod
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        self.namespace: str = meta.get("namespace") or ""
        self.name: str = meta["name"]
        self.key = f"{self.namespace}/{self.name}"
        self.uid: str = meta.get("uid") or ""
        self.labels: dict[str, str] = meta.get("labels") or {}
        self.node_name: str = spec.get("nodeName") or ""
        self.priority: int = int(spec.get("priority") or 0)
        self.terminating = bool(meta.get("deletionTimestamp"))
        self.tolerations: list[Obj] = spec.get("tolerations") or []
        self.requests = pod_requests(spec)
        nz = pod_requests(spec, non_zero=True)
        self.non_zero_cpu = nz.milli_cpu
        self.non_zero_memory = nz.memory
        ports: list[tuple[str, str, int]] = []
        for c in spec.get("containers") or ():
            for p in c.get("ports") or ():
                hp = p.get("hostPort") or 0
                if hp > 0:
                    ports.append((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP",
                                  int(hp)))
        self.host_ports = ports
        affinity = spec.get("affinity") or {}
        pa, paa = affinity.get("podAffinity"), affinity.get("podAntiAffinity")
        ns = self.namespace
        self.required_affinity = _terms(ns, pa, REQUIRED)
        self.required_anti_affinity = _terms(ns, paa, REQUIRED)
        self.preferred_affinity = _terms(ns, pa, PREFERRED)
        self.preferred_anti_affinity = _terms(ns, paa, PREFERRED)

    @property
    def has_affinity(self) -> bool:
        return bool(self.required_affinity or self.required_anti_affinity
                    or self.preferred_affinity or self.preferred_anti_affinity)

    def __repr__(self) -> str:
        return f"PodInfo({self.key})"


class NodeInfo:
    """A node and the pods the scheduler counts on it (bound, or assumed while binding)."""

    __slots__ = ("allocatable", "allowed_pods", "generation", "labels", "name", "node",
                 "non_zero_cpu", "non_zero_memory", "pods", "pods_with_affinity",
                 "pods_with_required_anti_affinity", "requested", "taints", "unschedulable",
                 "used_ports")

    def __init__(self, node: Obj | None = None, name: str = "") -> None:
        self.pods: dict[str, PodInfo] = {}
        self.requested = Resource()
        self.non_zero_cpu = 0
        self.non_zero_memory = 0
        self.used_ports: dict[tuple[str, str, int], int] = {}
        self.pods_with_affinity: dict[str, PodInfo] = {}
        self.pods_with_required_anti_affinity: dict[str, PodInfo] = {}
        self.generation = 0
        self.node: Obj | None = None
        self.name = name
        self.labels: dict[str, str] = {}
        self.taints: list[Obj] = []
        self.unschedulable = False
        self.allocatable = Resource()
        self.allowed_pods = 0
        if node is not None:
            self.set_node(node)

    def set_node(self, node: Obj) -> None:
        self.node = node
        self.name = node["metadata"]["name"]
        self.labels = node["metadata"].get("labels") or {}
        spec = node.get("spec") or {}
        self.taints = spec.get("taints") or []
        self.unschedulable = bool(spec.get("unschedulable"))
        alloc = (node.get("status") or {}).get("allocatable") or {}
        self.allocatable = Resource.from_list(alloc)
        self.allowed_pods = _amount(alloc["pods"], False) if "pods" in alloc else 0
        self.generation += 1

    def add_pod(self, pi: PodInfo) -> None:
        if pi.key in self.pods:
            self.remove_pod(pi.key)
        self.pods[pi.key] = pi
        self.requested.add(pi.requests)
        self.non_zero_cpu += pi.non_zero_cpu
        self.non_zero_memory += pi.non_zero_memory
        for port in pi.host_ports:
            self.used_ports[port] = self.used_ports.get(port, 0) + 1
        if pi.has_affinity:
            self.pods_with_affinity[pi.key] = pi
        if pi.required_anti_affinity:
            self.pods_with_required_anti_affinity[pi.key] = pi
        self.generation += 1

    def remove_pod(self, key: str) -> PodInfo | None:
        pi = self.pods.pop(key, None)
        if pi is None:
            return None
        self.requested.add(pi.requests, -1)
        self.non_zero_cpu -= pi.non_zero_cpu
        self.non_zero_memory -= pi.non_zero_memory
        for port in pi.host_ports:
            n = self.used_ports.get(port, 0) - 1
            if n > 0:
                self.used_ports[port] = n
            else:
                self.used_ports.pop(port, None)
        self.pods_with_affinity.pop(key, None)
        self.pods_with_required_anti_affinity.pop(key, None)
        self.generation += 1
        return pi

    def pod_infos(self) -> Iterable[PodInfo]:
        return self.pods.values()

    def __repr__(self) -> str:
        return f"NodeInfo({self.name}, pods={len(self.pods)})"
