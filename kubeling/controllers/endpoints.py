"""The Endpoints controller ("endpoint"): one v1 Endpoints per Service with a selector.

The legacy Endpoints object is still what ``kubectl get endpoints`` and many
tools read. As kube-controller-manager's endpoints controller does, every
selected pod with an IP (not terminal, not terminating unless
``publishNotReadyAddresses``) gives one address per service port it offers;
ready pods go to ``addresses``, the others to ``notReadyAddresses``; then the
subsets are repacked so that addresses offering the same ports (with the same
readiness) share one subset. Services without a selector and ExternalName
services are left alone (their Endpoints are the user's); the Endpoints of a
deleted Service are deleted, and at start-up every Endpoints without a Service
is looked at once, as Kubernetes' ``checkLeftoverEndpoints`` does.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from kubeling.api import errors, kinds
from kubeling.api.jsoncopy import json_copy
from kubeling.client.informer import key_of, split_key
from kubeling.client.interface import Obj
from kubeling.controllers import servicepods as sp
from kubeling.controllers.base import ControllerContext

log = logging.getLogger("kubeling.controllers.endpoints")

MAX_CAPACITY = 1000
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"


def _addr_key(addr: Obj) -> tuple[str, str]:
    return (addr["ip"], (addr.get("targetRef") or {}).get("uid") or "")


def _port_key(port: Obj) -> tuple[str, int, str, str]:
    return (port.get("name") or "", int(port.get("port") or 0), port.get("protocol") or "TCP",
            port.get("appProtocol") or "")


def pod_address(svc: Obj, pod: Obj) -> Obj | None:
    ip = sp.pod_ip(svc, pod)
    if ip is None:
        return None
    addr: Obj = {"ip": ip, "targetRef": sp.target_ref(pod)}
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        addr["nodeName"] = node
    hostname = sp.hostname_for(svc, pod)
    if hostname:
        addr["hostname"] = hostname
    return addr


def compute_subsets(svc: Obj, pods: list[Obj]) -> list[Obj]:
    """The Service's subsets in Kubernetes' canonical (repacked, sorted) layout."""
    spec = svc.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    svc_ports = spec.get("ports") or []
    if not svc_ports and not sp.is_headless(svc):
        return []
    # port -> address -> ready; "not ready" wins when one address is seen twice.
    by_port: dict[tuple[str, int, str, str], dict[tuple[str, str], bool]] = {}
    port_objs: dict[tuple[str, int, str, str], Obj] = {}
    addrs: dict[tuple[str, str], Obj] = {}
    for pod in pods:
        if not sp.should_be_in_endpoints(pod, publish):
            continue
        addr = pod_address(svc, pod)
        if addr is None:
            continue
        ready = publish or sp.pod_ready(pod)
        ak = _addr_key(addr)
        addrs.setdefault(ak, addr)
        ports: list[Obj] = []
        if not svc_ports:
            ports = [{"port": -1}]  # headless without ports: addresses only
        for p in svc_ports:
            num = sp.find_port(pod, p)
            if num is None:
                continue
            ep: Obj = {"port": num, "protocol": p.get("protocol") or "TCP"}
            if p.get("name"):
                ep["name"] = p["name"]
            if p.get("appProtocol"):
                ep["appProtocol"] = p["appProtocol"]
            ports.append(ep)
        for ep in ports:
            pk = _port_key(ep)
            port_objs[pk] = ep
            seen = by_port.setdefault(pk, {})
            seen[ak] = seen.get(ak, True) and ready
    groups: dict[frozenset[tuple[tuple[str, str], bool]], list[tuple[str, int, str, str]]] = {}
    for pk, members in by_port.items():
        groups.setdefault(frozenset(members.items()), []).append(pk)
    subsets: list[Obj] = []
    for group, pks in groups.items():
        subset: Obj = {}
        ready_addrs = sorted(k for k, r in group if r)
        not_ready = sorted(k for k, r in group if not r)
        if ready_addrs:
            subset["addresses"] = [addrs[k] for k in ready_addrs]
        if not_ready:
            subset["notReadyAddresses"] = [addrs[k] for k in not_ready]
        ports = [port_objs[pk] for pk in sorted(pks) if port_objs[pk]["port"] != -1]
        if ports:
            subset["ports"] = ports
        subsets.append(subset)
    subsets.sort(key=lambda s: json.dumps(s, sort_keys=True))
    return subsets


def truncate(subsets: list[Obj]) -> bool:
    """Keep at most MAX_CAPACITY addresses, ready ones first, spread over the subsets."""
    ready = sum(len(s.get("addresses") or ()) for s in subsets)
    not_ready = sum(len(s.get("notReadyAddresses") or ()) for s in subsets)
    if ready + not_ready <= MAX_CAPACITY:
        return False
    field = "addresses" if ready > MAX_CAPACITY else "notReadyAddresses"
    budget = MAX_CAPACITY if ready > MAX_CAPACITY else MAX_CAPACITY - ready
    total = ready if ready > MAX_CAPACITY else not_ready
    left = budget
    for s in subsets:
        have = s.get(field) or []
        take = min(-(-len(have) * budget // total), left)
        s[field] = have[:take]
        left -= len(s[field])
        if field == "addresses":
            s.pop("notReadyAddresses", None)
    return True


class EndpointsController(sp.ServicePodsController):
    name = "endpoint"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        ep_kind = kinds.by_resource("", "endpoints")
        assert ep_kind is not None
        self.ep_kind = ep_kind
        self.endpoints = ctx.informers.informer(ep_kind)
        self.endpoints.add_handlers(delete=self.enqueue)

    async def run(self, workers: int | None = None) -> None:
        await self.wait_synced()
        for ep in self.endpoints.list():
            if sp.LEADER_ANNOTATION not in (ep["metadata"].get("annotations") or {}):
                self.queue.add(key_of(ep))
        await super().run(workers)

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.services.get(ns, name)
        if svc is None:
            self.triggers.forget(key)
            try:
                await self.client.delete(self.ep_kind, ns, name)
                log.info("deleted endpoints %s (its service is gone)", key)
            except errors.StatusError as exc:
                if exc.code != 404:
                    raise
            return
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName" or not sp.selector_of(svc):
            self.triggers.forget(key)
            return
        pods = sp.selected_pods(self.pods, svc)
        subsets = compute_subsets(svc, pods)
        trigger = self.triggers.take(key)
        current = self.endpoints.get(ns, name)
        labels: dict[str, str] = dict(svc["metadata"].get("labels") or {})
        if sp.is_headless(svc):
            labels[sp.HEADLESS_LABEL] = ""
        over = truncate(subsets)
        if current is not None:
            annotations = current["metadata"].get("annotations") or {}
            if sp.canon(current.get("subsets")) == sp.canon(subsets) and \
                    (current["metadata"].get("labels") or {}) == labels and \
                    (OVER_CAPACITY_ANNOTATION in annotations) == over:
                return
        new: Obj = json_copy(current) if current is not None else {
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "namespace": ns}}
        meta: dict[str, Any] = new["metadata"]
        meta["labels"] = labels
        ann: dict[str, str] = dict(meta.get("annotations") or {})
        if trigger is not None:
            ann[sp.TRIGGER_TIME_ANNOTATION] = sp.rfc3339_nano(trigger)
        else:
            ann.pop(sp.TRIGGER_TIME_ANNOTATION, None)
        if over:
            ann[OVER_CAPACITY_ANNOTATION] = "truncated"
        else:
            ann.pop(OVER_CAPACITY_ANNOTATION, None)
        meta["annotations"] = ann
        new["subsets"] = subsets
        try:
            if current is None:
                await self.client.create(self.ep_kind, ns, new)
            else:
                await self.client.update(self.ep_kind, new)
        except errors.StatusError as exc:
            if current is None and exc.code == 403:
                return  # the namespace is terminating
            if trigger is not None:
                self.triggers.note(key)
            raise
