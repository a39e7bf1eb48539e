"""The cluster DNS benchmark: queries per second and latency with ~1,000 Services loaded.

A fresh ``kubeling server`` (no node agent, no in-process DNS) gets N ClusterIP Services
with a named port; ``kubeling dns`` runs as its own process against it, and this process
asks it from concurrent UDP clients (asyncio, one socket each, one query in flight each)
for a fixed time per scenario:

- ``cluster A``: ``svc-<i>.bench.svc.cluster.local`` A, i random (after the first
  question of each name, answered from the server's cache of answer bytes);
- ``cluster A 0x20``: the same names in 50,000 random letter cases, so nearly every
  question misses that cache and is parsed, answered from the index and built anew;
- ``cluster SRV``: ``_http._tcp.svc-<i>...`` SRV (answer plus additional A);
- ``NXDOMAIN``: unknown names in the cluster zone (answer plus SOA).

As a peer, in the same run when it is installed, dnsmasq (Debian's dnsmasq-base) answers
the same A names from a hosts file and NXDOMAIN for the rest of ``cluster.local``.

    python -m bench.dnsperf [--services 1000] [--seconds 5] [--clients 16]

The load generator keeps its own cost low (queries built once, only the header of each
answer read) and shares the machine's two cores with the server it measures; its CPU time
is printed beside the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dns.message
import orjson

from bench.common import Conn, Figures, Server, free_port, insecure_context

NAMESPACE = "bench"


def pid_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wire(name: str, rdtype: str) -> bytes:
    return dns.message.make_query(name, rdtype, want_dnssec=False).to_wire()


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiter: asyncio.Future[bytes] | None = None

    def datagram_received(self, data: bytes, addr: object) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(data)


@dataclass
class Result:
    figures: Figures
    rcodes: dict[int, int]


async def load(port: int, queries: list[bytes], *, seconds: float, clients: int,
               name: str, server_pid: int) -> Result:
    """``clients`` sockets asking ``queries`` (in random order) for ``seconds``."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    rcodes: dict[int, int] = {}
    stop_at = time.perf_counter() + seconds

    async def client(seed: int) -> None:
        transport, proto = await loop.create_datagram_endpoint(
            _Client, remote_addr=("127.0.0.1", port))
        rnd = random.Random(seed)
        qid = seed * 4099
        try:
            while time.perf_counter() < stop_at:
                qid = (qid + 1) & 0xFFFF
                packet = struct.pack("!H", qid) + rnd.choice(queries)[2:]
                proto.waiter = loop.create_future()
                start = time.perf_counter()
                transport.sendto(packet)
                try:
                    data = await asyncio.wait_for(proto.waiter, 2.0)
                except TimeoutError:
                    rcodes[-1] = rcodes.get(-1, 0) + 1
                    continue
                latencies.append(time.perf_counter() - start)
                rcode = data[3] & 0x0F
                rcodes[rcode] = rcodes.get(rcode, 0) + 1
        finally:
            transport.close()

    cpu0, scpu0, t0 = time.process_time(), pid_cpu(server_pid), time.perf_counter()
    await asyncio.gather(*(client(i + 1) for i in range(clients)))
    figures = Figures(name, len(latencies), time.perf_counter() - t0, latencies,
                      client_cpu=time.process_time() - cpu0,
                      server_cpu=pid_cpu(server_pid) - scpu0)
    return Result(figures, rcodes)


