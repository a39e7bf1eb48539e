"""The cluster zone in memory: DNS records built from Services and their EndpointSlices.

Answering a query must not walk the cluster's objects: every record of a
Service (its name, SRV names of its named ports, per-endpoint names of
headless Services, PTRs of its addresses) is computed once when the Service
or one of its slices changes, and kept in a dict keyed by the lower-cased
owner name, so a lookup is one dict probe. The records follow the Kubernetes
DNS specification (kubernetes/dns docs/specification.md) as CoreDNS's
kubernetes plugin implements it:

- ``<svc>.<ns>.svc.<zone>``: A/AAAA of the cluster IPs; of every ready endpoint
  for headless Services (none ready: the name does not exist); CNAME for
  ExternalName Services.
- ``_<port>._<proto>.<svc>.<ns>.svc.<zone>``: SRV per named port, targeting the
  Service name, or for headless Services each endpoint's own name.
- ``<hostname-or-dashed-ip>.<svc>.<ns>.svc.<zone>``: the endpoint's addresses.
- PTR of cluster IPs (to the Service name) and of headless endpoints (to the
  endpoint name).

Names that only exist as parents of records (``_tcp.<svc>...``, ``<ns>.svc``)
are counted so that they answer NODATA rather than NXDOMAIN.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from typing import Any

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.reversename
from dns.rdata import Rdata
from dns.rdatatype import RdataType

Obj = dict[str, Any]
Records = dict[str, dict[RdataType, list[Rdata]]]  # lower-case owner name -> type -> rdatas

A, AAAA, CNAME, PTR, SRV = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.CNAME,
                            dns.rdatatype.PTR, dns.rdatatype.SRV)
IN = dns.rdataclass.IN


def address_rdata(ip: str) -> Rdata | None:
    """An A or AAAA rdata for ``ip``; None when it is no IP address."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return dns.rdata.from_text(IN, A if addr.version == 4 else AAAA, addr.compressed)


def dashed(ip: str) -> str:
    """The label CoreDNS gives an endpoint without a hostname: its IP with dashes."""
    return ip.replace(".", "-").replace(":", "-")


def reverse_name(ip: str) -> str:
    return dns.reversename.from_address(ip).to_text().lower()


