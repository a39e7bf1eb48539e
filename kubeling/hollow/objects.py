"""The API objects a hollow node writes about itself: its Node, its Lease, its addresses.

The shapes shared with the real node agent (labels, conditions, the Lease) come
from :mod:`kubeling.client.nodeobjects`.

They look like what a kubelet registers (labels, capacity, nodeInfo, the four
conditions, a Lease owned by the Node), so the scheduler and the controllers
cannot tell a hollow node from a real one.
"""

from __future__ import annotations

import ipaddress
import platform
import uuid
import zlib

from kubeling.client.interface import Obj
from kubeling.client.nodeobjects import (
    KUBELET_PORT,
    LEASE_DURATION,
    LEASE_NAMESPACE,
    arch,
    condition,
    lease_object,
    standard_labels,
)

__all__ = ["KUBELET_PORT", "LEASE_DURATION", "LEASE_NAMESPACE", "arch", "lease_object"]

HOLLOW_LABEL = "type"
HOLLOW_VALUE = "hollow"
ZONE_LABEL = "topology.kubernetes.io/zone"
KUBELET_VERSION = "v1.32.0-hollow"
# Node addresses and fallback pod networks come from ranges no real cluster here uses.
_NODE_NET = ipaddress.IPv4Network("172.16.0.0/12")
_POD_NET = ipaddress.IPv4Network("100.64.0.0/10")


def node_ip(index: int) -> str:
    """The InternalIP of the node with this index (one per node, from 172.16.0.0/12)."""
    return str(_NODE_NET.network_address + 1 + index % (_NODE_NET.num_addresses - 2))


def fallback_pod_cidr(index: int) -> str:
    """A /24 for a node that was given no spec.podCIDR (from 100.64.0.0/10)."""
    slots = _POD_NET.num_addresses >> 8
    return str(ipaddress.IPv4Network((int(_POD_NET.network_address) + (index % slots) * 256, 24)))


def _stable_uuid(name: str, what: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kubeling-hollow:{what}:{name}"))


_CONDITIONS = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)


def conditions(now: float, previous: list[Obj] | None = None) -> list[Obj]:
    """The four conditions of a healthy node; a transition time is kept while the status
    stays the same, as the kubelet keeps it."""
    before = {c.get("type"): c for c in previous or ()}

    def cond(type_: str, status: str, reason: str, message: str) -> Obj:
        return condition(type_, status, reason, message, now=now, previous=before.get(type_))

    out = [cond(t, "False", r, m) for t, r, m in _CONDITIONS]
    out.append(cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"))
    return out


def node_object(name: str, index: int, *, cpu: str, memory: str, pods: str,
                labels: dict[str, str] | None, now: float) -> Obj:
    """The Node a hollow kubelet registers."""
    resources = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "100Gi"}
    machine = arch()
    all_labels = {**standard_labels(name, machine=machine), HOLLOW_LABEL: HOLLOW_VALUE,
                  **(labels or {})}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": all_labels,
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                     "kubeling.io/hollow": "true"}},
        "spec": {},
        "status": {
            "capacity": resources, "allocatable": dict(resources),
            "conditions": conditions(now),
            "addresses": [{"type": "InternalIP", "address": node_ip(index)},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
            "nodeInfo": {
                "machineID": _stable_uuid(name, "machine").replace("-", ""),
                "systemUUID": _stable_uuid(name, "system"),
                "bootID": str(uuid.uuid4()),
                "kernelVersion": platform.release() or "6.1.0",
                "osImage": "kubeling hollow node",
                "containerRuntimeVersion": "hollow://1.0.0",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": machine,
            },
        },
    }


def container_id(pod_uid: str, container: str) -> str:
    return "hollow://" + format(zlib.crc32(f"{pod_uid}/{container}".encode()), "08x") * 8
