"""The scheduler benchmark: pods per second from creation to bound, on thousands of hollow nodes.

The workloads of Kubernetes' scheduler_perf, on one machine:

- SchedulingBasic: 10,000 pods (100m CPU, 500Mi each) on 5,000 nodes;
- SchedulingPodAntiAffinity: pods that refuse to share a node with each other (required
  anti-affinity by ``kubernetes.io/hostname``), one per node at most;
- TopologySpreading: pods spread over three zones with maxSkew 1 (DoNotSchedule).

Each workload gets a fresh ``kubeling server`` (scheduler in process, controllers off, as
scheduler_perf runs only the API server and the scheduler) and a ``kubeling hollow-nodes``
process whose nodes report the bound pods Running (``--bare-nodes``: plain Node objects and no
kubelet at all, as scheduler_perf does). Pods are created from 16 keep-alive
connections while one watch notes when each pod is first seen bound. The figure is pods /
(last bound - first create), with creation-to-bound latency percentiles, and the server's
memory (VmRSS) once every pod is bound.

    python -m bench.scheduler [--quick] [--nodes N] [--pods N] [--workloads basic,anti,spread]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.common import Conn, FirstSeen, Server, insecure_context, quantile

NAMESPACE = "bench"


# ----- the cluster under test ---------------------------------------------------------------


def start_server(server: Server, *flags: str) -> None:
    """``kubeling server`` with server flags, logging warnings only."""
    server.start("--log-level", "warning", server_args=flags)


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Hollow:
    """A ``kubeling hollow-nodes`` process."""

    proc: subprocess.Popen[bytes]
    log: Path
    seconds: float  # until every node was registered

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_hollow(server: Server, count: int, *flags: str, timeout: float = 600.0) -> Hollow:
    log = server.data_dir / "hollow.log"
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubeling.cli.main", "--log-level", "warning", "hollow-nodes",
         "--kubeconfig", str(server.kubeconfig), "--count", str(count), *flags],
        stdout=open(log, "ab"), stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"hollow-nodes exited; see {log}")
        if f"{count} hollow nodes ready" in log.read_text(errors="replace"):
            return Hollow(proc, log, time.monotonic() - started)
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("hollow nodes not registered in time")


async def create_bare_nodes(server: Server, count: int, concurrency: int = 16) -> float:
    """Node objects with no agent behind them, as scheduler_perf creates them."""
    from kubeling.hollow.objects import ZONE_LABEL, node_object

    ctx = insecure_context()
    conns = [await Conn.open(server.port, server.token, ctx) for _ in range(concurrency)]
    indices = iter(range(count))
    started = time.monotonic()

    async def worker(conn: Conn) -> None:
        for i in indices:
            node = node_object(f"node-{i}", i, cpu="4", memory="32Gi", pods="110",
                               labels={ZONE_LABEL: f"zone-{i % 3}"}, now=time.time())
            await conn.call("POST", "/api/v1/nodes", orjson.dumps(node))

    await asyncio.gather(*(worker(c) for c in conns))
    for c in conns:
        c.close()
    return time.monotonic() - started


async def ensure_namespace(conn: Conn, name: str) -> None:
    status, body = await conn.request("POST", "/api/v1/namespaces", orjson.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
    if status not in (201, 409):
        raise RuntimeError(f"namespace {name}: HTTP {status} {body[:200]!r}")


# ----- the workloads ------------------------------------------------------------------------


def pod(name: str, extra: dict[str, Any] | None = None, labels: dict[str, str] | None = None
        ) -> dict[str, Any]:
    """scheduler_perf's default pod: one pause container asking 100m CPU and 500Mi."""
    res = {"cpu": "100m", "memory": "500Mi"}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                                     "ports": [{"containerPort": 80}],
                                     "resources": {"requests": res, "limits": res}}],
                     **(extra or {})}}


def basic_pod(i: int) -> bytes:
    return orjson.dumps(pod(f"basic-{i}"))


def anti_affinity_pod(i: int) -> bytes:
    sel = {"matchLabels": {"color": "green"}}
    return orjson.dumps(pod(f"anti-{i}", {"affinity": {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": sel, "topologyKey": "kubernetes.io/hostname"}]}}},
        {"color": "green"}))


def spread_pod(i: int) -> bytes:
    return orjson.dumps(pod(f"spread-{i}", {"topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
         "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": {"color": "blue"}}}]}, {"color": "blue"}))


@dataclass
class Result:
    name: str
    nodes: int
    pods: int
    bound: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    register_seconds: float = 0.0
    server_cpu: float = 0.0
    rss_mib: float = 0.0

    @property
    def rate(self) -> float:
        return self.bound / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (f"{self.name:<26} {self.bound:>6}/{self.pods} pods on {self.nodes} nodes in "
                f"{self.seconds:6.1f} s: {self.rate:6.0f} pods/s; creation-to-bound p50 "
                f"{quantile(self.latencies, 0.5) / 1000:5.2f} s, p99 "
                f"{quantile(self.latencies, 0.99) / 1000:5.2f} s; server CPU "
                f"{self.server_cpu:5.1f} s, RSS {self.rss_mib:5.0f} MiB "
                f"(nodes registered in {self.register_seconds:.0f} s)")


