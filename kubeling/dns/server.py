"""The cluster DNS server: informers in, DNS over UDP and TCP out.

``ClusterDNS`` is what ``kubeling dns`` runs, and what ``kubeling server``
runs in process: it watches Services, EndpointSlices and Namespaces through
its own informers, keeps the cluster zone in memory (a Service's records are
rebuilt when it or one of its slices changes), and serves it on one UDP and
one TCP socket. Cluster names are answered straight from the datagram
callback; forwarded names and CNAME chases run as tasks. UDP answers larger
than the client may receive (512 bytes, or its EDNS payload size) go out
truncated with the TC bit, and the client asks again over TCP.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import struct
import time
from collections.abc import Sequence
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from kubeling.api import kinds
from kubeling.client.informer import Informer, Informers, key_of
from kubeling.client.interface import Client, Obj
from kubeling.dns import metrics
from kubeling.dns.answer import DEFAULT_REVERSE_CIDRS, Responder
from kubeling.dns.forward import Forwarder, parse_upstream, resolv_conf_nameservers
from kubeling.dns.records import ClusterIndex
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.dns")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SLICE_SERVICE_INDEX = "service"
TCP_IDLE = 10.0
FAST_CACHE_SIZE = 20000


def _slice_service(obj: Obj) -> list[str]:
    svc = (obj["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{obj['metadata']['namespace']}/{svc}"] if svc else []


def _kind(group: str, resource: str) -> kinds.Kind:
    found = kinds.by_resource(group, resource)
    assert found is not None, resource
    return found


class ClusterDNS:
    """Serves the cluster zone of ``client``'s cluster on ``listen`` (UDP and TCP)."""

    def __init__(self, client: Client, *, domain: str = "cluster.local",
                 listen: tuple[str, int] = ("0.0.0.0", 53),
                 upstreams: Sequence[str] | None = None,
                 resolv_conf: str = "/etc/resolv.conf", ttl: int = 5,
                 reverse_cidrs: Sequence[str] = DEFAULT_REVERSE_CIDRS,
                 forward_timeout: float = 2.0) -> None:
        self.client = client
        self.listen = listen
        self.port = listen[1]
        self.index = ClusterIndex(domain)
        self.responder = Responder(self.index, ttl=ttl, reverse_cidrs=reverse_cidrs)
        servers = list(upstreams) if upstreams is not None else \
            resolv_conf_nameservers(resolv_conf)
        self.forwarder = Forwarder([parse_upstream(s) for s in servers], timeout=forward_timeout)
        self.informers = Informers(client)
        self.services: Informer = self.informers.informer(_kind("", "services"))
        self.slices: Informer = self.informers.informer(
            _kind("discovery.k8s.io", "endpointslices"))
        self.namespaces: Informer = self.informers.informer(_kind("", "namespaces"))
        self.slices.add_index(SLICE_SERVICE_INDEX, _slice_service)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # UDP answers of the cluster zone by query bytes (all but the id), valid for one
        # generation of the index: a repeated question costs one dict probe
        self._fast: dict[bytes, tuple[bytes, Any, Any, Any]] = {}
        self._fast_gen = -1

    # ----- the index --------------------------------------------------------------------

    def _rebuild(self, key: str) -> None:
        ns, _, name = key.partition("/")
        svc = self.services.get(ns, name)
        slices = self.slices.by_index(SLICE_SERVICE_INDEX, key) if svc is not None else []
        self.index.set_service(key, svc, slices)

    def _on_service(self, obj: Obj) -> None:
        self._rebuild(key_of(obj))

    def _on_slice(self, obj: Obj) -> None:
        for key in _slice_service(obj):
            self._rebuild(key)

    def _on_namespaces(self, _obj: Obj) -> None:
        self.index.set_namespaces(o["metadata"]["name"] for o in self.namespaces.list())

    def _wire_informers(self) -> None:
        self.services.add_handlers(add=self._on_service, update=lambda _o, n: self._on_service(n),
                                   delete=self._on_service)
        self.slices.add_handlers(add=self._on_slice, update=self._on_slice_update,
                                 delete=self._on_slice)
        self.namespaces.add_handlers(add=self._on_namespaces,
                                     update=lambda _o, n: self._on_namespaces(n),
                                     delete=self._on_namespaces)

    def _on_slice_update(self, old: Obj, new: Obj) -> None:
        for key in {*_slice_service(old), *_slice_service(new)}:
            self._rebuild(key)

    @property
    def ready(self) -> bool:
        return self._udp is not None and all(
            i.has_synced for i in (self.services, self.slices, self.namespaces))

    # ----- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Sync the informers, then bind UDP and TCP on the same port."""
        self._wire_informers()
        self.informers.start()
        await self.informers.wait_synced()
        host, port = self.listen
        for attempt in range(10):
            try:
                await self._bind(host, port)
                break
            except OSError as exc:
                # port 0: the free TCP port may be taken for UDP; take another
                if port != 0 or exc.errno != errno.EADDRINUSE or attempt == 9:
                    await self.informers.stop()
                    raise
        log.info("cluster DNS for %s serving on %s:%d (UDP, TCP), %d services, upstreams %s",
                 self.index.zone, host, self.port, len(self.index),
                 [f"{h}:{p}" for h, p in self.forwarder.upstreams] or "none")

    async def _bind(self, host: str, port: int) -> None:
        """TCP on ``port`` (0: a free one), then UDP on the same port."""
        self._tcp = await asyncio.start_server(self._serve_tcp, host, port)
        self.port = self._tcp.sockets[0].getsockname()[1]
        try:
            transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(host, self.port))
        except OSError:
            self._tcp.close()
            await self._tcp.wait_closed()
            self._tcp = None
            raise
        self._udp = transport

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
            self._tcp = None
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        await self.informers.stop()

    # ----- answering ---------------------------------------------------------------------

    def answer_now(self, query: dns.message.Message) -> dns.message.Message | None:
        """The response when it needs no upstream (cluster names, cached forwards)."""
        outcome = self.responder.answer(query)
        if outcome.response is not None:
            return outcome.response if outcome.chase is None else None
        return self.forwarder.cached(query)

    async def resolve(self, query: dns.message.Message) -> dns.message.Message:
        """The response to ``query``: ours, chased, forwarded, or SERVFAIL."""
        outcome = self.responder.answer(query)
        if outcome.response is None:
            resp = await self.forwarder.forward(query)
            return resp if resp is not None else _servfail(query)
        if outcome.chase is not None:
            chase = dns.message.make_query(outcome.chase, query.question[0].rdtype)
            upstream = await self.forwarder.forward(chase)
            if upstream is not None:
                outcome.response.answer.extend(upstream.answer)
        return outcome.response

    def _parse(self, data: bytes) -> dns.message.Message | None:
        try:
            return dns.message.from_wire(data)
        except dns.exception.DNSException:
            return None

    def handle_udp(self, data: bytes, addr: Any) -> None:
        start = time.perf_counter()
        if self._fast_gen == self.index.generation:
            hit = self._fast.get(data[2:])
            if hit is not None and self._udp is not None:
                self._udp.sendto(data[:2] + hit[0], addr)
                hit[1].inc()
                hit[2].inc()
                hit[3].observe(time.perf_counter() - start)
                return
        else:
            self._fast.clear()
            self._fast_gen = self.index.generation
        query = self._parse(data)
        if query is None or query.flags & dns.flags.QR:
            return
        outcome = self.responder.answer(query)
        if outcome.response is not None and outcome.chase is None:
            wire = self._send_udp(query, outcome.response, addr, start)
            if len(self._fast) >= FAST_CACHE_SIZE:
                self._fast.clear()
            if query.tsig is None:
                qtype = dns.rdatatype.to_text(query.question[0].rdtype) \
                    if query.question else "other"
                self._fast[data[2:]] = (
                    wire[2:], metrics.REQUESTS.labels("udp", qtype),
                    metrics.RESPONSES.labels(dns.rcode.to_text(outcome.response.rcode())),
                    metrics.DURATION.labels(qtype))
            return
        resp = self.forwarder.cached(query) if outcome.response is None else None
        if resp is not None:
            self._send_udp(query, resp, addr, start)
            return
        task = spawn(self._udp_slow(query, addr, start), name="dns-udp-forward")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _udp_slow(self, query: dns.message.Message, addr: Any, start: float) -> None:
        resp = await self.resolve(query)
        self._send_udp(query, resp, addr, start)

    def _send_udp(self, query: dns.message.Message, resp: dns.message.Message, addr: Any,
                  start: float) -> bytes:
        limit = max(512, query.payload) if query.edns >= 0 else 512
        wire = resp.to_wire(max_size=limit, prefer_truncation=True)
        if self._udp is not None:
            self._udp.sendto(wire, addr)
        self._observe("udp", query, resp, start)
        return wire

    def _observe(self, proto: str, query: dns.message.Message, resp: dns.message.Message,
                 start: float) -> None:
        qtype = dns.rdatatype.to_text(query.question[0].rdtype) if query.question else "other"
        metrics.REQUESTS.labels(proto, qtype).inc()
        metrics.RESPONSES.labels(dns.rcode.to_text(resp.rcode())).inc()
        metrics.DURATION.labels(qtype).observe(time.perf_counter() - start)

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE)
                data = await asyncio.wait_for(reader.readexactly(struct.unpack("!H", head)[0]),
                                              TCP_IDLE)
                start = time.perf_counter()
                query = self._parse(data)
                if query is None:
                    break
                resp = self.answer_now(query) or await self.resolve(query)
                writer.write(resp.to_wire(prepend_length=True, max_size=65535))
                await writer.drain()
                self._observe("tcp", query, resp, start)
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: ClusterDNS) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self.server.handle_udp(data, addr)
        except Exception:  # one bad packet must not stop the server
            log.exception("DNS query from %s failed", addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %r", exc)


def _servfail(query: dns.message.Message) -> dns.message.Message:
    resp = dns.message.make_response(query, recursion_available=True)
    resp.set_rcode(dns.rcode.SERVFAIL)
    return resp
