"""The EndpointSlice controller ("endpointslice"): discovery.k8s.io/v1 slices per Service.

EndpointSlices are what the proxy and the cluster DNS read, so a pod change
must reach them fast: a pod event enqueues only the services selecting the
pod (found through the selector index), and a sync rewrites only the slices
whose endpoints changed (see :mod:`endpointslice_reconcile`).

As kube-controller-manager's controller does: every selected pod with an IP
that is not terminal becomes one endpoint (terminating pods stay, with
``ready`` false unless ``publishNotReadyAddresses``, ``serving`` from the Ready
condition and ``terminating`` true); pods offering different resolved ports
land in different slices; a Service with no endpoints keeps one empty
placeholder slice; slices are named ``<service>-<random>``, labelled with the
service name and ``managed-by: endpointslice-controller.k8s.io``, and owned by
the Service. Services losing their selector (or becoming ExternalName) lose
the slices this controller made; the mirroring controller takes over.
"""

from __future__ import annotations

import logging
from typing import Any

from kubeling.api import errors, kinds
from kubeling.client.informer import split_key
from kubeling.client.interface import Obj
from kubeling.controllers import servicepods as sp
from kubeling.controllers.base import ControllerContext
from kubeling.controllers.endpointslice_reconcile import Expectations, Group, group_key, plan

log = logging.getLogger("kubeling.controllers.endpointslice")

CONTROLLER_NAME = "endpointslice-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
REQUEUE_DELAY = 0.02


def _owned(managed_by: str) -> Any:
    def index(s: Obj) -> list[str]:
        labels = s["metadata"].get("labels") or {}
        if labels.get(sp.MANAGED_BY_LABEL) != managed_by or sp.SERVICE_NAME_LABEL not in labels:
            return []
        return [f"{s['metadata'].get('namespace')}/{labels[sp.SERVICE_NAME_LABEL]}"]
    return index


def slice_endpoint(svc: Obj, pod: Obj, ip: str, zone: str | None) -> Obj:
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    serving = sp.pod_ready(pod)
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    ready = publish or (serving and not terminating)
    ep: Obj = {"addresses": [ip],
               "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
               "targetRef": sp.target_ref(pod)}
    hostname = sp.hostname_for(svc, pod)
    if hostname:
        ep["hostname"] = hostname
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        ep["nodeName"] = node
    if zone:
        ep["zone"] = zone
    return ep


def desired_groups(svc: Obj, pods: list[Obj],
                   zones: dict[str, str] | None = None) -> dict[str, Group]:
    """The endpoints the Service should have, grouped by resolved port list."""
    zones = zones or {}
    spec = svc.get("spec") or {}
    svc_ports = spec.get("ports") or []
    addr_type = sp.address_type(svc)
    groups: dict[str, Group] = {}
    for pod in pods:
        if not sp.should_be_in_endpoints(pod, True):
            continue
        ip = sp.pod_ip(svc, pod)
        if ip is None:
            continue
        ports: list[Obj] = []
        for p in svc_ports:
            num = sp.find_port(pod, p)
            if num is None:
                continue
            port: Obj = {"name": p.get("name") or "", "port": num,
                         "protocol": p.get("protocol") or "TCP"}
            if p.get("appProtocol"):
                port["appProtocol"] = p["appProtocol"]
            ports.append(port)
        if svc_ports and not ports:
            continue
        gk = group_key(addr_type, ports)
        group = groups.get(gk)
        if group is None:
            group = groups[gk] = Group(addr_type, ports)
        node = (pod.get("spec") or {}).get("nodeName") or ""
        ep = slice_endpoint(svc, pod, ip, zones.get(node))
        group.endpoints[(ip, pod["metadata"].get("uid") or "")] = ep
    if not groups:
        groups[group_key(addr_type, [])] = Group(addr_type, [])  # the placeholder
    return groups