async def measure(server: Server, name: str, body: Callable[[int], bytes], *, count: int,
                  nodes: int, register_seconds: float, timeout: float,
                  concurrency: int = 16) -> Result:
    ctx = insecure_context()
    admin = await Conn.open(server.port, server.token, ctx)
    await ensure_namespace(admin, NAMESPACE)
    listed = orjson.loads(await admin.call("GET", f"/api/v1/namespaces/{NAMESPACE}/pods"))
    watch = FirstSeen(lambda o: bool((o.get("spec") or {}).get("nodeName")), count)
    wconn = await Conn.open(server.port, server.token, ctx)
    watcher = asyncio.create_task(watch.run(wconn, NAMESPACE,
                                            listed["metadata"]["resourceVersion"]))
    conns = [await Conn.open(server.port, server.token, ctx) for _ in range(concurrency)]
    created: dict[str, float] = {}
    indices = iter(range(count))
    path = f"/api/v1/namespaces/{NAMESPACE}/pods"

    async def worker(conn: Conn) -> None:
        for i in indices:
            data = body(i)
            pod_name = orjson.loads(data)["metadata"]["name"]
            created[pod_name] = time.perf_counter()
            await conn.call("POST", path, data)

    cpu0 = server.cpu_seconds()
    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    print(f"  {name}: {count} pods created in {time.perf_counter() - started:.1f} s",
          flush=True)
    try:
        await asyncio.wait_for(watch.done.wait(), timeout)
    except TimeoutError:
        print(f"  {name}: only {len(watch.seen)}/{count} bound after {timeout:.0f} s",
              flush=True)
    last = max(watch.seen.values(), default=started)
    result = Result(name, nodes, count, len(watch.seen), last - started,
                    [t - created[n] for n, t in watch.seen.items() if n in created],
                    register_seconds, server.cpu_seconds() - cpu0,
                    rss_mib(server.proc.pid) if server.proc else 0.0)
    watcher.cancel()
    for c in (admin, wconn, *conns):
        c.close()
    return result


WORKLOADS: dict[str, tuple[str, Callable[[int], bytes]]] = {
    "basic": ("SchedulingBasic", basic_pod),
    "anti": ("SchedulingPodAntiAffinity", anti_affinity_pod),
    "spread": ("TopologySpreading", spread_pod),
}


async def run_workload(key: str, workdir: Path, args: argparse.Namespace) -> Result:
    name, body = WORKLOADS[key]
    count = {"basic": args.pods, "anti": args.anti_pods, "spread": args.spread_pods}[key]
    data = workdir / key
    data.mkdir()
    server = Server(data)
    start_server(server, "--disable-controllers")
    hollow = None
    try:
        if args.bare_nodes:
            registered = await create_bare_nodes(server, args.nodes)
        else:
            hollow = start_hollow(server, args.nodes, "--zones", "3",
                                  "--lease-interval", str(args.lease_interval),
                                  "--status-interval", "300")
            registered = hollow.seconds
        print(f"  {name}: {args.nodes} nodes registered in {registered:.1f} s", flush=True)
        return await measure(server, name, body, count=count, nodes=args.nodes,
                             register_seconds=registered, timeout=args.timeout)
    finally:
        if hollow is not None:
            hollow.stop()
        server.stop()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 nodes, 1,000 pods")
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=10_000, help="SchedulingBasic pods")
    parser.add_argument("--anti-pods", type=int, default=1000,
                        help="anti-affinity pods (at most one per node)")
    parser.add_argument("--spread-pods", type=int, default=10_000)
    parser.add_argument("--workloads", default="basic,anti,spread")
    parser.add_argument("--lease-interval", type=float, default=40.0,
                        help="hollow node lease renewal period (no node controller runs)")
    parser.add_argument("--timeout", type=float, default=600.0, help="per workload")
    parser.add_argument("--bare-nodes", action="store_true",
                        help="plain Node objects, no hollow kubelets (scheduler_perf's way)")
    args = parser.parse_args()
    if args.quick:
        args.nodes, args.pods, args.anti_pods, args.spread_pods = 500, 1000, 200, 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    print(f"kubeling scheduler benchmark: {os.cpu_count()} CPUs, {args.nodes} hollow nodes",
          flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="kubeling-bench-sched-") as tmp:
        for key in [w.strip() for w in args.workloads.split(",") if w.strip()]:
            results.append(await run_workload(key, Path(tmp), args))
            print(results[-1].line(), flush=True)
    print("\nsummary (target: 680 pods/s, scheduler_perf's SchedulingBasic floor)")
    for r in results:
        print(r.line())
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
