"""Service proxy programming latency: 1,000 Services of 10 endpoints each in real nftables.

A real ``kubeling server`` holds the Services and EndpointSlices; a
:class:`~kubeling.proxy.ServiceProxy` in this process programs a table in a
throwaway network namespace (nft through ``nsenter``), as it would a node's.
Printed:

- the first full sync (all rules in one nft transaction) and the proxy's whole start
  (list + watch of both kinds, then that sync);
- endpoint change -> rule in the kernel: from the API write of one slice to the end of the
  proxy sync that covers it (nft has committed by then; each change is checked with
  ``nft list`` afterwards, outside the timing), p50/p99 over the changes;
- the floor: ``nft -f`` of the same full ruleset alone, and of one incremental change.

Needs root and nft. ``python -m bench.proxysync [--services N] [--endpoints M]
[--changes K]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Server, quantile
from kubeling.api import kinds
from kubeling.client.http import HttpClient
from kubeling.proxy import ServiceProxy
from kubeling.proxy.nftrules import chain_name

NS = f"klbench-proxy-{os.getpid()}"
TABLE = "kubeling"


def _kind(group: str, resource: str) -> kinds.Kind:
    kind = kinds.by_resource(group, resource)
    assert kind is not None
    return kind


SERVICE = _kind("", "services")
SLICE = _kind("discovery.k8s.io", "endpointslices")


def service(i: int) -> dict[str, Any]:
    return {"metadata": {"name": f"s{i}"},
            "spec": {"clusterIP": f"10.43.{100 + i // 250}.{i % 250 + 1}",
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def eslice(i: int, endpoints: int, gen: int = 0) -> dict[str, Any]:
    base = (i * endpoints + gen) % 60000
    return {"metadata": {"name": f"s{i}-x", "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [f"10.42.{(base + j) // 250 % 250}.{(base + j) % 250 + 2}"],
                           "conditions": {"ready": True}, "nodeName": "bench"}
                          for j in range(endpoints)]}


def nft(*args: str, script: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net=/run/netns/{NS}", "nft", *args], input=script,
                          capture_output=True, text=True)


async def populate(client: HttpClient, n: int, endpoints: int) -> float:
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with sem:
            await client.create(SERVICE, "default", service(i))
            await client.create(SLICE, "default", eslice(i, endpoints))
    t = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - t


async def run(args: argparse.Namespace, server: Server) -> None:
    client = HttpClient(f"https://127.0.0.1:{server.port}", token=server.token,
                        insecure=True)
    took = await populate(client, args.services, args.endpoints)
    print(f"created {args.services} Services x {args.endpoints} endpoints in {took:.1f} s")
    proxy = ServiceProxy(client, node_name="bench", node_ips=["203.0.113.1"],
                         mode="nftables", table=TABLE, check_period=3600,
                         command_prefix=["nsenter", f"--net=/run/netns/{NS}"])
    t = time.perf_counter()
    await proxy.start()
    start = time.perf_counter() - t
    full = proxy.last_sync_duration
    assert proxy.backend is not None
    script = proxy.backend.last_script  # type: ignore[attr-defined]
    print(f"first full sync: {full * 1000:.0f} ms ({script.count(chr(10))} nft lines); "
          f"proxy start incl. informers: {start * 1000:.0f} ms")

    done: dict[str, asyncio.Event] = {}

    def synced(keys: set[str], _full: bool) -> None:
        for k in keys & done.keys():
            done[k].set()
    proxy.listeners.append(synced)
    latencies: list[float] = []
    syncs: list[float] = []
    for c in range(args.changes):
        i = (c * 7919) % args.services
        key = f"default/s{i}"
        old = await client.get(SLICE, "default", f"s{i}-x")
        new = eslice(i, args.endpoints, gen=c + 1)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        done[key] = asyncio.Event()
        t = time.perf_counter()
        await client.update(SLICE, {**new, "metadata": {**new["metadata"],
                                                        "namespace": "default"}})
        await asyncio.wait_for(done[key].wait(), 10)
        latencies.append(time.perf_counter() - t)
        syncs.append(proxy.last_sync_duration)
        del done[key]
        ip = new["endpoints"][-1]["addresses"][0]
        chain = chain_name("endpoint", f"default/s{i}/tcp/http__{ip}/8080")
        listed = nft("list", "chain", "ip", TABLE, chain)
        assert ip in listed.stdout, f"change {c}: {chain} not in the kernel"
    print(f"endpoint change -> rules in the kernel over {len(latencies)} changes: "
          f"p50 {quantile(latencies, 0.5):.1f} ms, p99 {quantile(latencies, 0.99):.1f} ms "
          f"(the sync itself: p50 {quantile(syncs, 0.5):.1f} ms, "
          f"p99 {quantile(syncs, 0.99):.1f} ms)")
    incremental = proxy.backend.last_script  # type: ignore[attr-defined]
    await proxy.stop()

    floors = []
    for _ in range(3):
        t = time.perf_counter()
        res = nft("-f", "-", script=script)
        floors.append(time.perf_counter() - t)
        assert res.returncode == 0, res.stderr
    t = time.perf_counter()
    res = nft("-f", "-", script=incremental)
    one = time.perf_counter() - t
    print(f"floor: nft -f of the same full ruleset alone: best {min(floors) * 1000:.0f} ms "
          f"of 3; of one incremental change ({incremental.count(chr(10))} lines, "
          f"already applied): {one * 1000:.0f} ms")
    await client.close()


def main() -> None:
    import logging
    logging.basicConfig(level=os.environ.get("BENCH_LOG", "WARNING"))
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--endpoints", type=int, default=10)
    p.add_argument("--changes", type=int, default=100)
    args = p.parse_args()
    if os.geteuid() != 0 or shutil.which("nft") is None:
        raise SystemExit("bench.proxysync needs root and nft")
    work = Path(tempfile.mkdtemp(prefix="klbench-proxy-"))
    server = Server(work)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        server.start(server_args=("--advertise-address", "203.0.113.1"))
        asyncio.run(run(args, server))
    finally:
        server.stop()
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
