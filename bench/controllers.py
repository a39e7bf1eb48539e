"""The controllers benchmark: a 1,000-replica Deployment, and the server's memory at scale.

- Rollout: a fresh ``kubeling server`` (scheduler and controllers in process) with 100 hollow
  nodes; the time for a Deployment of 1,000 replicas to become Available (every replica
  available, the Available condition True), then for a rolling update (new image, the
  default 25% surge / 25% unavailable) to finish as ``kubectl rollout status`` judges it.
- Scale: a fresh server with 5,000 hollow nodes (leases renewed every 10 s, as kubelets do)
  and 10 Deployments of 1,000 replicas; the time until all 10,000 pods are available and the
  server's resident memory (VmRSS) then.

    python -m bench.controllers [--quick] [--skip-rollout] [--skip-scale] [--lease-interval S]

On two cores the server cannot take 5,000 lease renewals every 10 s (500 writes a second)
while it creates, schedules and starts 10,000 pods: renewals fall behind, nodes are marked
Unknown and their pods evicted. ``--lease-interval 60 --node-monitor-grace-period 300`` keeps
every node healthy while the memory figure is taken.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.common import Conn, Server, insecure_context
from bench.scheduler import cpu_seconds, ensure_namespace, rss_mib, start_hollow, start_server

NAMESPACE = "bench"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"


def deployment(name: str, replicas: int, image: str = "nginx:1.26") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{
                                      "name": "web", "image": image,
                                      "resources": {"requests": {"cpu": "10m",
                                                                 "memory": "16Mi"}}}]}}}}


def available(d: dict[str, Any]) -> bool:
    st, spec = d.get("status") or {}, d["spec"]
    cond = {c["type"]: c["status"] for c in st.get("conditions") or ()}
    return (st.get("observedGeneration", 0) >= d["metadata"].get("generation", 0)
            and st.get("availableReplicas", 0) == spec["replicas"]
            and cond.get("Available") == "True")


def rolled_out(d: dict[str, Any]) -> bool:
    """``kubectl rollout status``'s test: the new ReplicaSet has every replica, no old one
    is left, and all are available."""
    st, spec = d.get("status") or {}, d["spec"]
    return (st.get("observedGeneration", 0) >= d["metadata"].get("generation", 0)
            and st.get("updatedReplicas", 0) == spec["replicas"]
            and st.get("replicas", 0) == st.get("updatedReplicas", 0)
            and st.get("availableReplicas", 0) == st.get("updatedReplicas", 0))


async def wait_until(conn: Conn, names: list[str], test: Any, timeout: float) -> float:
    """Seconds until ``test`` holds for every named Deployment (polled every 100 ms)."""
    started = time.perf_counter()
    pending = set(names)
    while pending:
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{sorted(pending)[:3]} not done after {timeout:.0f} s")
        for name in list(pending):
            d = orjson.loads(await conn.call("GET", f"{DEPLOYMENTS}/{name}"))
            if test(d):
                pending.discard(name)
        if pending:
            await asyncio.sleep(0.1)
    return time.perf_counter() - started


@dataclass
class Cluster:
    server: Server
    conn: Conn

    @classmethod
    async def start(cls, data: Path, nodes: int, lease_interval: float,
                    grace: float = 40.0) -> Cluster:
        data.mkdir()
        server = Server(data)
        start_server(server, "--node-monitor-grace-period", f"{grace}s")
        hollow = start_hollow(server, nodes, "--lease-interval", str(lease_interval),
                              "--status-interval", "300")
        print(f"  {nodes} hollow nodes registered in {hollow.seconds:.1f} s", flush=True)
        conn = await Conn.open(server.port, server.token, insecure_context())
        await ensure_namespace(conn, NAMESPACE)
        cluster = cls(server, conn)
        cluster.hollow = hollow  # type: ignore[attr-defined]
        return cluster

    def stop(self) -> None:
        self.conn.close()
        self.hollow.stop()  # type: ignore[attr-defined]
        self.server.stop()


async def rollout(workdir: Path, replicas: int, nodes: int, timeout: float) -> None:
    c = await Cluster.start(workdir / "rollout", nodes, 10.0)
    try:
        assert c.server.proc is not None
        pid = c.server.proc.pid
        cpu0 = cpu_seconds(pid)
        await c.conn.call("POST", DEPLOYMENTS, orjson.dumps(deployment("web", replicas)))
        up = await wait_until(c.conn, ["web"], available, timeout)
        cpu1 = cpu_seconds(pid)
        print(f"Deployment of {replicas} replicas Available in {up:6.1f} s "
              f"(server CPU {cpu1 - cpu0:.1f} s)", flush=True)
        d = orjson.loads(await c.conn.call("GET", f"{DEPLOYMENTS}/web"))
        d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
        await c.conn.call("PUT", f"{DEPLOYMENTS}/web", orjson.dumps(d))  # kubectl set image
        rolled = await wait_until(c.conn, ["web"], rolled_out, timeout)
        print(f"rolling update of {replicas} replicas finished in {rolled:6.1f} s "
              f"(server CPU {cpu_seconds(pid) - cpu1:.1f} s, RSS {rss_mib(pid):.0f} MiB)",
              flush=True)
    finally:
        c.stop()


async def scale(workdir: Path, nodes: int, deployments: int, replicas: int,
                lease_interval: float, grace: float, timeout: float) -> None:
    c = await Cluster.start(workdir / "scale", nodes, lease_interval, grace)
    try:
        assert c.server.proc is not None
        pid = c.server.proc.pid
        print(f"  server RSS with {nodes} nodes and no pods: {rss_mib(pid):.0f} MiB", flush=True)
        names = [f"web-{i}" for i in range(deployments)]
        cpu0 = cpu_seconds(pid)
        for name in names:
            await c.conn.call("POST", DEPLOYMENTS, orjson.dumps(deployment(name, replicas)))
        took = await wait_until(c.conn, names, available, timeout)
        print(f"{deployments} Deployments x {replicas} replicas Available on {nodes} nodes in "
              f"{took:6.1f} s (server CPU {cpu_seconds(pid) - cpu0:.1f} s); server RSS "
              f"{rss_mib(pid):.0f} MiB", flush=True)
    finally:
        c.stop()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 replicas, 1,000 scale pods")
    parser.add_argument("--replicas", type=int, default=1000)
    parser.add_argument("--rollout-nodes", type=int, default=100)
    parser.add_argument("--scale-nodes", type=int, default=5000)
    parser.add_argument("--scale-deployments", type=int, default=10)
    parser.add_argument("--lease-interval", type=float, default=10.0,
                        help="hollow node lease renewal period of the scale stage")
    parser.add_argument("--node-monitor-grace-period", type=float, default=40.0,
                        help="the server's grace period for the scale stage")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-rollout", action="store_true")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    if args.quick:
        args.replicas, args.rollout_nodes, args.scale_nodes = 100, 20, 500
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    print(f"kubeling controllers benchmark: {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="kubeling-bench-ctrl-") as tmp:
        if not args.skip_rollout:
            await rollout(Path(tmp), args.replicas, args.rollout_nodes, args.timeout)
        if not args.skip_scale:
            await scale(Path(tmp), args.scale_nodes, args.scale_deployments, args.replicas,
                        args.lease_interval, args.node_monitor_grace_period, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
