"""Services seen from inside a pod: the ``<SVC>_SERVICE_HOST`` variables and the cluster DNS.

Before cluster DNS existed, containers found Services through environment
variables, in two forms the kubelet still writes (pkg/kubelet/envvars): the
Kubernetes form (``REDIS_MASTER_SERVICE_HOST``, ``REDIS_MASTER_SERVICE_PORT``,
``REDIS_MASTER_SERVICE_PORT_<PORTNAME>``) and Docker's links form
(``REDIS_MASTER_PORT=tcp://10.43.0.11:6379``, ``REDIS_MASTER_PORT_6379_TCP``
and its ``_PROTO``, ``_PORT``, ``_ADDR``). A pod gets them for every Service of
its namespace that has a cluster IP (``enableServiceLinks``, default true) and
always for the API server's ``kubernetes`` Service of ``default`` (the
kubelet's getServiceEnvVarMap).

The kubelet reads Services from an informer; ``ServiceSource`` is the little it
needs of one. The cluster DNS address, when not given by flag, is the cluster
IP of ``kube-system/kube-dns`` read the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from kubeling.client.interface import Obj

MASTER_SERVICES = ("kubernetes",)
DNS_SERVICE = ("kube-system", "kube-dns")


@runtime_checkable
class ServiceSource(Protocol):
    """Services as the agent's informer holds them."""

    def service(self, namespace: str, name: str) -> Obj | None: ...

    def services(self, namespace: str) -> list[Obj]: ...


def has_cluster_ip(service: Obj) -> bool:
    """A Service with a virtual IP: not headless (``None``), not ExternalName (empty)."""
    ip = (service.get("spec") or {}).get("clusterIP") or ""
    return ip not in ("", "None")


def env_name(name: str) -> str:
    """``redis-master`` -> ``REDIS_MASTER``."""
    return name.replace("-", "_").upper()


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def service_env(services: Iterable[Obj]) -> list[tuple[str, str]]:
    """The variables for ``services``, in the kubelet's order (per Service: host, first port,
    named ports, then the links form for every port)."""
    out: list[tuple[str, str]] = []
    for svc in services:
        if not has_cluster_ip(svc):
            continue
        spec = svc.get("spec") or {}
        ports = spec.get("ports") or []
        if not ports:
            continue
        ip = str(spec["clusterIP"])
        prefix = env_name(svc["metadata"]["name"])
        out.append((f"{prefix}_SERVICE_HOST", ip))
        out.append((f"{prefix}_SERVICE_PORT", str(int(ports[0].get("port", 0)))))
        for port in ports:
            if port.get("name"):
                out.append((f"{prefix}_SERVICE_PORT_{env_name(port['name'])}",
                            str(int(port.get("port", 0)))))
        for i, port in enumerate(ports):
            number = int(port.get("port", 0))
            protocol = str(port.get("protocol") or "TCP")
            url = f"{protocol.lower()}://{_host_port(ip, number)}"
            if i == 0:
                out.append((f"{prefix}_PORT", url))
            base = f"{prefix}_PORT_{number}_{protocol.upper()}"
            out.extend([(base, url), (f"{base}_PROTO", protocol.lower()),
                        (f"{base}_PORT", str(number)), (f"{base}_ADDR", ip)])
    return out


def pod_services(pod: Obj, source: ServiceSource) -> list[Obj]:
    """The Services whose variables ``pod`` gets: the master Services of ``default``, and
    with ``enableServiceLinks`` (default true) every Service of its namespace with a cluster
    IP (a same-named Service of the pod's own namespace wins)."""
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    links = (pod.get("spec") or {}).get("enableServiceLinks")
    chosen: dict[str, Obj] = {}
    for name in MASTER_SERVICES:
        svc = source.service("default", name)
        if svc is not None and has_cluster_ip(svc):
            chosen[name] = svc
    if links is None or links:
        for svc in source.services(namespace):
            if has_cluster_ip(svc):
                chosen[svc["metadata"]["name"]] = svc
    return [chosen[name] for name in sorted(chosen)]


def pod_service_env(pod: Obj, source: object) -> dict[str, str]:
    """The service variables of ``pod``; none when ``source`` holds no Services."""
    if not isinstance(source, ServiceSource):
        return {}
    return dict(service_env(pod_services(pod, source)))


def discovered_cluster_dns(source: object) -> tuple[str, ...]:
    """The cluster IPs of ``kube-system/kube-dns``; empty when it is not known."""
    if not isinstance(source, ServiceSource):
        return ()
    svc = source.service(*DNS_SERVICE)
    if svc is None or not has_cluster_ip(svc):
        return ()
    spec = svc.get("spec") or {}
    ips = [ip for ip in spec.get("clusterIPs") or () if ip and ip != "None"]
    return tuple(ips or [str(spec["clusterIP"])])