def slice_meta(svc: Obj) -> Obj:
    meta = svc["metadata"]
    labels = {k: v for k, v in (meta.get("labels") or {}).items()
              if k not in (sp.SERVICE_NAME_LABEL, sp.MANAGED_BY_LABEL, sp.HEADLESS_LABEL)}
    labels[sp.SERVICE_NAME_LABEL] = meta["name"]
    labels[sp.MANAGED_BY_LABEL] = CONTROLLER_NAME
    if sp.is_headless(svc):
        labels[sp.HEADLESS_LABEL] = ""
    owner = {"apiVersion": "v1", "kind": "Service", "name": meta["name"],
             "uid": meta.get("uid"), "controller": True, "blockOwnerDeletion": True}
    return {"labels": labels, "ownerReferences": [owner], "generateName": f"{meta['name']}-",
            "namespace": meta.get("namespace")}


class EndpointSliceController(sp.ServicePodsController):
    name = "endpointslice"
    managed_by = CONTROLLER_NAME

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        slice_kind = kinds.by_resource("discovery.k8s.io", "endpointslices")
        assert slice_kind is not None
        self.slice_kind = slice_kind
        self.nodes = ctx.informers.informer(("", "nodes"))
        self.slices = ctx.informers.informer(slice_kind)
        self.owned_index = f"owner-{self.managed_by}"
        self.slices.add_index(self.owned_index, _owned(self.managed_by))
        self.expectations = Expectations(ctx.clock)
        self.slices.add_handlers(add=self._slice_changed,
                                 update=lambda _o, n: self._slice_changed(n),
                                 delete=self._slice_changed)

    def _slice_changed(self, s: Obj) -> None:
        for key in _owned(self.managed_by)(s):
            self.queue.add(key)

    def owned_slices(self, key: str) -> list[Obj]:
        return self.slices.by_index(self.owned_index, key)

    def _zones(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for node in self.nodes.list():
            zone = (node["metadata"].get("labels") or {}).get(ZONE_LABEL)
            if zone:
                out[node["metadata"]["name"]] = zone
        return out

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        if not self.expectations.satisfied(key, ns, self.slices):
            self.queue.add_after(key, REQUEUE_DELAY)
            return
        svc = self.services.get(ns, name)
        existing = self.owned_slices(key)
        wanted = svc is not None and bool(sp.selector_of(svc)) and \
            (svc.get("spec") or {}).get("type") != "ExternalName"
        if svc is None or not wanted:
            self.triggers.forget(key)
            for s in existing:
                await self._delete(key, s)
            if svc is None:
                self.expectations.forget(key)
            return
        pods = sp.selected_pods(self.pods, svc)
        zones = self._zones() if len(self.nodes) else {}
        groups = desired_groups(svc, pods, zones)
        meta = slice_meta(svc)
        trigger = self.triggers.take(key)
        if trigger is not None:
            meta["annotations"] = {sp.TRIGGER_TIME_ANNOTATION: sp.rfc3339_nano(trigger)}
        todo = plan(groups, existing, meta)
        try:
            await self.apply(key, ns, todo)
        except errors.StatusError:
            if trigger is not None:
                self.triggers.note(key)
            raise

    async def apply(self, key: str, ns: str | None, todo: Any) -> None:
        """Creates first, then updates, then deletes, so endpoints never vanish between."""
        for s in todo.create:
            try:
                made = await self.client.create(self.slice_kind, ns, s)
            except errors.StatusError as exc:
                if exc.code == 403:
                    return  # the namespace is terminating
                raise
            self.expectations.wrote(key, made)
        for s in todo.update:
            written = await self.client.update(self.slice_kind, s)
            self.expectations.wrote(key, written)
        for s in todo.delete:
            await self._delete(key, s)

    async def _delete(self, key: str, s: Obj) -> None:
        ns, name = s["metadata"].get("namespace"), s["metadata"]["name"]
        try:
            await self.client.delete(self.slice_kind, ns, name, options={
                "preconditions": {"uid": s["metadata"].get("uid")}})
        except errors.StatusError as exc:
            if exc.code not in (404, 409):
                raise
        self.expectations.wrote(key, None, deleted=s)
