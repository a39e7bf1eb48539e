"""The pod startup benchmark: creation to Running on one node, and what the agent costs.

Starts a ``kubeling server`` that is also its own node (the agent in process, the process
runtime) and, for each batch size (30 and 100 pods, as Kubernetes' pod startup SLO is
stated for), creates that many pods running ``sleep 3600`` at once from 8 keep-alive
connections while one watch notes when each pod is first seen ``Running``. The figure is
the latency from each pod's create request to that watch event, p50 and p99 (the SLO:
p99 at most 5 s). With the 100 pods running, it measures the agent: resident memory of the
server process and of the runtime's shims (the ``sleep`` processes themselves are the
workload, not counted), CPU they used while the pods started and CPU they use at rest.

The floor, in the same run: the same ``sleep 3600`` started N at once straight through
``subprocess``, latency from the start of the batch to each process running; the pod
figures are printed as ratios of it.

With ``--runtime oci`` the pods are OCI containers of the busybox test image (imported
through the agent's airgap directory) and the floor is bare ``runc run -d`` of an
equivalent bundle, N at once (bench/runcfloor.py), with ``ctr run -d`` through a private
containerd beside it where Debian's containerd is installed.

    python -m bench.pods [--quick] [--sizes 30,100] [--idle 10] [--runtime process|oci]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import psutil

from bench.common import Conn, FirstSeen, Server, insecure_context, quantile

NODE = "bench-node"
SLEEP = shutil.which("sleep") or "/bin/sleep"
CGROUP_PARENT = "kubeling-bench"


def pod(name: str) -> bytes:
    return orjson.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "sleeper"}},
        "spec": {"containers": [{"name": "sleep", "image": "busybox:1.36",
                                 "command": ["sleep", "3600"]}],
                 "terminationGracePeriodSeconds": 1},
    })


# ----- what the agent costs -----------------------------------------------------------------


def _is_workload(proc: psutil.Process) -> bool:
    try:
        cmd = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return bool(cmd) and os.path.basename(cmd[0]) == "sleep" and cmd[1:] == ["3600"]


def _is_shim(cmd: list[str], marker: str) -> bool:
    """A runtime shim of the server whose data dir is ``marker``."""
    return (any(os.path.basename(part).startswith("shim") for part in cmd[:6])
            and any(marker in part for part in cmd))


@dataclass
class Usage:
    """The server process and the runtime's helper processes (shims), workloads excluded."""

    rss_server: float = 0.0  # MiB
    rss_shims: float = 0.0
    pss_total: float = 0.0  # proportional set size: shared pages counted once overall
    shims: int = 0
    workloads: int = 0
    cpu_seconds: float = 0.0
    cpu_shims: float = 0.0


def agent_usage(pid: int, data_dir: Path) -> Usage:
    """The server and every shim of its runtime (a shim detaches from the server, so it is
    found by the runtime directory on its command line), and the shims' children."""
    usage = Usage()
    marker = str(data_dir)
    procs: list[psutil.Process] = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if proc.pid == pid or _is_shim(cmd, marker):
            procs.append(proc)
    for proc in procs:
        try:
            if proc.pid != pid:
                usage.workloads += sum(1 for c in proc.children(recursive=True)
                                       if _is_workload(c))
            rss = proc.memory_info().rss / (1 << 20)
            usage.pss_total += getattr(proc.memory_full_info(), "pss", 0) / (1 << 20)
            times = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        used = times.user + times.system
        if proc.pid == pid:  # with its reaped children: the shims start there, then detach
            used += times.children_user + times.children_system
        usage.cpu_seconds += used
        if proc.pid != pid:
            usage.cpu_shims += used
        if proc.pid == pid:
            usage.rss_server = rss
        else:
            usage.rss_shims += rss
            usage.shims += 1
    return usage


# ----- pods through the API -----------------------------------------------------------------


def running_watch(expected: int) -> FirstSeen:
    """When each pod is first seen Running."""
    return FirstSeen(lambda o: (o.get("status") or {}).get("phase") == "Running", expected)


