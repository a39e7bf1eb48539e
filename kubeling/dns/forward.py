"""Forwarding what is not the cluster's to the host's resolvers.

Pods resolve every name through the cluster DNS (dnsPolicy ClusterFirst), so
names outside the cluster zone go on to the nameservers of the host's
resolv.conf (or ``--upstream``), as CoreDNS's ``forward . /etc/resolv.conf``.
Each upstream is asked over UDP, and again over TCP when its answer is
truncated; the next upstream is tried when one fails, all within one deadline
(2 s); when none answers the client gets SERVFAIL. Positive answers are kept
for their TTL (at most 30 s) in a small cache, as CoreDNS's cache plugin does.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode

from kubeling.dns import metrics

log = logging.getLogger("kubeling.dns.forward")

CACHE_SIZE = 4096
MAX_CACHE_TTL = 30


def resolv_conf_nameservers(path: str) -> list[str]:
    """The ``nameserver`` lines of a resolv.conf (an unreadable file: none)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            out.append(parts[1])
    return out


def parse_upstream(spec: str) -> tuple[str, int]:
    """``1.1.1.1``, ``1.1.1.1:5353``, ``[::1]:53`` or ``::1`` -> (host, port)."""
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        return host, int(rest.lstrip(":") or 53)
    if spec.count(":") == 1:
        host, port = spec.split(":")
        return host, int(port)
    return spec, 53


class Forwarder:
    def __init__(self, upstreams: Sequence[tuple[str, int]], *, timeout: float = 2.0,
                 cache_size: int = CACHE_SIZE) -> None:
        self.upstreams = list(upstreams)
        self.timeout = timeout
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, int, int, bool], tuple[float, dns.message.Message]] \
            = OrderedDict()

    @staticmethod
    def _key(query: dns.message.Message) -> tuple[str, int, int, bool] | None:
        if len(query.question) != 1:
            return None
        q = query.question[0]
        return (q.name.to_text().lower(), int(q.rdtype), int(q.rdclass),
                bool(query.flags & dns.flags.CD))

    def cached(self, query: dns.message.Message) -> dns.message.Message | None:
        """A cached answer to ``query`` (its id and question made the query's), or None."""
        key = self._key(query)
        hit = self._cache.get(key) if key is not None else None
        if hit is None:
            return None
        expires, resp = hit
        if expires < time.monotonic():
            del self._cache[key]  # type: ignore[arg-type]
            return None
        metrics.CACHE_HITS.inc()
        resp.id = query.id
        resp.question = query.question
        return resp

    def _store(self, query: dns.message.Message, resp: dns.message.Message) -> None:
        key = self._key(query)
        if key is None or resp.rcode() != dns.rcode.NOERROR or not resp.answer or \
                self.cache_size <= 0:
            return
        ttl = min(min(r.ttl for r in resp.answer), MAX_CACHE_TTL)
        if ttl <= 0:
            return
        self._cache[key] = (time.monotonic() + ttl, resp)
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def forward(self, query: dns.message.Message) -> dns.message.Message | None:
        """The first upstream answer to ``query`` (with the query's id), or None when no
        upstream answered in time."""
        hit = self.cached(query)
        if hit is not None:
            return hit
        deadline = time.monotonic() + self.timeout
        for i, (host, port) in enumerate(self.upstreams):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # leave the later upstreams a share of the deadline
            budget = left / (len(self.upstreams) - i)
            to = f"{host}:{port}"
            metrics.FORWARD_REQUESTS.labels(to).inc()
            try:
                resp = await dns.asyncquery.udp(query, host, timeout=budget, port=port,
                                                ignore_unexpected=True)
                if resp.flags & dns.flags.TC:
                    resp = await dns.asyncquery.tcp(
                        query, host, timeout=max(0.1, deadline - time.monotonic()), port=port)
            except (dns.exception.DNSException, OSError, EOFError) as exc:
                metrics.FORWARD_FAILURES.labels(to).inc()
                log.debug("upstream %s failed for %s: %r", to, query.question, exc)
                continue
            metrics.FORWARD_RESPONSES.labels(to, dns.rcode.to_text(resp.rcode())).inc()
            self._store(query, resp)
            return resp
        return None

