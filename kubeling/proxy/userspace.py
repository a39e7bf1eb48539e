"""The userspace fallback: relay TCP from node ports to endpoints, for hosts without root.

Without root there are no NAT rules, and a cluster IP is not an address of the
host, so it cannot be bound: only what a plain process can listen on is
served — every Service's node ports on all addresses, and its external and
load-balancer IPs where they are local. Each accepted connection is relayed to
an endpoint chosen round robin (or the one a client was last sent to, under
ClientIP affinity, until its timeout); an endpoint that refuses is skipped for
the next. With no endpoint left the client's connection is closed at once.
This is what the process runtime needs: its endpoints are host addresses and
ports. TCP only; UDP and SCTP ports are not relayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Mapping, Sequence

from kubeling.proxy.model import Endpoint, ServicePort

log = logging.getLogger("kubeling.proxy")

Bind = tuple[str, int]
_CHUNK = 65536


class Balancer:
    """Chooses endpoints for one listener; updated in place when endpoints change."""

    def __init__(self, sp: ServicePort) -> None:
        self.endpoints: list[Endpoint] = []
        self.affinity = 0
        self._next = 0
        self._sticky: dict[str, tuple[Endpoint, float]] = {}
        self.update(sp)

    def update(self, sp: ServicePort) -> None:
        self.endpoints = list(sp.external_endpoints)
        self.affinity = sp.affinity_timeout
        live = set(self.endpoints)
        self._sticky = {c: v for c, v in self._sticky.items() if v[0] in live}

    def order(self, client_ip: str) -> list[Endpoint]:
        """Endpoints to try for a new connection from ``client_ip``, best first."""
        eps = self.endpoints
        if not eps:
            return []
        if self.affinity:
            hit = self._sticky.get(client_ip)
            if hit is not None and hit[1] > time.monotonic():
                return [hit[0], *(e for e in eps if e != hit[0])]
        start = self._next % len(eps)
        self._next += 1
        return eps[start:] + eps[:start]

    def chose(self, client_ip: str, ep: Endpoint) -> None:
        if self.affinity:
            self._sticky[client_ip] = (ep, time.monotonic() + self.affinity)


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(_CHUNK):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except (ConnectionError, OSError):
        dst.close()


class UserspaceBackend:
    """Listeners on node ports (and local external IPs), one :class:`Balancer` each."""

    def __init__(self, *, node_ips: Sequence[str] = (), bind_address: str = "0.0.0.0",
                 connect_timeout: float = 3.0) -> None:
        self.node_ips = list(node_ips)
        self.bind_address = bind_address
        self.connect_timeout = connect_timeout
        self.servers: dict[Bind, asyncio.Server] = {}
        self.balancers: dict[Bind, Balancer] = {}
        self._owned: dict[str, set[Bind]] = {}
        self._failed: set[Bind] = set()

    async def setup(self) -> None:
        log.info("userspace proxy: cluster IPs cannot be bound without root, so only node "
                 "ports (and local external IPs) are served, TCP only")

    def _binds(self, sps: Sequence[ServicePort]) -> dict[Bind, ServicePort]:
        out: dict[Bind, ServicePort] = {}
        for sp in sps:
            if sp.protocol != "TCP":
                continue
            if sp.node_port:
                out[(self.bind_address, sp.node_port)] = sp
            for ip in sp.external_ips:
                out[(ip, sp.port)] = sp
        return out

    async def sync(self, ports: Mapping[str, Sequence[ServicePort] | None], *,
                   full: bool) -> None:
        changes: dict[str, Sequence[ServicePort] | None] = dict(ports)
        if full:
            changes.update({k: None for k in self._owned if k not in ports})
        for key, sps in changes.items():
            want = self._binds(sps or ())
            for bind in self._owned.get(key, set()) - set(want):
                await self._close(bind)
            for bind, sp in want.items():
                if bind in self.balancers:
                    self.balancers[bind].update(sp)
                    continue
                balancer = Balancer(sp)
                try:
                    self.servers[bind] = await asyncio.start_server(
                        functools.partial(self._relay, balancer=balancer), bind[0], bind[1],
                        reuse_address=True)
                except OSError as exc:
                    if bind not in self._failed:
                        log.warning("userspace proxy: cannot listen on %s:%d for %s: %s",
                                    bind[0], bind[1], sp.key, exc)
                    self._failed.add(bind)
                    continue
                self._failed.discard(bind)
                self.balancers[bind] = balancer
            self._owned[key] = set(want) & set(self.balancers)
            if not self._owned[key]:
                del self._owned[key]

    async def _close(self, bind: Bind) -> None:
        self.balancers.pop(bind, None)
        server = self.servers.pop(bind, None)
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    async def stop(self, *, cleanup: bool) -> None:
        del cleanup  # nothing outlives the process
        for bind in list(self.servers):
            await self._close(bind)
        self._owned.clear()

    def counts(self) -> tuple[int, int]:
        return len(self.balancers), sum(len(b.endpoints) for b in self.balancers.values())

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                     balancer: Balancer) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        try:
            for ep in balancer.order(peer[0]):
                try:
                    up_r, up_w = await asyncio.wait_for(
                        asyncio.open_connection(ep.ip, ep.port), self.connect_timeout)
                except (OSError, TimeoutError) as exc:
                    log.debug("userspace proxy: endpoint %s failed: %s", ep.addr, exc)
                    continue
                balancer.chose(peer[0], ep)
                try:
                    await asyncio.gather(_copy(reader, up_w), _copy(up_r, writer))
                finally:
                    up_w.close()
                return
        finally:
            writer.close()