@dataclass
class Round:
    count: int
    started: int
    seconds: float  # first create to last Running
    latencies: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    floor_name: str = "subprocess"
    peers: dict[str, list[float]] = field(default_factory=dict)  # e.g. ctr run
    cpu_seconds: float = 0.0  # server + shims while the pods started
    cpu_shims: float = 0.0  # of which the shims
    usage: Usage | None = None
    idle_cores: float = 0.0

    def line(self) -> str:
        p50, p99 = quantile(self.latencies, 0.5) / 1000, quantile(self.latencies, 0.99) / 1000
        f50, f99 = quantile(self.floor, 0.5) / 1000, quantile(self.floor, 0.99) / 1000
        ratio = (f"{p50 / f50:6.0f}x / {p99 / f99:6.0f}x" if f50 and f99 else "n/a")
        out = (f"{self.count:>4} pods: {self.started}/{self.count} Running in "
               f"{self.seconds:5.2f} s; creation-to-Running p50 {p50:5.2f} s, p99 {p99:5.2f} s "
               f"(SLO p99 <= 5 s: {'met' if p99 <= 5 and self.started == self.count else 'MISSED'})"
               f"\n      floor ({self.floor_name}, {self.count} at once): p50 {f50 * 1000:6.2f} "
               f"ms, p99 {f99 * 1000:6.2f} ms; pods/floor p50 / p99: {ratio}; overhead over "
               f"the floor at p50 {(p50 - f50) * 1000:6.0f} ms")
        for name, peer in self.peers.items():
            q50, q99 = quantile(peer, 0.5) / 1000, quantile(peer, 0.99) / 1000
            out += (f"\n      peer ({name}, {self.count} at once): p50 {q50 * 1000:6.2f} ms, p99 "
                    f"{q99 * 1000:6.2f} ms; pods/peer p50 {p50 / q50 if q50 else 0:5.1f}x")
        out += (f"\n      agent CPU while starting: {self.cpu_seconds:5.1f} s (shims "
                f"{self.cpu_shims:4.1f} s after they detached)")
        if self.usage is not None:
            u = self.usage
            out += (f"\n      at {u.workloads} running pods: server RSS {u.rss_server:6.1f} MiB, "
                    f"{u.shims} shims RSS {u.rss_shims:6.1f} MiB (total "
                    f"{u.rss_server + u.rss_shims:6.1f} MiB, PSS {u.pss_total:6.1f} MiB); "
                    f"CPU at rest "
                    f"{self.idle_cores * 1000:5.0f} millicores")
        return out


