"""Publishing the cluster DNS as the Service ``kube-system/kube-dns``.

Pods are told to use the DNS Service's cluster IP (10.43.0.10 by default);
the service proxy sends that address to wherever the DNS server really
listens. The DNS here is no pod, so its Service has no selector and its
Endpoints are written by hand (as kubeadm's kube-dns Service looks, with the
same labels), pointing at the node address and port of the running server.
The EndpointSlice comes from the Endpoints through the mirroring controller.

:func:`publish_service` is idempotent and run at every start: what differs
(a new address or port after a restart, a changed cluster IP) is fixed; what
matches is left alone.
"""

from __future__ import annotations

import logging
from typing import Any

from kubeling.api import errors, kinds
from kubeling.api.jsoncopy import json_copy
from kubeling.client.interface import Client, Obj

log = logging.getLogger("kubeling.dns.publish")

NAMESPACE = "kube-system"
NAME = "kube-dns"
LABELS = {"k8s-app": "kube-dns", "kubernetes.io/name": "KubeDNS",
          "kubernetes.io/cluster-service": "true"}


def _kind(resource: str) -> kinds.Kind:
    found = kinds.by_resource("", resource)
    assert found is not None, resource
    return found


def service_ports(port: int) -> list[Obj]:
    return [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": port},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": port}]


def endpoint_subsets(address: str, port: int) -> list[Obj]:
    return [{"addresses": [{"ip": address}],
             "ports": [{"name": "dns", "port": port, "protocol": "UDP"},
                       {"name": "dns-tcp", "port": port, "protocol": "TCP"}]}]


def _ports_match(have: list[Obj], want: list[Obj]) -> bool:
    def norm(ports: list[Obj]) -> list[tuple[Any, ...]]:
        return sorted((p.get("name"), p.get("port"), p.get("protocol") or "TCP",
                       p.get("targetPort")) for p in ports)
    return norm(have) == norm(want)


def _subsets_match(have: list[Obj], want: list[Obj]) -> bool:
    def norm(subsets: list[Obj]) -> list[tuple[Any, ...]]:
        out = []
        for s in subsets:
            ips = tuple(sorted(a.get("ip") for a in s.get("addresses") or ()))
            ports = tuple(sorted((p.get("name"), p.get("port"), p.get("protocol") or "TCP")
                                 for p in s.get("ports") or ()))
            out.append((ips, ports, bool(s.get("notReadyAddresses"))))
        return sorted(out)
    return norm(have) == norm(want)


async def _publish_svc(client: Client, cluster_ip: str, port: int) -> None:
    kind = _kind("services")
    ports = service_ports(port)
    want_spec: Obj = {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "type": "ClusterIP",
                 "ports": ports}
    fresh = {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
             "spec": want_spec}
    try:
        svc = await client.get(kind, NAMESPACE, NAME)
    except errors.StatusError as exc:
        if exc.code != 404:
            raise
        await client.create(kind, NAMESPACE, fresh)
        log.info("created Service %s/%s at %s", NAMESPACE, NAME, cluster_ip)
        return
    spec = svc.get("spec") or {}
    if spec.get("clusterIP") != cluster_ip or spec.get("selector") or \
            spec.get("type", "ClusterIP") != "ClusterIP":
        # the cluster IP cannot change in place: replace the Service
        await client.delete(kind, NAMESPACE, NAME, options={
            "preconditions": {"uid": svc["metadata"]["uid"]}})
        await client.create(kind, NAMESPACE, fresh)
        log.info("replaced Service %s/%s (cluster IP %s -> %s)", NAMESPACE, NAME,
                 spec.get("clusterIP"), cluster_ip)
        return
    labels = svc["metadata"].get("labels") or {}
    if _ports_match(spec.get("ports") or [], ports) and \
            all(labels.get(k) == v for k, v in LABELS.items()):
        return
    new = json_copy(svc)
    new["metadata"]["labels"] = {**labels, **LABELS}
    new["spec"]["ports"] = ports
    await client.update(kind, new)
    log.info("updated the ports of Service %s/%s (target port %d)", NAMESPACE, NAME, port)


async def _publish_endpoints(client: Client, address: str, port: int) -> None:
    kind = _kind("endpoints")
    subsets = endpoint_subsets(address, port)
    try:
        ep = await client.get(kind, NAMESPACE, NAME)
    except errors.StatusError as exc:
        if exc.code != 404:
            raise
        await client.create(kind, NAMESPACE, {
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
            "subsets": subsets})
        log.info("created Endpoints %s/%s -> %s:%d", NAMESPACE, NAME, address, port)
        return
    labels = ep["metadata"].get("labels") or {}
    if _subsets_match(ep.get("subsets") or [], subsets) and \
            all(labels.get(k) == v for k, v in LABELS.items()):
        return
    new = json_copy(ep)
    new["metadata"]["labels"] = {**labels, **LABELS}
    new["subsets"] = subsets
    await client.update(kind, new)
    log.info("updated Endpoints %s/%s -> %s:%d", NAMESPACE, NAME, address, port)


async def publish_service(client: Client, *, cluster_ip: str, address: str,
                          port: int) -> None:
    """Make ``kube-system/kube-dns`` a selectorless ClusterIP Service on ``cluster_ip`` (ports
    dns 53/UDP and dns-tcp 53/TCP, target ``port``) whose Endpoints are ``address:port``.
    A write that loses a race (409) is retried from a fresh read."""
    for attempt in range(5):
        try:
            await _publish_svc(client, cluster_ip, port)
            await _publish_endpoints(client, address, port)
            return
        except errors.StatusError as exc:
            if exc.code != 409 or attempt == 4:
                raise
