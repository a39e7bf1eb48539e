"""A stand-in for the host's resolver: a tiny UDP DNS server answering fixed A records.

The test machines have no Internet, so "outside names are forwarded" is proven
against this server, given to the cluster DNS as its upstream. It is a real DNS
server on a real socket (dnspython messages), answering NXDOMAIN for names it
does not know, and it counts the queries it saw.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping
from types import TracebackType

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class Upstream:
    def __init__(self, records: Mapping[str, str], host: str = "127.0.0.1") -> None:
        self.records = {name.rstrip(".").lower() + ".": ip for name, ip in records.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.address = f"{host}:{self.sock.getsockname()[1]}"
        self.queries: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns-upstream", daemon=True)

    def __enter__(self) -> Upstream:
        self._thread.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:
                continue
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.RA
            question = query.question[0]
            name = question.name.to_text().lower()
            self.queries.append(name)
            ip = self.records.get(name)
            if ip is None:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.A:
                reply.answer.append(dns.rrset.from_text(name, 60, "IN", "A", ip))
            self.sock.sendto(reply.to_wire(), peer)
