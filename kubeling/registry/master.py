"""The ``kubernetes`` Service in ``default`` and where it leads: the API server itself.

Pods reach the API at ``https://kubernetes.default.svc`` (10.43.0.1:443). As
kube-apiserver's endpoint reconciler does, the API server keeps, once it
listens, the Service's port 443 (``https``) pointing at its real port, the
Endpoints ``default/kubernetes`` (labelled ``skip-mirror`` so the mirroring
controller leaves it alone) and the EndpointSlice ``default/kubernetes``
(only the ``kubernetes.io/service-name`` label: no controller manages it) at
its advertised address. Every write is a no-op when nothing changed, so a
restart, or a new address, just converges.
"""

from __future__ import annotations

from typing import Any

from kubeling.api import errors, kinds
from kubeling.api.kinds import Kind

Obj = dict[str, Any]

NAMESPACE = "default"
NAME = "kubernetes"
PORT_NAME = "https"
SERVICE_PORT = 443
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _kind(group: str, resource: str) -> Kind:
    k = kinds.by_resource(group, resource)
    assert k is not None
    return k


def service(cluster_ip: str, target_port: int) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip,
                     "ports": service_ports(target_port)}}


def service_ports(target_port: int) -> list[Obj]:
    return [{"name": PORT_NAME, "port": SERVICE_PORT, "protocol": "TCP",
             "targetPort": target_port}]


def endpoints(ip: str, port: int) -> Obj:
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {SKIP_MIRROR_LABEL: "true"}},
            "subsets": endpoint_subsets(ip, port)}


def endpoint_subsets(ip: str, port: int) -> list[Obj]:
    return [{"addresses": [{"ip": ip}],
             "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]}]


def endpoint_slice(ip: str, port: int) -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {SERVICE_NAME_LABEL: NAME}},
            "addressType": "IPv6" if ":" in ip else "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
            "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]}


class MasterEndpoints:
    """Writes through the registry's own verbs (``create`` and ``mutate``)."""

    def __init__(self, registry: Any, opts: Any) -> None:
        self.registry = registry
        self.opts = opts

    async def _ensure(self, kind: Kind, want: Obj, update: Any) -> None:
        reg = self.registry
        if reg.cache.get(kind.key(NAMESPACE, NAME)) is None:
            try:
                await reg.create(kind, NAMESPACE, want, self.opts)
                return
            except errors.StatusError as exc:
                if exc.code != 409:
                    raise
        await reg.mutate(kind, NAMESPACE, NAME, update, self.opts)

    async def reconcile(self, cluster_ip: str, ip: str, port: int) -> None:
        def svc_update(obj: Obj) -> Obj:
            ports = obj.setdefault("spec", {}).get("ports") or []
            https = next((p for p in ports if p.get("name") == PORT_NAME), None)
            if https is None or https.get("port") != SERVICE_PORT or \
                    https.get("targetPort") != port or len(ports) != 1:
                obj["spec"]["ports"] = service_ports(port)
            return obj

        def ep_update(obj: Obj) -> Obj:
            labels = obj["metadata"].setdefault("labels", {}) or {}
            labels[SKIP_MIRROR_LABEL] = "true"
            obj["metadata"]["labels"] = labels
            obj["subsets"] = endpoint_subsets(ip, port)
            return obj

        def slice_update(obj: Obj) -> Obj:
            want = endpoint_slice(ip, port)
            labels = obj["metadata"].setdefault("labels", {}) or {}
            labels[SERVICE_NAME_LABEL] = NAME
            obj["metadata"]["labels"] = labels
            for f in ("endpoints", "ports"):
                obj[f] = want[f]
            return obj

        await self._ensure(_kind("", "services"), service(cluster_ip, port), svc_update)
        await self._ensure(_kind("", "endpoints"), endpoints(ip, port), ep_update)
        slice_kind = _kind("discovery.k8s.io", "endpointslices")
        current = self.registry.cache.get(slice_kind.key(NAMESPACE, NAME))
        want_type = endpoint_slice(ip, port)["addressType"]
        if current is not None and current.obj.get("addressType") != want_type:
            # addressType is immutable: a new address family means a new slice.
            try:
                await self.registry.delete(slice_kind, NAMESPACE, NAME, None, self.opts)
            except errors.StatusError as exc:
                if exc.code != 404:
                    raise
        await self._ensure(slice_kind, endpoint_slice(ip, port), slice_update)