def is_headless(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == "None"


def ready_endpoints(svc: Obj, slices: Iterable[Obj]) -> list[tuple[str, str, list[Obj]]]:
    """``(address, endpoint label, slice ports)`` of the endpoints DNS should publish: the
    ready ones, or all of them when the Service publishes not-ready addresses. The label is
    the endpoint's hostname, else its dashed address; an address listed twice counts once."""
    publish_all = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    seen: set[str] = set()
    out: list[tuple[str, str, list[Obj]]] = []
    for sl in slices:
        if sl.get("addressType") not in ("IPv4", "IPv6"):
            continue
        ports = sl.get("ports") or []
        for ep in sl.get("endpoints") or ():
            cond = ep.get("conditions") or {}
            if not publish_all and cond.get("ready") is False:
                continue
            for ip in ep.get("addresses") or ():
                if ip in seen:
                    continue
                seen.add(ip)
                out.append((ip, (ep.get("hostname") or dashed(ip)).lower(), ports))
    return out


def _srv(port: int, target: str, weight: int) -> Rdata:
    return dns.rdata.from_text(IN, SRV, f"0 {weight} {port} {target}")


def _add(records: Records, name: str, rdtype: RdataType, rdata: Rdata) -> None:
    rds = records.setdefault(name, {}).setdefault(rdtype, [])
    if rdata not in rds:
        rds.append(rdata)


def _named_ports(ports: Iterable[Obj]) -> list[tuple[str, str, int]]:
    return [(p["name"].lower(), (p.get("protocol") or "TCP").lower(), int(p["port"]))
            for p in ports if p.get("name") and p.get("port")]


def service_records(svc: Obj, slices: Iterable[Obj], domain: str) -> Records:
    """Every record the Service contributes (forward and reverse names)."""
    meta, spec = svc["metadata"], svc.get("spec") or {}
    base = f"{meta['name']}.{meta['namespace']}.svc.{domain}.".lower()
    records: Records = {}
    if spec.get("type") == "ExternalName":
        target = (spec.get("externalName") or "").rstrip(".")
        if target:
            _add(records, base, CNAME, dns.rdata.from_text(IN, CNAME, target + "."))
        return records
    endpoints = ready_endpoints(svc, slices)
    for ip, label, _ports in endpoints:  # endpoint names (CoreDNS answers them for any Service)
        rd = address_rdata(ip)
        if rd is not None:
            _add(records, f"{label}.{base}", rd.rdtype, rd)
    if is_headless(svc):
        weight = max(1, 100 // max(1, len(endpoints)))
        for ip, label, ports in endpoints:
            rd = address_rdata(ip)
            if rd is None:
                continue
            _add(records, base, rd.rdtype, rd)
            target = f"{label}.{base}"
            _add(records, reverse_name(ip), PTR, dns.rdata.from_text(IN, PTR, target))
            for name, proto, port in _named_ports(ports):
                _add(records, f"_{name}._{proto}.{base}", SRV, _srv(port, target, weight))
        return records
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    for ip in ips:
        rd = address_rdata(ip)
        if rd is None:
            continue
        _add(records, base, rd.rdtype, rd)
        _add(records, reverse_name(ip), PTR, dns.rdata.from_text(IN, PTR, base))
    if ips:
        for name, proto, port in _named_ports(spec.get("ports") or ()):
            _add(records, f"_{name}._{proto}.{base}", SRV, _srv(port, base, 100))
    return records


class ClusterIndex:
    """The records of every Service, merged by owner name, with the parents of each name."""

    def __init__(self, domain: str) -> None:
        self.domain = domain.strip(".").lower()
        self.zone = self.domain + "."
        self._by_service: dict[str, Records] = {}
        self._names: dict[str, dict[str, dict[RdataType, list[Rdata]]]] = {}
        self._merged: dict[str, dict[RdataType, list[Rdata]]] = {}
        self._parents: Counter[str] = Counter()
        self.namespaces: set[str] = set()
        self.generation = 0  # bumped on every change (answer caches compare it)

    def __len__(self) -> int:
        return len(self._by_service)

    def set_service(self, key: str, svc: Obj | None, slices: Iterable[Obj] = ()) -> None:
        """Replace the records of Service ``key`` (``ns/name``); None removes them."""
        new = service_records(svc, slices, self.domain) if svc is not None else {}
        old = self._by_service.pop(key, {})
        if new:
            self._by_service[key] = new
        if old == new:
            return
        self.generation += 1
        for name in old.keys() - new.keys():
            owners = self._names.get(name)
            if owners is not None:
                owners.pop(key, None)
                if not owners:
                    del self._names[name]
            self._forget_parents(name)
            self._remerge(name)
        for name, recs in new.items():
            if name not in old:
                self._count_parents(name)
            elif old[name] == recs:
                continue
            self._names.setdefault(name, {})[key] = recs
            self._remerge(name)

    def set_namespaces(self, names: Iterable[str]) -> None:
        self.namespaces = {n.lower() for n in names}
        self.generation += 1

    def _remerge(self, name: str) -> None:
        owners = self._names.get(name)
        if not owners:
            self._merged.pop(name, None)
            return
        if len(owners) == 1:
            self._merged[name] = next(iter(owners.values()))
            return
        merged: dict[RdataType, list[Rdata]] = {}
        for key in sorted(owners):
            for rdtype, rds in owners[key].items():
                into = merged.setdefault(rdtype, [])
                into.extend(rd for rd in rds if rd not in into)
        self._merged[name] = merged

    def _ancestors(self, name: str) -> list[str]:
        if not name.endswith("." + self.zone):
            return []
        out = []
        rest = name
        while True:
            rest = rest.split(".", 1)[1]
            if rest == self.zone or not rest:
                break
            out.append(rest)
        return out

    def _count_parents(self, name: str) -> None:
        for parent in self._ancestors(name):
            self._parents[parent] += 1

    def _forget_parents(self, name: str) -> None:
        for parent in self._ancestors(name):
            self._parents[parent] -= 1
            if self._parents[parent] <= 0:
                del self._parents[parent]

    def lookup(self, name: str) -> dict[RdataType, list[Rdata]] | None:
        """The records owned by ``name`` (lower case, absolute); ``{}`` when the name exists
        only as a parent of others; None when it does not exist."""
        found = self._merged.get(name)
        if found is not None:
            return found
        return {} if name in self._parents else None