async def create_services(server: Server, count: int) -> None:
    conn = await Conn.open(server.port, server.token, insecure_context())
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    await conn.request("POST", "/api/v1/namespaces", orjson.dumps(ns))
    conn.close()

    async def worker(part: range) -> None:
        c = await Conn.open(server.port, server.token, insecure_context())
        for i in part:
            svc = {"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": f"svc-{i}", "namespace": NAMESPACE},
                   "spec": {"clusterIP": f"10.43.{100 + i // 250}.{i % 250 + 1}",
                            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
            await c.call("POST", f"/api/v1/namespaces/{NAMESPACE}/services",
                         orjson.dumps(svc))
        c.close()

    await asyncio.gather(*(worker(range(k, count, 8)) for k in range(8)))


async def wait_answer(port: int, name: str, timeout: float = 60.0) -> None:
    import dns.asyncquery
    import dns.rcode

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            resp = await dns.asyncquery.udp(dns.message.make_query(name, "A"), "127.0.0.1",
                                            port=port, timeout=1)
            if resp.rcode() == dns.rcode.NOERROR and resp.answer:
                return
        except (TimeoutError, OSError, dns.exception.DNSException):
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{name} not answered within {timeout} s")


def random_case(name: str, rnd: random.Random) -> str:
    return "".join(c.upper() if rnd.random() < 0.5 else c for c in name)


def scenarios(count: int) -> list[tuple[str, list[bytes]]]:
    names = [f"svc-{i}.{NAMESPACE}.svc.cluster.local." for i in range(count)]
    rnd = random.Random(7)
    mixed = [wire(random_case(names[i % count], rnd), "A") for i in range(50 * count)]
    return [("cluster A", [wire(n, "A") for n in names]),
            ("cluster A 0x20", mixed),
            ("cluster SRV", [wire("_http._tcp." + n, "SRV") for n in names]),
            ("NXDOMAIN", [wire(f"nope-{i}.{NAMESPACE}.svc.cluster.local.", "A")
                          for i in range(count)])]


def start_kubeling_dns(server: Server, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "kubeling.cli.dns", "--kubeconfig", str(server.kubeconfig),
         "--listen", f"127.0.0.1:{port}", "--health-port", "0",
         "--upstream", f"127.0.0.1:{free_port()}", "--log-level", "warning"])


def start_dnsmasq(folder: Path, count: int) -> tuple[subprocess.Popen[bytes], int] | None:
    exe = shutil.which("dnsmasq")
    if exe is None:
        return None
    hosts = folder / "hosts"
    hosts.write_text("".join(f"10.43.{100 + i // 250}.{i % 250 + 1} "
                             f"svc-{i}.{NAMESPACE}.svc.cluster.local\n" for i in range(count)))
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
         f"--addn-hosts={hosts}", "--listen-address=127.0.0.1", "--bind-interfaces",
         f"--port={port}", "--local=/cluster.local/", "--user=root", "--pid-file=",
         "--cache-size=10000", "--log-facility=-"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, port


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="dnsperf-") as tmp:
        folder = Path(tmp)
        server = Server(folder / "server")
        server.data_dir.mkdir()
        server.start(server_args=("--disable-dns", "--disable-scheduler"))
        dns_proc: subprocess.Popen[bytes] | None = None
        peer: tuple[subprocess.Popen[bytes], int] | None = None
        try:
            t0 = time.perf_counter()
            await create_services(server, args.services)
            print(f"{args.services} Services created in {time.perf_counter() - t0:.1f} s")
            port = free_port()
            dns_proc = start_kubeling_dns(server, port)
            t0 = time.perf_counter()
            await wait_answer(port, f"svc-{args.services - 1}.{NAMESPACE}.svc.cluster.local.")
            print(f"kubeling dns answering after {time.perf_counter() - t0:.1f} s")
            peer = start_dnsmasq(folder, args.services)
            if peer is not None:
                await wait_answer(peer[1], f"svc-0.{NAMESPACE}.svc.cluster.local.")
            tests = scenarios(args.services)
            await load(port, tests[0][1], seconds=1.0, clients=args.clients, name="warm-up",
                       server_pid=dns_proc.pid)
            for name, queries in tests:
                res = await load(port, queries, seconds=args.seconds, clients=args.clients,
                                 name=f"kubeling {name}", server_pid=dns_proc.pid)
                print(res.figures.line(), f"rcodes {res.rcodes}")
                if peer is not None and name in ("cluster A", "NXDOMAIN"):
                    res = await load(peer[1], queries, seconds=args.seconds,
                                     clients=args.clients, name=f"dnsmasq {name}",
                                     server_pid=peer[0].pid)
                    print(res.figures.line(), f"rcodes {res.rcodes}")
            if peer is None:
                print("dnsmasq is not installed: no peer figures (apt-get install dnsmasq-base)")
        finally:
            for proc in (dns_proc, peer[0] if peer else None):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    proc.wait(10)
            server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--clients", type=int, default=16)
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
