"""Cluster IPs and node ports for Services, allocated when a Service is written.

Kubernetes allocates both in the API server, from the service CIDR and the
node port range. The addresses in use are those of the stored Services (the
watch cache), plus what was handed out but not yet stored; one lock in the
registry keeps two concurrent writes from taking the same address, and a
deleted Service's addresses are free again as soon as it is gone from the
cache. (With several API servers over etcd this becomes a stored allocation
map; one server needs none.)

Errors are kube-apiserver's: an explicit address outside the range or already
taken is a 422 on ``spec.clusterIPs`` / ``spec.ports[i].nodePort`` with its
wording. As Kubernetes does since 1.24 (KEP-3070), dynamic allocation starts
above a low *static band* of the range (256 addresses of a /16; 86 node
ports of the default range) and only falls back into it when the rest is
full, so addresses people choose by hand stay free. The first address always
belongs to the ``kubernetes`` Service and the tenth to the cluster DNS
(``kube-system/kube-dns``, 10.43.0.10 by default); both are never handed out
dynamically, so those Services can always take them, even when created after
many others (the DNS Service is created by the DNS component, not at start-up).
Dynamic allocation walks on from where it last stopped rather than from the
start, so a freshly released address is not handed straight to the next
Service (Kubernetes picks at random for the same reason).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from typing import Any

from kubeling.api import errors

Obj = dict[str, Any]

DEFAULT_SERVICE_CIDR = "10.43.0.0/16"
NODE_PORT_RANGE = (30000, 32767)
DNS_OFFSET = 10


def _static_band(size: int, lo: int, hi: int, factor: int) -> int:
    return min(max(lo, size // factor), hi)


def _invalid(svc: Obj, path: str, value: Any, message: str) -> errors.StatusError:
    shown = f'"{value}"' if isinstance(value, str) else \
        "[]string{" + ", ".join(f'"{v}"' for v in value) + "}" if isinstance(value, list) \
        else str(value)
    return errors.invalid("Service", (svc.get("metadata") or {}).get("name", ""), [{
        "reason": "FieldValueInvalid", "message": f"Invalid value: {shown}: {message}",
        "field": path}])


def _node_ports(spec: Obj) -> set[int]:
    out = {int(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")}
    if spec.get("healthCheckNodePort"):
        out.add(int(spec["healthCheckNodePort"]))
    return out


class ServiceAllocator:
    def __init__(self, cidr: str = DEFAULT_SERVICE_CIDR,
                 node_port_range: tuple[int, int] = NODE_PORT_RANGE) -> None:
        self.network = ipaddress.ip_network(cidr)
        self.node_port_range = node_port_range
        self._base = int(self.network.network_address)
        # Usable offsets: 1 .. size (no network address; no broadcast in IPv4).
        self._size = self.network.num_addresses - (2 if self.network.version == 4 else 1)
        self._reserved = {1, DNS_OFFSET}
        self._ip_band = min(_static_band(self._size, 16, 256, 16), self._size)
        lo, hi = node_port_range
        self._port_band = min(_static_band(hi - lo + 1, 16, 128, 32), hi - lo)
        self._ip_cursor = self._ip_band
        self._port_cursor = self._port_band
        self._pending_ips: set[str] = set()
        self._pending_ports: set[int] = set()

    @property
    def first_ip(self) -> str:
        """The ``kubernetes`` Service's address."""
        return str(self.network.network_address + 1)

    @property
    def dns_ip(self) -> str:
        """The cluster DNS Service's address (the tenth)."""
        return str(self.network.network_address + DNS_OFFSET)

    @property
    def range_text(self) -> str:
        lo, hi = self.node_port_range
        return f"{lo}-{hi}"

    def in_range(self, ip: str) -> bool | None:
        """Whether ``ip`` is a usable address of the range; None if it is no IP at all."""
        try:
            parsed = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if parsed.version != self.network.version:
            return False
        offset = int(parsed) - self._base
        return 1 <= offset <= self._size

    def allocate(self, svc: Obj, existing: Iterable[Obj], old: Obj | None = None) -> None:
        """Fill in spec.clusterIP(s) and node ports that the Service needs and lacks, and
        check the ones it asks for; raises 422 as kube-apiserver does."""
        spec = svc.setdefault("spec", {})
        used_ips: set[str] = set(self._pending_ips)
        used_ports: set[int] = set(self._pending_ports)
        me = (svc.get("metadata") or {}).get("uid")
        for other in existing:
            if me and (other.get("metadata") or {}).get("uid") == me:
                continue
            ospec = other.get("spec") or {}
            used_ips.update(ospec.get("clusterIPs") or [ospec.get("clusterIP") or ""])
            used_ports |= _node_ports(ospec)
        old_spec = (old or {}).get("spec") or {}
        self._cluster_ip(svc, spec, old_spec if old is not None else None, used_ips)
        self._ports(svc, spec, old_spec, used_ports)

    def _cluster_ip(self, svc: Obj, spec: Obj, old_spec: Obj | None,
                    used: set[str]) -> None:
        svc_type = spec.get("type", "ClusterIP")
        old_ip = (old_spec or {}).get("clusterIP") or ""
        if svc_type == "ExternalName":
            if old_spec is not None and old_ip and spec.get("clusterIP") in (old_ip, None, ""):
                # Becoming ExternalName drops what only other types have (and frees it).
                for f in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                    spec.pop(f, None)
            return
        ip = spec.get("clusterIP") or ""
        if ip == "":
            ip = self._next_ip(used)
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
            return
        if ip == "None":
            return
        if old_spec is not None and ip == old_ip:
            return  # kept, not allocated again
        ips = spec.get("clusterIPs") or [ip]
        ok = self.in_range(ip)
        if ok is None:
            return  # not an IP: validation says so
        if not ok:
            raise _invalid(svc, "spec.clusterIPs", ips,
                           f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the "
                           f"valid range. The range of valid IPs is {self.network}")
        if ip in used:
            raise _invalid(svc, "spec.clusterIPs", ips,
                           f"failed to allocate IP {ip}: provided IP is already allocated")
        self._pending_ips.add(ip)
        spec.setdefault("clusterIPs", [ip])

    def _ports(self, svc: Obj, spec: Obj, old_spec: Obj, used: set[int]) -> None:
        svc_type = spec.get("type", "ClusterIP")
        if svc_type not in ("NodePort", "LoadBalancer"):
            return
        should_allocate = svc_type == "NodePort" or \
            spec.get("allocateLoadBalancerNodePorts") is not False
        old_ports = _node_ports(old_spec) if old_spec.get("type") in (
            "NodePort", "LoadBalancer") else set()
        lo, hi = self.node_port_range
        mine: set[int] = set()
        by_port: dict[int, int] = {}

        def take(i: int, path: str, port: int) -> None:
            if port in old_ports or port in mine:
                mine.add(port)
                return
            if not lo <= port <= hi:
                raise _invalid(svc, path, port, "provided port is not in the valid range. "
                               f"The range of valid ports is {self.range_text}")
            if port in used:
                raise _invalid(svc, path, port, "provided port is already allocated")
            self._pending_ports.add(port)
            mine.add(port)

        ports = spec.get("ports") or []
        for i, p in enumerate(ports):  # asked-for ports first, so the free ones skip them
            if p.get("nodePort"):
                take(i, f"spec.ports[{i}].nodePort", int(p["nodePort"]))
                by_port.setdefault(int(p.get("port") or 0), int(p["nodePort"]))
        for p in ports:
            if p.get("nodePort") or not should_allocate:
                continue
            number = int(p.get("port") or 0)
            if number in by_port:  # the same port number over TCP and UDP shares one
                p["nodePort"] = by_port[number]
                continue
            port = self._next_port(used | mine)
            p["nodePort"] = by_port[number] = port
            mine.add(port)
        if svc_type == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
            hc = spec.get("healthCheckNodePort")
            if hc:
                take(-1, "spec.healthCheckNodePort", int(hc))
            else:
                spec["healthCheckNodePort"] = self._next_port(used | mine)
        else:
            spec.pop("healthCheckNodePort", None)

    def _next_ip(self, used: set[str]) -> str:
        for off in self._ip_order():
            if off in self._reserved:
                continue
            ip = str(ipaddress.ip_address(self._base + off))
            if ip in used:
                continue
            if off >= self._ip_band:
                self._ip_cursor = off + 1 if off < self._size else self._ip_band
            self._pending_ips.add(ip)
            return ip
        raise errors.StatusError(500, "InternalError",
                                 "Internal error occurred: failed to allocate a serviceIP: "
                                 "range is full")

    def _ip_order(self) -> Iterator[int]:
        """Offsets in allocation order: on from the cursor, then the static band."""
        yield from range(self._ip_cursor, self._size + 1)
        yield from range(self._ip_band, self._ip_cursor)
        yield from range(1, self._ip_band)

    def _next_port(self, used: set[int]) -> int:
        lo, hi = self.node_port_range
        size = hi - lo + 1
        for off in (*range(self._port_cursor, size), *range(self._port_band, self._port_cursor),
                    *range(0, self._port_band)):
            port = lo + off
            if port in used:
                continue
            if off >= self._port_band:
                self._port_cursor = off + 1 if off + 1 < size else self._port_band
            self._pending_ports.add(port)
            return port
        raise errors.StatusError(500, "InternalError",
                                 "Internal error occurred: failed to allocate a nodePort: "
                                 "range is full")

    def settle(self) -> None:
        """Forget pending allocations once they are stored (or abandoned)."""
        self._pending_ips.clear()
        self._pending_ports.clear()
