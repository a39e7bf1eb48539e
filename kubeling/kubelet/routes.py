"""Host-gateway routes: every other node's pod CIDR reached through that node's address.

With the bridge network each node's pods live on a bridge of their own, behind
the node. When the nodes share a link (one L2 segment, as flannel's host-gw
backend assumes), a route per node is all cross-node pod traffic needs:
``<node's podCIDR> via <node's InternalIP>``. The agent watches the Nodes and
keeps those routes in the kernel's main table. It marks its routes with its
own route protocol number (``proto 75``), so it only ever changes or removes
routes it made, and after a restart it finds them again by that mark.

Pods see each other's own addresses, as the Kubernetes network model asks:
the bridge plugin masquerades whatever leaves the node's pod CIDR, so traffic
from our pods to another node's pod CIDR is exempted first, by ACCEPT rules in
a chain of ours (``KUBELING-POSTROUTING``) at the top of nat POSTROUTING.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from kubeling.client.interface import Obj
from kubeling.kubelet.context import KubeletContext
from kubeling.utils import tasks
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.kubelet.routes")

PROTO = 75  # the route protocol id that marks kubeling's routes
NAT_CHAIN = "KUBELING-POSTROUTING"
NAT_COMMENT = "kubeling: pod to pod across nodes without NAT"
RESYNC = 30.0  # the routes are checked at least this often (someone may have removed one)


class RouteError(Exception):
    """The kernel refused a route change."""


def desired_routes(nodes: Iterable[Obj], own_node: str, own_ip: str = "") -> dict[str, str]:
    """``{pod CIDR: node address}`` for every other node with pod CIDRs and an InternalIP
    of the same family."""
    want: dict[str, str] = {}
    for node in nodes:
        if node["metadata"]["name"] == own_node:
            continue
        spec = node.get("spec") or {}
        cidrs = list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
        addrs = [a.get("address", "") for a in (node.get("status") or {}).get("addresses") or []
                 if a.get("type") == "InternalIP"]
        for cidr in cidrs:
            try:
                net = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                continue
            for addr in addrs:
                try:
                    ip = ipaddress.ip_address(addr)
                except ValueError:
                    continue
                if ip.version == net.version and addr != own_ip:
                    want[str(net)] = str(ip)
                    break
    return want


def _route_key(node: Obj) -> tuple[Any, ...]:
    spec = node.get("spec") or {}
    addrs = (node.get("status") or {}).get("addresses") or []
    return (spec.get("podCIDR"), tuple(spec.get("podCIDRs") or ()),
            tuple((a.get("type"), a.get("address")) for a in addrs))


class RouteTable(Protocol):
    """The kernel's routes marked as ours."""

    async def list(self) -> dict[str, str]:
        """``{destination: gateway}`` of our routes."""
        ...

    async def replace(self, dst: str, via: str) -> None: ...

    async def delete(self, dst: str) -> None: ...


