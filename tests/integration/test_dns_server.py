"""The cluster DNS against a real ``kubeling server``: objects made with kubectl, queries over
real UDP and TCP sockets, forwarding to a real (tiny, in-test) upstream DNS server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from kubeling.client.http import HttpClient
from kubeling.dns import ClusterDNS
from tests.cluster import Cluster, free_port, wait_for_async


class Upstream(asyncio.DatagramProtocol):
    """A one-zone DNS server on 127.0.0.1: ``*.example.test`` A 192.0.2.1, else NXDOMAIN."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.queries: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        query = dns.message.from_wire(data)
        q = query.question[0]
        self.queries.append(q.name.to_text())
        resp = dns.message.make_response(query)
        if q.name.to_text().endswith("example.test.") and q.rdtype == dns.rdatatype.A:
            resp.answer.append(dns.rrset.from_text(q.name, 60, "IN", "A", "192.0.2.1"))
        else:
            resp.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(resp.to_wire(), addr)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("dns"), free_port())
    c.start()
    yield c
    c.stop()


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, int]]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(Upstream, local_addr=("127.0.0.1", 0))
    yield proto, transport.get_extra_info("sockname")[1]
    transport.close()


@pytest.fixture
async def server(cluster: Cluster, upstream: tuple[Upstream, int]) -> AsyncIterator[ClusterDNS]:
    client = HttpClient.from_kubeconfig(str(cluster.kubeconfig))
    srv = ClusterDNS(client, listen=("127.0.0.1", 0), upstreams=[f"127.0.0.1:{upstream[1]}"],
                     forward_timeout=1.0)
    await srv.start()
    yield srv
    await srv.stop()
    await client.close()


def apply(cluster: Cluster, *objs: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": list(objs)}))


def service(name: str, ip: str, *, ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80,
                                                 "targetPort": 8080}], **spec}}


def endpoint_slice(service: str, ips: list[str], *, ns: str = "default") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-dns-test", "namespace": ns, "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "dns-test"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


async def query(srv: ClusterDNS, name: str, rdtype: str = "A", *, tcp: bool = False,
                **kw: Any) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **kw)
    if tcp:
        return await dns.asyncquery.tcp(q, "127.0.0.1", port=srv.port, timeout=5)
    return await dns.asyncquery.udp(q, "127.0.0.1", port=srv.port, timeout=5)


def addresses(resp: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in resp.answer for rd in rrset
                  if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA))


async def test_records_follow_services(cluster: Cluster, server: ClusterDNS) -> None:
    name = "dnsweb.default.svc.cluster.local."
    assert (await query(server, name)).rcode() == dns.rcode.NXDOMAIN
    apply(cluster, service("dnsweb", "10.43.200.1"))

    async def answered() -> list[str]:
        return addresses(await query(server, name))
    await wait_for_async("the new Service's A record", answered, timeout=10)
    assert addresses(await query(server, name, tcp=True)) == ["10.43.200.1"]
    srv = await query(server, "_http._tcp." + name, "SRV")
    assert [rd.to_text() for rd in srv.answer[0]] == [f"0 100 80 {name}"]
    cluster.kubectl("delete", "service", "dnsweb")

    async def gone() -> bool:
        return (await query(server, name)).rcode() == dns.rcode.NXDOMAIN
    await wait_for_async("NXDOMAIN for the deleted Service", gone, timeout=10)


async def test_headless_endpoints_and_truncation(cluster: Cluster, server: ClusterDNS) -> None:
    ips = [f"10.42.9.{i}" for i in range(1, 61)]
    apply(cluster, service("dnsdb", "None"), endpoint_slice("dnsdb", ips))
    name = "dnsdb.default.svc.cluster.local."

    async def all_there() -> bool:
        return len(addresses(await query(server, name, tcp=True))) == 60
    await wait_for_async("60 endpoint addresses over TCP", all_there, timeout=10)
    small = await query(server, name)  # no EDNS: 512 bytes at most
    assert small.flags & dns.flags.TC
    big = await query(server, name, use_edns=0, payload=4096)
    assert not big.flags & dns.flags.TC
    assert len(addresses(big)) == 60
    one = await query(server, "10-42-9-7.dnsdb.default.svc.cluster.local.")
    assert addresses(one) == ["10.42.9.7"]
    cluster.kubectl("delete", "service", "dnsdb")
    cluster.kubectl("delete", "endpointslice", "dnsdb-dns-test")


async def test_forwarding_and_externalname(cluster: Cluster, server: ClusterDNS,
                                           upstream: tuple[Upstream, int]) -> None:
    resp = await query(server, "www.example.test.")
    assert addresses(resp) == ["192.0.2.1"]
    assert not resp.flags & dns.flags.AA
    assert (await query(server, "nothing.invalid.")).rcode() == dns.rcode.NXDOMAIN
    # search-path style names without the domain are not ours: the upstream says NXDOMAIN
    assert (await query(server, "dnsweb.default.svc.")).rcode() == dns.rcode.NXDOMAIN
    assert "dnsweb.default.svc." in upstream[0].queries
    apply(cluster, {"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "dnsext", "namespace": "default"},
                    "spec": {"type": "ExternalName", "externalName": "api.example.test"}})
    name = "dnsext.default.svc.cluster.local."

    async def chased() -> list[str]:
        return addresses(await query(server, name))
    await wait_for_async("the ExternalName chased upstream", chased, timeout=10)
    resp = await query(server, name)
    assert [r.rdtype for r in resp.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    cluster.kubectl("delete", "service", "dnsext")


async def test_servfail_when_upstream_is_dead(cluster: Cluster) -> None:
    client = HttpClient.from_kubeconfig(str(cluster.kubeconfig))
    dead = free_port()
    srv = ClusterDNS(client, listen=("127.0.0.1", 0), upstreams=[f"127.0.0.1:{dead}"],
                     forward_timeout=0.3)
    await srv.start()
    try:
        resp = await query(srv, "www.example.test.")
        assert resp.rcode() == dns.rcode.SERVFAIL
        # the cluster's names still answer
        assert (await query(srv, "nope.default.svc.cluster.local.")).rcode() == \
            dns.rcode.NXDOMAIN
    finally:
        await srv.stop()
        await client.close()


async def test_pod_names_and_namespaces(cluster: Cluster, server: ClusterDNS) -> None:
    assert addresses(await query(server, "10-42-0-9.default.pod.cluster.local.")) == \
        ["10.42.0.9"]
    cluster.kubectl("create", "namespace", "dnsns")

    async def known() -> bool:
        resp = await query(server, "10-42-0-9.dnsns.pod.cluster.local.")
        return resp.rcode() == dns.rcode.NOERROR
    await wait_for_async("the new namespace's pod names", known, timeout=10)
    cluster.kubectl("delete", "namespace", "dnsns", "--wait=false")