async def ensure_namespace(conn: Conn, name: str) -> None:
    status, body = await conn.request("POST", "/api/v1/namespaces", orjson.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
    if status not in (201, 409):
        raise RuntimeError(f"namespace {name}: HTTP {status} {body[:200]!r}")


async def wait_for_node(conn: Conn, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = await conn.request("GET", f"/api/v1/nodes/{NODE}")
        if status == 200:
            conditions = orjson.loads(body).get("status", {}).get("conditions") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"node {NODE} not Ready within {timeout:.0f} s")


async def start_pods(server: Server, namespace: str, count: int, timeout: float,
                     concurrency: int = 8) -> Round:
    assert server.proc is not None
    ctx = insecure_context()
    admin = await Conn.open(server.port, server.token, ctx)
    await ensure_namespace(admin, namespace)
    listed = orjson.loads(await admin.call("GET", f"/api/v1/namespaces/{namespace}/pods"))
    watch = running_watch(count)
    wconn = await Conn.open(server.port, server.token, ctx)
    watcher = asyncio.ensure_future(watch.run(wconn, namespace,
                                              listed["metadata"]["resourceVersion"]))
    conns = [await Conn.open(server.port, server.token, ctx) for _ in range(concurrency)]
    created: dict[str, float] = {}
    names = iter(f"sleeper-{i}" for i in range(count))
    path = f"/api/v1/namespaces/{namespace}/pods"

    async def creator(conn: Conn) -> None:
        for name in names:
            created[name] = time.perf_counter()
            await conn.call("POST", path, pod(name))

    cpu0 = agent_usage(server.proc.pid, server.data_dir).cpu_seconds
    started = time.perf_counter()
    await asyncio.gather(*(creator(c) for c in conns))
    try:
        await asyncio.wait_for(watch.done.wait(), timeout)
    except TimeoutError:
        print(f"  only {len(watch.seen)}/{count} Running after {timeout:.0f} s", flush=True)
    last = max(watch.seen.values(), default=started)
    result = Round(count, len(watch.seen), last - started,
                   [t - created[n] for n, t in watch.seen.items() if n in created])
    after = agent_usage(server.proc.pid, server.data_dir)
    result.cpu_seconds = after.cpu_seconds - cpu0
    result.cpu_shims = after.cpu_shims
    watcher.cancel()
    for c in (admin, wconn, *conns):
        c.close()
    return result


async def delete_pods(server: Server, namespace: str, timeout: float = 120.0) -> None:
    """Delete the round's pods at once and wait until no workload process is left."""
    assert server.proc is not None
    conn = await Conn.open(server.port, server.token, insecure_context())
    listed = orjson.loads(await conn.call("GET", f"/api/v1/namespaces/{namespace}/pods"))
    body = orjson.dumps({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})
    for item in listed["items"]:
        status, _ = await conn.request(
            "DELETE", f"/api/v1/namespaces/{namespace}/pods/{item['metadata']['name']}", body)
        if status not in (200, 202, 404):
            raise RuntimeError(f"delete: HTTP {status}")
    conn.close()
    deadline = time.monotonic() + timeout
    while agent_usage(server.proc.pid, server.data_dir).workloads and time.monotonic() < deadline:
        await asyncio.sleep(0.5)


async def idle_cores(server: Server, seconds: float) -> float:
    assert server.proc is not None
    before = agent_usage(server.proc.pid, server.data_dir).cpu_seconds
    await asyncio.sleep(seconds)
    return (agent_usage(server.proc.pid, server.data_dir).cpu_seconds - before) / seconds


def kill_leftovers(data_dir: Path) -> None:
    """Stop what the agent left running after the server stopped (the shims and their pods
    outlive the agent by design, for the next agent to adopt)."""
    marker = str(data_dir)
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if _is_shim(cmd, marker):
            try:
                for child in proc.children(recursive=True):
                    child.kill()
                proc.kill()
            except psutil.NoSuchProcess:
                pass


# ----- the floor ----------------------------------------------------------------------------


def subprocess_floor(count: int) -> list[float]:
    """Start ``count`` sleeps at once; each one's latency from the start of the batch to its
    Popen returning (the child has exec'd)."""
    procs: list[subprocess.Popen[bytes]] = []
    latencies: list[float] = []
    started = time.perf_counter()
    try:
        for _ in range(count):
            procs.append(subprocess.Popen([SLEEP, "3600"], stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True))
            latencies.append(time.perf_counter() - started)
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
    return latencies


# ----- the run ------------------------------------------------------------------------------


async def floors(result: Round, count: int, args: argparse.Namespace, workdir: Path) -> None:
    """The same run's floor: subprocess for the process runtime; bare ``runc run -d`` (and
    ``ctr run -d`` where containerd is installed) of an equivalent bundle for OCI."""
    if args.runtime == "process":
        result.floor = subprocess_floor(count)
        return
    from bench.runcfloor import ctr_floor, runc_floor

    image = workdir / "agent" / "images-import" / "busybox.tar"
    result.floor_name = "runc run -d"
    result.floor = await runc_floor(count, count, image, workdir=workdir)
    ctr = await ctr_floor(count, count, image)
    if ctr is not None:
        result.peers["ctr run -d"] = ctr


async def run(sizes: list[int], args: argparse.Namespace, workdir: Path) -> list[Round]:
    server = Server(workdir)
    extra: tuple[str, ...] = ()
    if args.runtime == "oci":
        from tests.imagebuild import build_image

        (workdir / "agent" / "images-import").mkdir(parents=True)
        build_image(workdir / "agent" / "images-import" / "busybox.tar", name="busybox:1.36")
        extra = ("--cgroup-parent", CGROUP_PARENT)
    server.start("--log-level", "warning", agent=True,
                 server_args=("--node-name", NODE, "--kubelet-port", "0",
                              "--kubelet-health-port", "0", "--runtime", args.runtime, *extra))
    rounds: list[Round] = []
    try:
        assert server.proc is not None
        conn = await Conn.open(server.port, server.token, insecure_context())
        await wait_for_node(conn)
        conn.close()
        for i, count in enumerate(sizes):
            namespace = f"bench-{count}-{i}"
            result = await start_pods(server, namespace, count, args.timeout)
            await floors(result, count, args, workdir)
            if count == max(sizes):
                result.idle_cores = await idle_cores(server, args.idle)
                result.usage = agent_usage(server.proc.pid, server.data_dir)
            rounds.append(result)
            print(result.line(), flush=True)
            await delete_pods(server, namespace)
    finally:
        server.stop()
        kill_leftovers(workdir)
        if args.runtime == "oci":
            from tests.ocitools import sweep

            sweep(workdir / "agent", CGROUP_PARENT)
    return rounds


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 and 30 pods")
    parser.add_argument("--sizes", default="30,100", help="pods per round, comma-separated")
    parser.add_argument("--idle", type=float, default=10.0,
                        help="seconds over which CPU at rest is measured")
    parser.add_argument("--timeout", type=float, default=120.0, help="per round")
    parser.add_argument("--runtime", choices=("process", "oci"), default="process",
                        help="the agent's runtime (oci needs root, runc and busybox-static)")
    args = parser.parse_args()
    sizes = [10, 30] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    command = f"{SLEEP} 3600" if args.runtime == "process" else "busybox sleep 3600"
    print(f"kubeling pod startup benchmark: {os.cpu_count()} CPUs, {args.runtime} runtime, "
          f"pods running {command}", flush=True)
    with tempfile.TemporaryDirectory(prefix="kubeling-bench-pods-") as tmp:
        rounds = await run(sizes, args, Path(tmp))
    print("\nsummary (Kubernetes' SLO: p99 creation-to-Running at most 5 s)")
    for r in rounds:
        print(r.line())
    return 0 if all(r.started == r.count for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
