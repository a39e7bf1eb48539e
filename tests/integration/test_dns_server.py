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


def upstream_answer(query: dns.message.Message, *, tcp: bool) -> dns.message.Message:
    """``*.example.test`` A 192.0.2.1; ``big.example.test`` 40 addresses, truncated over UDP;
    anything else NXDOMAIN."""
    q = query.question[0]
    resp = dns.message.make_response(query)
    name = q.name.to_text().lower()
    if name == "big.example.test.":
        if tcp:
            resp.answer.append(dns.rrset.from_text_list(
                q.name, 60, "IN", "A", [f"192.0.2.{i}" for i in range(1, 41)]))
        else:
            resp.flags |= dns.flags.TC
    elif name.endswith("example.test.") and q.rdtype == dns.rdatatype.A:
        resp.answer.append(dns.rrset.from_text(q.name, 60, "IN", "A", "192.0.2.1"))
    else:
        resp.set_rcode(dns.rcode.NXDOMAIN)
    return resp


class Upstream(asyncio.DatagramProtocol):
    """A tiny DNS server on 127.0.0.1 (UDP here, TCP by ``serve_tcp``)."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.queries: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        query = dns.message.from_wire(data)
        self.queries.append(query.question[0].name.to_text())
        assert self.transport is not None
        self.transport.sendto(upstream_answer(query, tcp=False).to_wire(), addr)

    async def serve_tcp(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        try:
            size = int.from_bytes(await reader.readexactly(2), "big")
            query = dns.message.from_wire(await reader.readexactly(size))
            self.queries.append("tcp:" + query.question[0].name.to_text())
            writer.write(upstream_answer(query, tcp=True).to_wire(prepend_length=True))
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("dns"), free_port())
    c.start()
    yield c
    c.stop()


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, int]]:
    loop = asyncio.get_running_loop()
    proto = Upstream()
    tcp = await asyncio.start_server(proto.serve_tcp, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    transport, _ = await loop.create_datagram_endpoint(lambda: proto,
                                                       local_addr=("127.0.0.1", port))
    yield proto, port
    transport.close()
    tcp.close()
    await tcp.wait_closed()


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
    # a truncated upstream answer is asked again over TCP; the client gets all of it over
    # TCP, and a truncated answer over plain UDP
    big = await query(server, "big.example.test.", tcp=True)
    assert len(addresses(big)) == 40
    assert "tcp:big.example.test." in upstream[0].queries
    assert (await query(server, "big.example.test.")).flags & dns.flags.TC
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
