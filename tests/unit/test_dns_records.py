"""Cluster DNS answers from Services and EndpointSlices: dnspython queries in, responses out."""

from __future__ import annotations

from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.reversename

from kubeling.dns.answer import Responder
from kubeling.dns.records import ClusterIndex

Obj = dict[str, Any]


def svc(name: str, ns: str = "default", *, ip: str | list[str] = "10.43.0.20",
        ports: list[Obj] | None = None, **spec: Any) -> Obj:
    ips = ip if isinstance(ip, list) else [ip]
    base: Obj = {"clusterIP": ips[0], "clusterIPs": ips, "type": "ClusterIP",
                 "ports": ports if ports is not None else [
                     {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}
    base.update(spec)
    if base["clusterIP"] == "None":
        base["clusterIPs"] = ["None"]
    return {"metadata": {"name": name, "namespace": ns}, "spec": base}


def endpoint(ip: str, *, ready: bool = True, hostname: str = "") -> Obj:
    ep: Obj = {"addresses": [ip], "conditions": {"ready": ready, "serving": ready,
                                                 "terminating": False}}
    if hostname:
        ep["hostname"] = hostname
    return ep


def slice_(service: str, *eps: Obj, ns: str = "default", port: int = 8080) -> Obj:
    return {"metadata": {"name": f"{service}-abc", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "endpoints": list(eps),
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}


def responder(*services: tuple[Obj, list[Obj]], namespaces: tuple[str, ...] = (
        "default", "kube-system")) -> Responder:
    index = ClusterIndex("cluster.local")
    for s, slices in services:
        index.set_service(f"{s['metadata']['namespace']}/{s['metadata']['name']}", s, slices)
    index.set_namespaces(namespaces)
    return Responder(index, ttl=5, reverse_cidrs=("10.43.0.0/16", "10.42.0.0/16"))


def ask(r: Responder, name: str, rdtype: str = "A") -> dns.message.Message:
    outcome = r.answer(dns.message.make_query(name, rdtype))
    assert outcome.response is not None, f"{name} {rdtype} was forwarded"
    return outcome.response


def texts(resp: dns.message.Message, section: str = "answer") -> list[str]:
    return sorted(rd.to_text() for rrset in getattr(resp, section) for rd in rrset)


def test_clusterip_a_and_authoritative() -> None:
    r = responder((svc("web"), []))
    resp = ask(r, "web.default.svc.cluster.local.")
    assert resp.rcode() == dns.rcode.NOERROR
    assert resp.flags & dns.flags.AA
    assert texts(resp) == ["10.43.0.20"]
    assert resp.answer[0].ttl == 5


def test_case_insensitive_and_question_case_kept() -> None:
    r = responder((svc("web"), []))
    resp = ask(r, "WEB.Default.SVC.cluster.LOCAL.")
    assert texts(resp) == ["10.43.0.20"]
    assert resp.answer[0].name.to_text() == "WEB.Default.SVC.cluster.LOCAL."


def test_aaaa_of_ipv4_service_is_nodata_with_soa() -> None:
    r = responder((svc("web"), []))
    resp = ask(r, "web.default.svc.cluster.local.", "AAAA")
    assert resp.rcode() == dns.rcode.NOERROR
    assert resp.answer == []
    assert resp.authority[0].rdtype == dns.rdatatype.SOA


def test_dual_stack_service_answers_aaaa() -> None:
    r = responder((svc("web", ip=["10.43.0.20", "fd00:43::20"]), []))
    assert texts(ask(r, "web.default.svc.cluster.local.", "AAAA")) == ["fd00:43::20"]


def test_unknown_name_is_nxdomain_with_soa() -> None:
    r = responder((svc("web"), []))
    resp = ask(r, "nope.default.svc.cluster.local.")
    assert resp.rcode() == dns.rcode.NXDOMAIN
    assert resp.authority[0].rdtype == dns.rdatatype.SOA
    assert resp.authority[0].name.to_text() == "cluster.local."
    assert ask(r, "web.nons.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN


def test_parents_and_namespaces_are_nodata() -> None:
    r = responder((svc("web"), []))
    for name in ("default.svc.cluster.local.", "svc.cluster.local.",
                 "_tcp.web.default.svc.cluster.local.", "kube-system.svc.cluster.local."):
        resp = ask(r, name)
        assert resp.rcode() == dns.rcode.NOERROR, name
        assert resp.answer == []
    assert ask(r, "gone.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN


def test_srv_for_named_ports_with_additional() -> None:
    r = responder((svc("web", ports=[
        {"name": "http", "port": 80, "protocol": "TCP"},
        {"port": 81, "protocol": "TCP"},  # unnamed: no SRV
        {"name": "dns", "port": 53, "protocol": "UDP"}]), []))
    resp = ask(r, "_http._tcp.web.default.svc.cluster.local.", "SRV")
    assert texts(resp) == ["0 100 80 web.default.svc.cluster.local."]
    assert texts(resp, "additional") == ["10.43.0.20"]
    assert texts(ask(r, "_dns._udp.web.default.svc.cluster.local.", "SRV")) == [
        "0 100 53 web.default.svc.cluster.local."]
    assert ask(r, "_dns._tcp.web.default.svc.cluster.local.", "SRV").rcode() == \
        dns.rcode.NXDOMAIN


def test_headless_answers_ready_endpoints_and_names() -> None:
    headless = svc("db", ip="None")
    sl = slice_("db", endpoint("10.42.0.5", hostname="db-0"), endpoint("10.42.1.7"),
                endpoint("10.42.2.9", ready=False))
    r = responder((headless, [sl]))
    assert texts(ask(r, "db.default.svc.cluster.local.")) == ["10.42.0.5", "10.42.1.7"]
    assert texts(ask(r, "db-0.db.default.svc.cluster.local.")) == ["10.42.0.5"]
    assert texts(ask(r, "10-42-1-7.db.default.svc.cluster.local.")) == ["10.42.1.7"]
    assert ask(r, "10-42-2-9.db.default.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN
    srv = ask(r, "_http._tcp.db.default.svc.cluster.local.", "SRV")
    assert texts(srv) == ["0 50 8080 10-42-1-7.db.default.svc.cluster.local.",
                          "0 50 8080 db-0.db.default.svc.cluster.local."]
    assert texts(srv, "additional") == ["10.42.0.5", "10.42.1.7"]


def test_headless_publish_not_ready_and_no_ready_endpoints() -> None:
    sl = slice_("db", endpoint("10.42.2.9", ready=False))
    assert ask(responder((svc("db", ip="None"), [sl])),
               "db.default.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN
    r = responder((svc("db", ip="None", publishNotReadyAddresses=True), [sl]))
    assert texts(ask(r, "db.default.svc.cluster.local.")) == ["10.42.2.9"]


def test_ptr_for_cluster_ip_and_headless_endpoint() -> None:
    r = responder((svc("web"), []),
                  (svc("db", ip="None"), [slice_("db", endpoint("10.42.0.5", hostname="db-0"))]))
    rev = dns.reversename.from_address("10.43.0.20").to_text()
    assert texts(ask(r, rev, "PTR")) == ["web.default.svc.cluster.local."]
    rev = dns.reversename.from_address("10.42.0.5").to_text()
    assert texts(ask(r, rev, "PTR")) == ["db-0.db.default.svc.cluster.local."]
    unknown = ask(r, dns.reversename.from_address("10.43.9.9").to_text(), "PTR")
    assert unknown.rcode() == dns.rcode.NXDOMAIN
    assert unknown.authority[0].name.to_text() == "in-addr.arpa."
    # addresses outside the cluster's networks are the upstream's
    outside = r.answer(dns.message.make_query(
        dns.reversename.from_address("192.0.2.1"), "PTR"))
    assert outside.response is None


def test_externalname_cname_and_chase() -> None:
    ext = svc("ext", ip="", type="ExternalName", externalName="www.example.com", ports=[])
    inner = svc("inner", ip="", type="ExternalName",
                externalName="web.default.svc.cluster.local", ports=[])
    r = responder((ext, []), (inner, []), (svc("web"), []))
    out = r.answer(dns.message.make_query("ext.default.svc.cluster.local.", "A"))
    assert out.response is not None
    assert texts(out.response) == ["www.example.com."]
    assert out.chase is not None and out.chase.to_text() == "www.example.com."
    out = r.answer(dns.message.make_query("inner.default.svc.cluster.local.", "A"))
    assert out.chase is None and out.response is not None
    assert texts(out.response) == ["10.43.0.20", "web.default.svc.cluster.local."]
    out = r.answer(dns.message.make_query("ext.default.svc.cluster.local.", "CNAME"))
    assert out.chase is None


def test_pod_names_need_the_namespace() -> None:
    r = responder()
    assert texts(ask(r, "10-42-0-5.default.pod.cluster.local.")) == ["10.42.0.5"]
    assert ask(r, "10-42-0-5.ghost.pod.cluster.local.").rcode() == dns.rcode.NXDOMAIN
    assert ask(r, "bogus.default.pod.cluster.local.").rcode() == dns.rcode.NXDOMAIN


def test_outside_the_zone_is_forwarded() -> None:
    r = responder((svc("web"), []))
    # a search-path style name without the domain is not the cluster's: the resolver
    # appends the domain; bare, it goes upstream (which answers NXDOMAIN)
    assert r.answer(dns.message.make_query("web.default.svc.", "A")).response is None
    assert r.answer(dns.message.make_query("example.com.", "A")).response is None


def test_zone_apex_version_and_dns_service() -> None:
    dns_svc = svc("kube-dns", "kube-system", ip="10.43.0.10", ports=[
        {"name": "dns", "port": 53, "protocol": "UDP"}])
    r = responder((dns_svc, []))
    assert ask(r, "cluster.local.", "SOA").answer[0].rdtype == dns.rdatatype.SOA
    ns = ask(r, "cluster.local.", "NS")
    assert texts(ns) == ["ns.dns.cluster.local."]
    assert texts(ns, "additional") == ["10.43.0.10"]
    assert texts(ask(r, "dns-version.cluster.local.", "TXT")) == ['"1.1.0"']


def test_index_follows_changes() -> None:
    index = ClusterIndex("cluster.local")
    index.set_namespaces(["default"])
    r = Responder(index)
    index.set_service("default/web", svc("web"))
    assert texts(ask(r, "web.default.svc.cluster.local.")) == ["10.43.0.20"]
    index.set_service("default/web", svc("web", ip="10.43.0.21"))
    assert texts(ask(r, "web.default.svc.cluster.local.")) == ["10.43.0.21"]
    rev = dns.reversename.from_address("10.43.0.20").to_text()
    assert ask(r, rev, "PTR").rcode() == dns.rcode.NXDOMAIN
    index.set_service("default/web", None)
    assert ask(r, "web.default.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN
    assert ask(r, "_tcp.web.default.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN
    assert len(index) == 0


def test_shared_ptr_owner_is_merged_and_unmerged() -> None:
    index = ClusterIndex("cluster.local")
    a = svc("a", ip="None")
    b = svc("b", ip="None")
    index.set_service("default/a", a, [slice_("a", endpoint("10.42.0.5"))])
    index.set_service("default/b", b, [slice_("b", endpoint("10.42.0.5"))])
    r = Responder(index)
    rev = dns.reversename.from_address("10.42.0.5").to_text()
    assert len(texts(ask(r, rev, "PTR"))) == 2
    index.set_service("default/a", None)
    assert texts(ask(r, rev, "PTR")) == ["10-42-0-5.b.default.svc.cluster.local."]
