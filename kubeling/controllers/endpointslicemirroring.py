"""The EndpointSlice mirroring controller ("endpointslicemirroring").

The proxy and the DNS read only EndpointSlices, yet a Service without a
selector gets its endpoints from an Endpoints object written by hand (or by
another tool). As kube-controller-manager's mirroring controller does, the
Endpoints of such a Service are copied into slices managed by
``endpointslicemirroring-controller.k8s.io``, owned by the Endpoints, carrying
its labels and annotations; an Endpoints labelled
``endpointslice.kubernetes.io/skip-mirror: "true"`` (as the API server labels
``default/kubernetes``, whose slice it writes itself) or a leader-election
record is not mirrored. The slices go when the Endpoints or the Service go, or
when the Service gains a selector.
"""

from __future__ import annotations

import logging

from kubeling.api import kinds
from kubeling.client.informer import key_of, split_key
from kubeling.client.interface import Obj
from kubeling.controllers import servicepods as sp
from kubeling.controllers.base import ControllerContext
from kubeling.controllers.endpointslice import REQUEUE_DELAY, EndpointSliceController
from kubeling.controllers.endpointslice_reconcile import Group, group_key, plan

log = logging.getLogger("kubeling.controllers.endpointslicemirroring")

CONTROLLER_NAME = "endpointslicemirroring-controller.k8s.io"
MAX_ENDPOINTS_PER_SUBSET = 1000
_NOT_COPIED = (sp.TRIGGER_TIME_ANNOTATION, "kubectl.kubernetes.io/last-applied-configuration")


def should_mirror(ep: Obj | None, svc: Obj | None) -> bool:
    if ep is None or svc is None or sp.selector_of(svc):
        return False
    meta = ep["metadata"]
    if (meta.get("labels") or {}).get(sp.SKIP_MIRROR_LABEL) == "true":
        return False
    return sp.LEADER_ANNOTATION not in (meta.get("annotations") or {})


def _address_type(ip: str) -> str:
    return "IPv6" if ":" in ip else "IPv4"


def mirrored_groups(ep: Obj) -> dict[str, Group]:
    groups: dict[str, Group] = {}
    for subset in ep.get("subsets") or []:
        ports = [{"name": p.get("name") or "", "port": p.get("port"),
                  "protocol": p.get("protocol") or "TCP",
                  **({"appProtocol": p["appProtocol"]} if p.get("appProtocol") else {})}
                 for p in subset.get("ports") or []]
        count = 0
        for field, ready in (("addresses", True), ("notReadyAddresses", False)):
            for addr in subset.get(field) or []:
                if count >= MAX_ENDPOINTS_PER_SUBSET:
                    break
                ip = addr.get("ip") or ""
                if not ip:
                    continue
                count += 1
                at = _address_type(ip)
                gk = group_key(at, ports)
                group = groups.get(gk)
                if group is None:
                    group = groups[gk] = Group(at, ports)
                e: Obj = {"addresses": [ip], "conditions": {"ready": ready}}
                for k in ("hostname", "nodeName", "targetRef"):
                    if addr.get(k):
                        e[k] = addr[k]
                key = (ip, (addr.get("targetRef") or {}).get("uid") or "")
                group.endpoints.setdefault(key, e)
    return groups


def mirror_meta(ep: Obj) -> Obj:
    meta = ep["metadata"]
    labels = dict(meta.get("labels") or {})
    labels[sp.SERVICE_NAME_LABEL] = meta["name"]
    labels[sp.MANAGED_BY_LABEL] = CONTROLLER_NAME
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k not in _NOT_COPIED}
    owner = {"apiVersion": "v1", "kind": "Endpoints", "name": meta["name"],
             "uid": meta.get("uid"), "controller": True, "blockOwnerDeletion": True}
    return {"labels": labels, "ownerReferences": [owner], "generateName": f"{meta['name']}-",
            "namespace": meta.get("namespace"), "annotations": annotations}


class EndpointSliceMirroringController(EndpointSliceController):
    name = "endpointslicemirroring"
    managed_by = CONTROLLER_NAME

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        ep_kind = kinds.by_resource("", "endpoints")
        assert ep_kind is not None
        self.endpoints = ctx.informers.informer(ep_kind)
        self.endpoints.add_handlers(add=self.enqueue, update=lambda _o, n: self.enqueue(n),
                                    delete=self.enqueue)

    # Services matter by name only (a selector gained or lost); pods not at all.
    def _service_changed(self, svc: Obj) -> None:
        self.queue.add(key_of(svc))

    def _pod_changed(self, pod: Obj) -> None:
        return

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        return

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        if not self.expectations.satisfied(key, ns, self.slices):
            self.queue.add_after(key, REQUEUE_DELAY)
            return
        ep = self.endpoints.get(ns, name)
        svc = self.services.get(ns, name)
        existing = self.owned_slices(key)
        if not should_mirror(ep, svc):
            for s in existing:
                await self._delete(key, s)
            if ep is None:
                self.expectations.forget(key)
            return
        assert ep is not None
        todo = plan(mirrored_groups(ep), existing, mirror_meta(ep))
        await self.apply(key, ns, todo)