class IpRouteTable:
    """Our routes in the main table, through iproute2."""

    def __init__(self, proto: int = PROTO) -> None:
        self.proto = str(proto)

    async def _ip(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "ip", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RouteError(f"ip {' '.join(args)}: {err.decode(errors='replace').strip()}")
        return out.decode()

    async def list(self) -> dict[str, str]:
        routes: dict[str, str] = {}
        for family in ("-4", "-6"):
            text = await self._ip(family, "-j", "route", "show", "proto", self.proto)
            try:
                entries = json.loads(text or "[]")
            except ValueError:
                entries = []
            for r in entries:
                dst = r.get("dst")
                if not dst or dst == "default":
                    continue
                routes[str(ipaddress.ip_network(dst, strict=False))] = str(r.get("gateway", ""))
        return routes

    async def replace(self, dst: str, via: str) -> None:
        await self._ip("route", "replace", dst, "via", via, "proto", self.proto)

    async def delete(self, dst: str) -> None:
        await self._ip("route", "del", dst, "proto", self.proto)


class NatExemptions(Protocol):
    """Traffic from our pod CIDR to the other nodes' pod CIDRs is not masqueraded."""

    async def set(self, own: str, others: list[str]) -> None: ...


class IptablesExemptions:
    """The exemptions as ``iptables -t nat`` rules in a chain of ours (IPv4)."""

    async def _ipt(self, *args: str, check: bool = True) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            "iptables", "-w", "5", "-t", "nat", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if check and proc.returncode != 0:
            raise RouteError(f"iptables -t nat {' '.join(args)}: "
                             f"{err.decode(errors='replace').strip()}")
        return proc.returncode or 0, out.decode()

    @staticmethod
    def rules(own: str, others: list[str]) -> list[list[str]]:
        return [["-s", own, "-d", other, "-m", "comment", "--comment", NAT_COMMENT,
                 "-j", "ACCEPT"] for other in others]

    async def set(self, own: str, others: list[str]) -> None:
        v4 = [c for c in others if ipaddress.ip_network(c).version == 4]
        if not own or ipaddress.ip_network(own, strict=False).version != 4:
            v4 = []
        own_net = str(ipaddress.ip_network(own, strict=False)) if own else ""
        code, _ = await self._ipt("-S", NAT_CHAIN, check=False)
        if code != 0:
            if not v4:
                return
            await self._ipt("-N", NAT_CHAIN)
        code, _ = await self._ipt("-C", "POSTROUTING", "-j", NAT_CHAIN, check=False)
        if code != 0:
            await self._ipt("-I", "POSTROUTING", "1", "-j", NAT_CHAIN)
        _, listing = await self._ipt("-S", NAT_CHAIN)
        have = [line.split()[2:] for line in listing.splitlines()
                if line.startswith(f"-A {NAT_CHAIN} ")]
        want = self.rules(own_net, sorted(v4))
        if [_normal(r) for r in have] == [_normal(r) for r in want]:
            return
        await self._ipt("-F", NAT_CHAIN)
        for rule in want:
            await self._ipt("-A", NAT_CHAIN, *rule)
        log.info("pod traffic to %s not masqueraded", ", ".join(sorted(v4)) or "no other node")


def _normal(rule: list[str]) -> list[str]:
    """A rule's words, as ``iptables -S`` prints them split on spaces (comments unquoted)."""
    return " ".join(w.strip('"') for w in rule).split()


class Routes:
    """Keeps a host-gw route to every other node's pods. ``start()`` watches the Nodes
    (an informer of all of them) and syncs on every change of a pod CIDR or address, and
    every ``resync`` seconds; ``stop()`` leaves the routes in place (pods keep talking while
    the agent restarts)."""

    def __init__(self, ctx: KubeletContext, *, table: RouteTable | None = None,
                 nat: NatExemptions | None = None, resync: float = RESYNC) -> None:
        self.ctx = ctx
        self.node_name = ctx.options.node_name
        self.table: RouteTable = table or IpRouteTable()
        self.nat: NatExemptions = nat or IptablesExemptions()
        self.resync = resync
        self.nodes = ctx.informers.informer(("", "nodes"))
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self.syncs = 0

    def start(self) -> None:
        if self._task is not None:
            return
        self.nodes.add_handlers(add=self._changed, update=self._updated, delete=self._changed)
        self._task = spawn(self._run(), name=f"routes-{self.node_name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await tasks.stop(task)

    def _changed(self, node: Obj) -> None:
        self._dirty.set()

    def _updated(self, old: Obj, new: Obj) -> None:
        if _route_key(old) != _route_key(new):
            self._dirty.set()

    async def _run(self) -> None:
        await self.nodes.wait_synced()
        while True:
            self._dirty.clear()
            try:
                await self.sync()
            except (RouteError, OSError) as exc:
                log.warning("syncing routes: %s", exc)
            try:
                await asyncio.wait_for(self._dirty.wait(), self.resync)
            except TimeoutError:
                pass

    async def sync(self) -> None:
        """Make our routes what the Nodes say: add or fix the missing and changed ones,
        remove ours that no node asks for; exempt pod-to-pod traffic from the masquerade.
        One failed route does not stop the others."""
        nodes = self.nodes.list()
        want = desired_routes(nodes, self.node_name, self.ctx.node_ip)
        have = await self.table.list()
        failed: list[str] = []
        own = next((str((n.get("spec") or {}).get("podCIDR") or "") for n in nodes
                    if n["metadata"]["name"] == self.node_name), "")
        try:
            await self.nat.set(own, sorted(want))
        except RouteError as exc:
            failed.append(str(exc))
        for dst, via in sorted(want.items()):
            if have.get(dst) == via:
                continue
            try:
                await self.table.replace(dst, via)
                log.info("route added: %s via %s", dst, via)
            except RouteError as exc:
                failed.append(str(exc))
        for dst in sorted(set(have) - set(want)):
            try:
                await self.table.delete(dst)
                log.info("route removed: %s via %s", dst, have[dst])
            except RouteError as exc:
                failed.append(str(exc))
        self.syncs += 1
        if failed:
            raise RouteError("; ".join(failed))
