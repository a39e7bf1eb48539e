"""The service load balancer ("servicelb", as k3s's): LoadBalancer Services answered
by the nodes themselves.

A cluster without a cloud still wants ``type: LoadBalancer`` to work. As k3s's
ServiceLB does, every such Service (without a ``loadBalancerClass``, which
would name another implementation) gets, as its ``status.loadBalancer.ingress``,
the address of every Ready node: its ExternalIP when it has one, else its
InternalIP (sorted, each once, ``ipMode: VIP``). The proxy makes those
addresses answer on the service ports. The status follows the nodes (a node
joining, leaving or turning unready) and is cleared when the Service stops
being a LoadBalancer.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from kubeling.api import errors, kinds
from kubeling.client.informer import key_of, split_key
from kubeling.client.interface import Obj
from kubeling.controllers.base import Controller, ControllerContext

log = logging.getLogger("kubeling.controllers.servicelb")


def node_ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def node_address(node: Obj) -> str | None:
    """The node's ExternalIP if it has one, else its InternalIP."""
    addrs = (node.get("status") or {}).get("addresses") or []
    for want in ("ExternalIP", "InternalIP"):
        for a in addrs:
            if a.get("type") == want and a.get("address"):
                return str(a["address"])
    return None


def _sort_key(ip: str) -> tuple[int, Any]:
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return (2, ip)
    return (parsed.version, parsed)


def ingress_for(nodes: list[Obj]) -> list[Obj]:
    ips = {ip for n in nodes if node_ready(n) and (ip := node_address(n))}
    return [{"ip": ip, "ipMode": "VIP"} for ip in sorted(ips, key=_sort_key)]


def is_ours(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


class ServiceLBController(Controller):
    name = "servicelb"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        svc_kind = kinds.by_resource("", "services")
        assert svc_kind is not None
        self.svc_kind = svc_kind
        self.services = ctx.informers.informer(svc_kind)
        self.nodes = ctx.informers.informer(("", "nodes"))
        self.services.add_handlers(add=self.enqueue, update=self._service_updated)
        self.nodes.add_handlers(add=self._nodes_changed, update=self._node_updated,
                                delete=self._nodes_changed)

    def _service_updated(self, old: Obj, new: Obj) -> None:
        if is_ours(old) or is_ours(new):
            self.enqueue(new)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if (node_ready(old), node_address(old)) != (node_ready(new), node_address(new)):
            self._nodes_changed(new)

    def _nodes_changed(self, _node: Obj) -> None:
        for svc in self.services.list():
            if is_ours(svc):
                self.queue.add(key_of(svc))

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.services.get(ns, name)
        if svc is None:
            return
        spec = svc.get("spec") or {}
        current = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if is_ours(svc):
            want = ingress_for(self.nodes.list())
        elif spec.get("type") != "LoadBalancer" and current and \
                not spec.get("loadBalancerClass"):
            want = []
        else:
            return
        if want == current:
            return
        patch = {"metadata": {"resourceVersion": svc["metadata"].get("resourceVersion")},
                 "status": {"loadBalancer": {"ingress": want or None}}}
        try:
            await self.client.patch(self.svc_kind, ns, name, patch, patch_type="merge",
                                    subresource="status")
        except errors.StatusError as exc:
            if exc.code == 404:
                return
            raise
        log.info("service %s load balancer ingress: %s", key,
                 ", ".join(i["ip"] for i in want) or "(none)")
