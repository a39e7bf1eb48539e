"""Node IPAM: one pod CIDR per node, cut from the cluster CIDR.

The pod network gives each node a range of its own (``spec.podCIDR`` and
``spec.podCIDRs``) so nodes can hand out pod IPs without asking anyone.
Kubernetes' range allocator does it from ``--cluster-cidr`` and
``--node-cidr-mask-size``; so does this controller. The set of ranges in use
is rebuilt from the nodes themselves when it starts (every node the informer
lists is counted before anything is allocated), a range is never given twice,
and it is freed when its node is deleted. When the cluster CIDR is exhausted
the node gets a ``CIDRNotAvailable`` event and is retried later.
"""

from __future__ import annotations

import ipaddress
import logging

from kubeling.api import errors, kinds
from kubeling.client.events import NORMAL
from kubeling.client.interface import Obj
from kubeling.controllers.base import Controller, ControllerContext

log = logging.getLogger("kubeling.controllers.nodeipam")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CidrFull(Exception):
    """Every range of the cluster CIDR is taken."""


class CidrSet:
    """The ranges of one size in a cluster CIDR, handed out round-robin like Kubernetes'
    cidrset (so a freed range is not reused at once)."""

    def __init__(self, cluster_cidr: str, mask_size: int) -> None:
        self.cluster = ipaddress.ip_network(cluster_cidr, strict=False)
        if not self.cluster.prefixlen <= mask_size <= self.cluster.max_prefixlen:
            raise ValueError(f"node CIDR mask size {mask_size} does not fit in {cluster_cidr}")
        self.mask_size = mask_size
        self.size = 2 ** (mask_size - self.cluster.prefixlen)
        self._step = 2 ** (self.cluster.max_prefixlen - mask_size)
        self._used: set[int] = set()
        self._next = 0

    def __len__(self) -> int:
        return len(self._used)

    def _index(self, cidr: str) -> int | None:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return None
        if net.version != self.cluster.version or net.prefixlen != self.mask_size or \
                not net.subnet_of(self.cluster):  # type: ignore[arg-type]
            return None
        return (int(net.network_address) - int(self.cluster.network_address)) // self._step

    def _cidr(self, index: int) -> str:
        base = int(self.cluster.network_address) + index * self._step
        return f"{ipaddress.ip_address(base)}/{self.mask_size}"

    def allocate(self) -> str:
        for i in range(self.size):
            index = (self._next + i) % self.size
            if index not in self._used:
                self._used.add(index)
                self._next = (index + 1) % self.size
                return self._cidr(index)
        raise CidrFull(f"no {self.mask_size}-bit range left in {self.cluster}")

    def occupy(self, cidr: str) -> bool:
        """Mark a range as used (one a node already has); False if it is not one of ours."""
        index = self._index(cidr)
        if index is None:
            return False
        self._used.add(index)
        return True

    def release(self, cidr: str) -> None:
        index = self._index(cidr)
        if index is not None:
            self._used.discard(index)


def pod_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    return list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))


class NodeIpamController(Controller):
    name = "nodeipam"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.cidrs = CidrSet(ctx.options.cluster_cidr, ctx.options.node_cidr_mask_size)
        node_kind = kinds.by_resource("", "nodes")
        assert node_kind is not None
        self.node_kind = node_kind
        self.nodes = ctx.informers.informer(node_kind)
        self.nodes.add_handlers(add=self.node_seen, update=lambda _, new: self.node_seen(new),
                                delete=self.node_gone)
        self._pending: dict[str, str] = {}  # node -> range given but not yet seen on it

    def node_seen(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        have = pod_cidrs(node)
        if have:
            for cidr in have:
                self.cidrs.occupy(cidr)
            pending = self._pending.pop(name, None)
            if pending is not None and pending not in have:
                self.cidrs.release(pending)
        else:
            self.queue.add(name)

    def node_gone(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        for cidr in pod_cidrs(node):
            self.cidrs.release(cidr)
        pending = self._pending.pop(name, None)
        if pending is not None:
            self.cidrs.release(pending)

    async def sync(self, key: str) -> None:
        node = self.nodes.get(None, key)
        if node is None or pod_cidrs(node) or node["metadata"].get("deletionTimestamp"):
            return
        cidr = self._pending.get(key)
        if cidr is None:
            try:
                cidr = self.cidrs.allocate()
            except CidrFull as exc:
                self.recorder.event(node, NORMAL, "CIDRNotAvailable",
                                    f"Node {key} status is now: CIDRNotAvailable")
                raise errors.StatusError(503, "ServiceUnavailable", str(exc)) from None
            self._pending[key] = cidr
        try:
            await self.client.patch(self.node_kind, None, key,
                                    {"metadata": {"uid": node["metadata"]["uid"]},
                                     "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
        except errors.StatusError as exc:
            if exc.code == 404:
                self._pending.pop(key, None)
                self.cidrs.release(cidr)
                return
            raise
        log.info("node %s: pod CIDR %s", key, cidr)
