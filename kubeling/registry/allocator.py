"""Cluster IPs and node ports for Services, allocated when a Service is written.

Kubernetes allocates both in the API server, from the service CIDR and the
node port range. The addresses in use are those of the stored Services (the
watch cache), plus what was handed out but not yet stored; one lock keeps
two concurrent creates from taking the same address. (With several API
servers over etcd this becomes a stored allocation map; one server needs none.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from kubeling.api import errors

Obj = dict[str, Any]

DEFAULT_SERVICE_CIDR = "10.43.0.0/16"
NODE_PORT_RANGE = (30000, 32767)


class ServiceAllocator:
    def __init__(self, cidr: str = DEFAULT_SERVICE_CIDR) -> None:
        self.network = ipaddress.ip_network(cidr)
        self._pending_ips: set[str] = set()
        self._pending_ports: set[int] = set()

    @property
    def first_ip(self) -> str:
        return str(self.network.network_address + 1)

    def allocate(self, svc: Obj, existing: Iterable[Obj], old: Obj | None = None) -> None:
        """Fill in spec.clusterIP(s) and node ports that the Service needs and lacks."""
        spec = svc.setdefault("spec", {})
        used_ips: set[str] = set(self._pending_ips)
        used_ports: set[int] = set(self._pending_ports)
        me = (svc.get("metadata") or {}).get("uid")
        for other in existing:
            if (other.get("metadata") or {}).get("uid") == me:
                continue
            ospec = other.get("spec") or {}
            used_ips.update(ospec.get("clusterIPs") or [ospec.get("clusterIP") or ""])
            for p in ospec.get("ports") or []:
                if p.get("nodePort"):
                    used_ports.add(int(p["nodePort"]))
        svc_type = spec.get("type", "ClusterIP")
        if svc_type != "ExternalName":
            ip = spec.get("clusterIP") or ""
            if ip == "":
                ip = self._next_ip(used_ips)
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
            elif ip != "None":
                if old is None and ip in used_ips:
                    raise errors.invalid("Service", svc["metadata"].get("name", ""), [{
                        "reason": "FieldValueInvalid",
                        "message": f'Invalid value: "{ip}": provided IP is already allocated',
                        "field": "spec.clusterIPs"}])
                spec.setdefault("clusterIPs", [ip])
        if svc_type in ("NodePort", "LoadBalancer"):
            for i, p in enumerate(spec.get("ports") or []):
                port = p.get("nodePort")
                if not port:
                    port = self._next_port(used_ports)
                    p["nodePort"] = port
                elif old is None and int(port) in used_ports:
                    raise errors.invalid("Service", svc["metadata"].get("name", ""), [{
                        "reason": "FieldValueInvalid",
                        "message": f"Invalid value: {port}: provided port is already allocated",
                        "field": f"spec.ports[{i}].nodePort"}])
                used_ports.add(int(port))

    def _next_ip(self, used: set[str]) -> str:
        # The first address is kept for the kubernetes Service in default.
        for host in self.network.hosts():
            s = str(host)
            if s not in used:
                self._pending_ips.add(s)
                return s
        raise errors.StatusError(500, "InternalError",
                                 "Internal error occurred: failed to allocate a serviceIP: "
                                 "range is full")

    def _next_port(self, used: set[int]) -> int:
        lo, hi = NODE_PORT_RANGE
        for port in range(lo, hi + 1):
            if port not in used:
                self._pending_ports.add(port)
                return port
        raise errors.StatusError(500, "InternalError",
                                 "Internal error occurred: failed to allocate a nodePort: "
                                 "range is full")

    def settle(self) -> None:
        """Forget pending allocations once they are stored (or abandoned)."""
        self._pending_ips.clear()
        self._pending_ports.clear()
