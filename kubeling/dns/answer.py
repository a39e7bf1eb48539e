"""Answers for the cluster zone, decided from the in-memory index alone.

The responder turns one query into one of three outcomes: a finished
authoritative response (records, NODATA or NXDOMAIN with the zone's SOA), a
response holding a CNAME whose target lies outside the cluster and must be
chased upstream, or "not ours" (the caller forwards the query unchanged to the
host's resolvers). It never waits on anything, so the UDP server answers
cluster names straight from its datagram callback.

Beside the Service records (:mod:`kubeling.dns.records`) it answers what
CoreDNS's kubernetes plugin answers without a Service: the zone apex (SOA, NS),
``dns-version.<zone>`` TXT, ``ns.dns.<zone>`` (the DNS Service's addresses),
``<ns>.svc`` and ``<ns>.pod`` for existing namespaces, and
``<a-b-c-d>.<ns>.pod.<zone>`` ("pods insecure": the address read from the
name). PTR queries are ours when the address is known, or when it lies in one
of the cluster's own networks (then NXDOMAIN); other reverse names go upstream.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from typing import NamedTuple

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset
from dns.rdata import Rdata
from dns.rdatatype import RdataType

from kubeling.dns.records import IN, ClusterIndex, address_rdata

SCHEMA_VERSION = "1.1.0"
DNS_SERVICE = ("kube-system", "kube-dns")
DEFAULT_REVERSE_CIDRS = ("10.43.0.0/16", "10.42.0.0/16")  # service and pod networks
_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Outcome(NamedTuple):
    """``response`` None: not ours, forward the query. ``chase`` set: the response ends in
    a CNAME to this name, whose records come from upstream."""

    response: dns.message.Message | None
    chase: dns.name.Name | None = None


FORWARD = Outcome(None)


class Responder:
    def __init__(self, index: ClusterIndex, *, ttl: int = 5,
                 reverse_cidrs: Sequence[str] = DEFAULT_REVERSE_CIDRS) -> None:
        self.index = index
        self.ttl = ttl
        self.zone = index.zone
        self.zone_name = dns.name.from_text(self.zone)
        self.reverse_nets: list[IPNetwork] = [ipaddress.ip_network(c, strict=False)
                                              for c in reverse_cidrs]
        self._serial = int(time.time()) & 0x7FFFFFFF
        self._soa_gen = -1
        self._soa_cache: dict[str, dns.rrset.RRset] = {}

    # ----- the zone's own records -----------------------------------------------------

    def soa(self, origin: str) -> dns.rrset.RRset:
        """The SOA of ``origin`` (the cluster zone or a reverse zone); its serial moves when
        the index changes, as CoreDNS's does."""
        if self._soa_gen != self.index.generation:
            self._soa_gen = self.index.generation
            self._serial = (self._serial + 1) & 0x7FFFFFFF
            self._soa_cache.clear()
        rrset = self._soa_cache.get(origin)
        if rrset is None:
            rd = dns.rdata.from_text(
                IN, dns.rdatatype.SOA, f"ns.dns.{self.zone} hostmaster.{self.zone} "
                f"{self._serial} 7200 1800 86400 {self.ttl}")
            rrset = dns.rrset.from_rdata(origin, self.ttl, rd)
            self._soa_cache[origin] = rrset
        return rrset

    def _dns_service(self) -> list[Rdata]:
        ns, name = DNS_SERVICE
        found = self.index.lookup(f"{name}.{ns}.svc.{self.zone}") or {}
        return [rd for t in _ADDRESS_TYPES for rd in found.get(t, ())]

    def _synthetic(self, name: str) -> dict[RdataType, list[Rdata]] | None:
        """Names that exist without a Service; None when ``name`` is none of them."""
        zone = self.zone
        if name == zone:
            return {dns.rdatatype.SOA: list(self.soa(zone)),
                    dns.rdatatype.NS: [dns.rdata.from_text(IN, dns.rdatatype.NS,
                                                           f"ns.dns.{zone}")]}
        rel = name[: -len(zone) - 1] if name.endswith("." + zone) else ""
        if not rel:
            return None
        labels = rel.split(".")
        if rel == "dns-version":
            return {dns.rdatatype.TXT: [dns.rdata.from_text(IN, dns.rdatatype.TXT,
                                                            f'"{SCHEMA_VERSION}"')]}
        if rel == "ns.dns":
            out: dict[RdataType, list[Rdata]] = {}
            for rd in self._dns_service():
                out.setdefault(rd.rdtype, []).append(rd)
            return out
        if rel in ("svc", "pod", "dns"):
            return {}
        if len(labels) == 2 and labels[1] in ("svc", "pod") and \
                labels[0] in self.index.namespaces:
            return {}
        if len(labels) == 3 and labels[2] == "pod" and labels[1] in self.index.namespaces:
            pod = _pod_address(labels[0])
            return {pod.rdtype: [pod]} if pod is not None else None
        return None

    # ----- answering -------------------------------------------------------------------

    def answer(self, query: dns.message.Message) -> Outcome:
        if len(query.question) != 1 or query.opcode() != dns.opcode.QUERY:
            return self._error(query, dns.rcode.NOTIMP if query.question else
                               dns.rcode.FORMERR)
        q = query.question[0]
        if q.rdclass != IN:
            return FORWARD
        name = q.name.to_text().lower()
        if name == self.zone or name.endswith("." + self.zone):
            return self._answer_zone(query, q.name, name, q.rdtype, self.zone)
        if name.endswith(".in-addr.arpa.") or name.endswith(".ip6.arpa."):
            return self._answer_reverse(query, q.name, name, q.rdtype)
        return FORWARD

    def _error(self, query: dns.message.Message, rcode: dns.rcode.Rcode) -> Outcome:
        resp = dns.message.make_response(query, recursion_available=True)
        resp.set_rcode(rcode)
        return Outcome(resp)

    def _answer_zone(self, query: dns.message.Message, qname: dns.name.Name, name: str,
                     rdtype: RdataType, origin: str) -> Outcome:
        found = self.index.lookup(name)
        if found is None:
            found = self._synthetic(name)
        resp = dns.message.make_response(query, recursion_available=True)
        resp.flags |= dns.flags.AA
        if found is None:
            resp.set_rcode(dns.rcode.NXDOMAIN)
            resp.authority.append(self.soa(origin))
            return Outcome(resp)
        cname = found.get(dns.rdatatype.CNAME)
        if cname and rdtype != dns.rdatatype.CNAME:
            resp.answer.append(dns.rrset.from_rdata_list(qname, self.ttl, cname))
            target = cname[0].target  # type: ignore[attr-defined]
            text = target.to_text().lower()
            if text == self.zone or text.endswith("." + self.zone):
                inner = self.index.lookup(text) or {}
                rds = inner.get(rdtype)
                if rds:
                    resp.answer.append(dns.rrset.from_rdata_list(target, self.ttl, rds))
                return Outcome(resp)
            return Outcome(resp, target)
        if rdtype == dns.rdatatype.ANY:
            rrsets = [dns.rrset.from_rdata_list(qname, self.ttl, rds)
                      for rds in found.values() if rds]
        else:
            rds = found.get(rdtype)
            rrsets = [dns.rrset.from_rdata_list(qname, self.ttl, rds)] if rds else []
        if not rrsets:
            resp.authority.append(self.soa(origin))
            return Outcome(resp)
        resp.answer.extend(rrsets)
        if rdtype in (dns.rdatatype.SRV, dns.rdatatype.NS):
            self._additional(resp, rrsets)
        return Outcome(resp)

    def _additional(self, resp: dns.message.Message, rrsets: list[dns.rrset.RRset]) -> None:
        """A/AAAA of the SRV targets (or of the NS), as the spec allows."""
        done: set[str] = set()
        for rrset in rrsets:
            for rd in rrset:
                target = rd.target
                text = target.to_text().lower()
                if text in done:
                    continue
                done.add(text)
                found = self.index.lookup(text) or self._synthetic(text) or {}
                for t in _ADDRESS_TYPES:
                    if found.get(t):
                        resp.additional.append(
                            dns.rrset.from_rdata_list(target, self.ttl, found[t]))

    def _answer_reverse(self, query: dns.message.Message, qname: dns.name.Name, name: str,
                        rdtype: RdataType) -> Outcome:
        found = self.index.lookup(name)
        origin = "in-addr.arpa." if name.endswith(".in-addr.arpa.") else "ip6.arpa."
        if found is None:
            try:
                ip = ipaddress.ip_address(dns.reversename.to_address(qname))
            except (ValueError, dns.exception.SyntaxError):
                return FORWARD
            if not any(ip in net for net in self.reverse_nets):
                return FORWARD
        return self._answer_zone(query, qname, name, rdtype, origin)


def _pod_address(label: str) -> Rdata | None:
    """``10-42-0-5`` -> A 10.42.0.5; ``fd00--5`` -> AAAA fd00::5; else None."""
    if label.count("-") == 3:
        rd = address_rdata(label.replace("-", "."))
        if rd is not None:
            return rd
    return address_rdata(label.replace("-", ":"))
