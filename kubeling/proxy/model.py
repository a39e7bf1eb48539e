"""What the proxy must program, computed from Services and EndpointSlices alone.

Every backend (nftables, userspace) works from the same pure description: one
:class:`ServicePort` per port of every proxied Service, carrying the addresses
it is reached on (cluster IP, node port, external and load-balancer IPs), its
session affinity and traffic policies, and the endpoints each kind of traffic
may go to. Keeping this pure makes the decisions kube-proxy takes (which
endpoints are usable, when traffic is rejected or dropped) testable without a
kernel.

Endpoint choice follows kube-proxy's: ready endpoints; when none are ready,
endpoints that are serving and terminating (so a rollout's last pods still get
traffic). A traffic policy of ``Local`` narrows the choice to this node's
endpoints. IPv4 only: IPv6 cluster IPs and slices are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kubeling.client.interface import Obj

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
DEFAULT_AFFINITY_TIMEOUT = 10800
PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True, order=True)
class Endpoint:
    """One address:port of a service port, with its slice conditions."""

    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node: str = ""

    @property
    def addr(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service, as the proxy programs it."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # TCP | UDP | SCTP
    port: int
    cluster_ip: str = ""  # "" for headless (then only node ports / external IPs, if any)
    node_port: int = 0
    external_ips: tuple[str, ...] = ()  # spec.externalIPs and status.loadBalancer ingress IPs
    affinity_timeout: int = 0  # seconds of ClientIP affinity; 0: none
    internal_local: bool = False  # internalTrafficPolicy Local
    external_local: bool = False  # externalTrafficPolicy Local
    all_endpoints: tuple[Endpoint, ...] = ()  # every endpoint of the port, sorted
    cluster_endpoints: tuple[Endpoint, ...] = ()  # usable cluster-wide
    local_endpoints: tuple[Endpoint, ...] = ()  # usable and on this node

    @property
    def key(self) -> str:
        """``ns/name/proto/portname`` (kube-proxy's ServicePortName, with the protocol)."""
        return f"{self.namespace}/{self.name}/{self.protocol.lower()}/{self.port_name}"

    @property
    def has_external(self) -> bool:
        return bool(self.node_port or self.external_ips)

    @property
    def internal_endpoints(self) -> tuple[Endpoint, ...]:
        """Where cluster-IP traffic goes."""
        return self.local_endpoints if self.internal_local else self.cluster_endpoints

    @property
    def external_endpoints(self) -> tuple[Endpoint, ...]:
        """Where node-port, external-IP and load-balancer traffic goes."""
        return self.local_endpoints if self.external_local else self.cluster_endpoints


@dataclass
class ServiceInfo:
    """The proxied ports of one Service plus what the metrics want to know."""

    ports: list[ServicePort] = field(default_factory=list)
    trigger_times: list[str] = field(default_factory=list)


def usable(endpoints: Iterable[Endpoint]) -> tuple[Endpoint, ...]:
    """Ready endpoints, else serving+terminating ones (kube-proxy's fallback)."""
    eps = list(endpoints)
    ready = tuple(e for e in eps if e.ready)
    if ready:
        return ready
    return tuple(e for e in eps if e.serving and e.terminating)


def _ipv4(ip: str) -> bool:
    parts = ip.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def slice_endpoints(slices: Sequence[Obj], port_name: str, protocol: str) -> list[Endpoint]:
    """Endpoints of the slices' port called ``port_name`` (first address of each endpoint;
    duplicates across slices collapse, a ready copy winning)."""
    found: dict[tuple[str, int], Endpoint] = {}
    for sl in slices:
        if (sl.get("addressType") or "IPv4") != "IPv4":
            continue
        target = 0
        for p in sl.get("ports") or ():
            if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == protocol:
                target = int(p.get("port") or 0)
                break
        if not target:
            continue
        for ep in sl.get("endpoints") or ():
            addrs = ep.get("addresses") or ()
            if not addrs or not _ipv4(addrs[0]):
                continue
            cond = ep.get("conditions") or {}
            ready = cond.get("ready")
            ready = True if ready is None else bool(ready)  # nil means ready
            serving = cond.get("serving")
            serving = ready if serving is None else bool(serving)
            e = Endpoint(addrs[0], target, ready, serving, bool(cond.get("terminating")),
                         ep.get("nodeName") or "")
            old = found.get((e.ip, e.port))
            if old is None or (e.ready and not old.ready):
                found[(e.ip, e.port)] = e
    return sorted(found.values())


def service_ports(svc: Obj, slices: Sequence[Obj], node_name: str) -> ServiceInfo:
    """The proxied ports of ``svc`` given the EndpointSlices labelled with its name."""
    info = ServiceInfo()
    spec = svc.get("spec") or {}
    meta = svc["metadata"]
    kind = spec.get("type") or "ClusterIP"
    if kind == "ExternalName":
        return info
    cluster_ip = spec.get("clusterIP") or ""
    if cluster_ip == "None" or not _ipv4(cluster_ip):
        cluster_ip = ""
    external = [ip for ip in spec.get("externalIPs") or () if _ipv4(ip)]
    if kind == "LoadBalancer":
        for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ():
            ip = ing.get("ip") or ""
            if _ipv4(ip) and ip not in external:
                external.append(ip)
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
    internal_local = spec.get("internalTrafficPolicy") == "Local"
    external_local = kind in ("NodePort", "LoadBalancer") and \
        spec.get("externalTrafficPolicy") == "Local"
    for sl in slices:
        t = (sl["metadata"].get("annotations") or {}).get(TRIGGER_TIME_ANNOTATION)
        if t:
            info.trigger_times.append(t)
    for p in spec.get("ports") or ():
        protocol = p.get("protocol") or "TCP"
        if protocol not in PROTOCOLS:
            continue
        node_port = int(p.get("nodePort") or 0) if kind in ("NodePort", "LoadBalancer") else 0
        if not cluster_ip and not node_port and not external:
            continue  # headless: DNS only
        name = p.get("name") or ""
        eps = slice_endpoints(slices, name, protocol)
        info.ports.append(ServicePort(
            namespace=meta.get("namespace") or "default", name=meta["name"], port_name=name,
            protocol=protocol, port=int(p["port"]), cluster_ip=cluster_ip, node_port=node_port,
            external_ips=tuple(external), affinity_timeout=affinity,
            internal_local=internal_local, external_local=external_local,
            all_endpoints=tuple(eps), cluster_endpoints=usable(eps),
            local_endpoints=usable(e for e in eps if e.node == node_name)))
    return info
