"""Shapes every node agent writes about itself: standard labels, conditions, its Lease.

Both the real node agent (:mod:`kubeling.kubelet`) and the hollow nodes
(:mod:`kubeling.hollow`) register Nodes and renew Leases; the pieces that must
look the same to the scheduler and the controllers live here, below both.
"""

from __future__ import annotations

import platform
from typing import Any

from kubeling.client.interface import Obj
from kubeling.client.leader import micro_time
from kubeling.utils.clock import rfc3339

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION = 40
KUBELET_PORT = 10250

HOSTNAME_LABEL = "kubernetes.io/hostname"
OS_LABEL = "kubernetes.io/os"
ARCH_LABEL = "kubernetes.io/arch"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def arch() -> str:
    """This machine's architecture as Go names it (GOARCH)."""
    machine = platform.machine().lower()
    return _ARCH.get(machine, machine or "amd64")


def standard_labels(name: str, *, os_name: str = "linux", machine: str = "") -> dict[str, str]:
    """The labels every kubelet puts on its Node (the beta.* ones included, as it still does)."""
    machine = machine or arch()
    return {"beta.kubernetes.io/arch": machine, "beta.kubernetes.io/os": os_name,
            ARCH_LABEL: machine, HOSTNAME_LABEL: name, OS_LABEL: os_name}


def condition(type_: str, status: str, reason: str, message: str, *, now: float,
              previous: Obj | None = None) -> Obj:
    """A node condition heartbeating at ``now``; its transition time is kept from
    ``previous`` while the status stays the same."""
    stamp = rfc3339(now)
    since = None
    if previous is not None and previous.get("status") == status:
        since = previous.get("lastTransitionTime")
    return {"type": type_, "status": status, "lastHeartbeatTime": stamp,
            "lastTransitionTime": since or stamp, "reason": reason, "message": message}


def lease_object(name: str, node_uid: str, now: float, *,
                 duration: int = LEASE_DURATION) -> Obj:
    """The node's Lease in kube-node-lease, owned by its Node (so it goes with the Node)."""
    meta: dict[str, Any] = {"name": name, "namespace": LEASE_NAMESPACE}
    if node_uid:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": name,
                                    "uid": node_uid}]
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
            "spec": {"holderIdentity": name, "leaseDurationSeconds": duration,
                     "renewTime": micro_time(now)}}
