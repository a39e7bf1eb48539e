"""The API benchmark: creates/s and latency over HTTPS, big lists, watch fan-out, storage vs etcd.

Starts a ``kubeling server`` (temporary data dir, free port) and measures, against the issue's
targets:

- ConfigMap and Pod creates from 32 concurrent keep-alive HTTPS clients (bearer token):
  creates/s, p50, p99 (target: at least 2,000/s with p99 at most 100 ms);
- the list of 10,000 pods, as JSON (``GET /api/v1/pods``) and as kubectl asks for it (Table,
  500 per page, following ``continue``), and the real ``kubectl get pods -A`` when kubectl is
  installed (target: at most 1 s);
- watch fan-out: 1,000 watches on ConfigMaps in one namespace, in a separate process; N
  creates at a steady rate; for every event at every watcher, the delay from the create's
  acknowledgement to the event's arrival (target: p99 at most 1 s);
- the storage layer alone against a real etcd (``bench/storage.py``), same value size and
  concurrency, after the server has stopped (target: writes/s at least etcd's).

The load generator is ``bench.common.Conn``, not httpx: on two cores, httpx's millisecond of
CPU per request would saturate the client core before the server. The client's CPU time is
printed with each figure so that claim can be checked.

    python -m bench.api [--quick] [--profile DIR] [--skip-storage]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.common import Conn, Figures, Server, insecure_context

TABLE_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")


def configmap(name: str, value_size: int) -> bytes:
    return orjson.dumps({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "data": {"payload": "x" * value_size},
    })


def pod(name: str) -> bytes:
    """A small pod as a Deployment would stamp it: one container, probes, resources."""
    return orjson.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web", "tier": "frontend",
                                              "pod-template-hash": "7d9f8c6b5"}},
        "spec": {
            "containers": [{
                "name": "web", "image": "nginx:1.27",
                "ports": [{"name": "http", "containerPort": 80}],
                "env": [{"name": "MODE", "value": "production"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                              "limits": {"memory": "128Mi"}},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 80},
                                   "periodSeconds": 10},
            }],
            "restartPolicy": "Always",
        },
    })


async def create_load(name: str, server: Server, path: str, body: Callable[[int], bytes], *,
                      count: int, concurrency: int) -> Figures:
    """POST ``count`` objects from ``concurrency`` connections, each waiting for its answer."""
    ctx = insecure_context()
    conns = [await Conn.open(server.port, server.token, ctx) for _ in range(concurrency)]
    latencies: list[float] = []
    indices = iter(range(count))

    async def worker(conn: Conn) -> None:
        for i in indices:
            data = body(i)
            started = time.perf_counter()
            await conn.call("POST", path, data)
            latencies.append(time.perf_counter() - started)

    cpu, server_cpu = time.process_time(), server.cpu_seconds()
    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    seconds = time.perf_counter() - started
    for c in conns:
        c.close()
    return Figures(name, count, seconds, latencies, time.process_time() - cpu,
                   server.cpu_seconds() - server_cpu)


async def ensure_namespace(server: Server, name: str) -> None:
    conn = await Conn.open(server.port, server.token, insecure_context())
    try:
        await conn.call("POST", "/api/v1/namespaces",
                        orjson.dumps({"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": name}}))
    finally:
        conn.close()


async def list_figures(server: Server, expected: int, repeats: int) -> dict[str, Figures]:
    """Time the full JSON list and the paged Table list of every pod."""
    conn = await Conn.open(server.port, server.token, insecure_context())
    out: dict[str, Figures] = {}
    try:
        full: list[float] = []
        for _ in range(repeats):
            started = time.perf_counter()
            data = await conn.call("GET", "/api/v1/pods")
            full.append(time.perf_counter() - started)
            items = len(orjson.loads(data)["items"])
            if items != expected:
                raise RuntimeError(f"listed {items} pods, expected {expected}")
        out["list json"] = Figures("list pods (JSON)", repeats, sum(full), full)
        table: list[float] = []
        for _ in range(repeats):
            started = time.perf_counter()
            rows, token = 0, ""
            while True:
                query = "/api/v1/pods?limit=500" + (f"&continue={token}" if token else "")
                page = orjson.loads(await conn.call("GET", query, accept=TABLE_ACCEPT))
                rows += len(page["rows"])
                token = page["metadata"].get("continue", "")
                if not token:
                    break
            table.append(time.perf_counter() - started)
            if rows != expected:
                raise RuntimeError(f"listed {rows} table rows, expected {expected}")
        out["list table"] = Figures("list pods (Table/500)", repeats, sum(table), table)
    finally:
        conn.close()
    kubectl = shutil.which("kubectl")
    if kubectl:
        env = {**os.environ, "KUBECONFIG": str(server.kubeconfig),
               "KUBECACHEDIR": str(server.data_dir / "kubectl-cache")}
        # kubectl's own client-side limiter (5 requests/s after a burst of 10) paces its
        # 500-row pages, so the single-request form is timed too.
        for key, extra in (("kubectl", ()), ("kubectl whole", ("--chunk-size=0",))):
            runs: list[float] = []
            for _ in range(repeats):
                started = time.perf_counter()
                proc = await asyncio.create_subprocess_exec(
                    kubectl, "get", "pods", "-A", "--no-headers", *extra, env=env,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                stdout, stderr = await proc.communicate()
                runs.append(time.perf_counter() - started)
                if proc.returncode != 0:
                    raise RuntimeError(f"kubectl failed: {stderr.decode()[-500:]}")
                if stdout.count(b"\n") != expected:
                    raise RuntimeError("kubectl listed the wrong number of pods")
            name = " ".join(("kubectl get pods -A", *extra))
            out[key] = Figures(name, repeats, sum(runs), runs)
    return out


# ----- watch fan-out: the watchers live in a child process -------------------------------


def watcher_process(port: int, token: str, path: str, watchers: int, expected: int,
                    pipe: mpc.Connection) -> None:
    """Open the watches, say so, then time every event's arrival (CLOCK_MONOTONIC)."""
    arrivals = asyncio.run(_watch_all(port, token, path, watchers, expected, pipe))
    pipe.send(arrivals)
    pipe.close()


async def _watch_all(port: int, token: str, path: str, watchers: int, expected: int,
                     pipe: mpc.Connection) -> dict[str, Any]:
    ctx = insecure_context()
    gate = asyncio.Semaphore(50)
    arrivals: list[list[tuple[str, float]]] = [[] for _ in range(watchers)]

    async def open_one() -> Conn:
        async with gate:
            conn = await Conn.open(port, token, ctx)
            status = await conn.stream(path)
            if status != 200:
                raise RuntimeError(f"watch answered {status}")
            return conn

    conns = await asyncio.gather(*(open_one() for _ in range(watchers)))

    async def read(i: int, conn: Conn) -> None:
        got = arrivals[i]
        buf = b""
        async for chunk in conn.chunks():
            now = time.monotonic()
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line:
                    ev = orjson.loads(line)
                    got.append((ev["object"]["metadata"]["name"], now))
            if len(got) >= expected:
                return

    cpu = time.process_time()
    readers = [asyncio.ensure_future(read(i, c)) for i, c in enumerate(conns)]
    pipe.send("ready")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, pipe.recv)  # the creator is done
    await asyncio.wait(readers, timeout=60)
    for r in readers:
        r.cancel()
    for c in conns:
        c.close()
    return {"arrivals": arrivals, "cpu": time.process_time() - cpu}


async def watch_fanout(server: Server, *, watchers: int, events: int, rate: float) -> Figures:
    ns = "bench-watch"
    await ensure_namespace(server, ns)
    conn = await Conn.open(server.port, server.token, insecure_context())
    base = f"/api/v1/namespaces/{ns}/configmaps"
    rv = orjson.loads(await conn.call("GET", base + "?limit=1"))["metadata"]["resourceVersion"]
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=watcher_process, name="watchers", args=(
        server.port, server.token, f"{base}?watch=1&resourceVersion={rv}", watchers, events,
        child))
    proc.start()
    loop = asyncio.get_running_loop()
    if await loop.run_in_executor(None, parent.recv) != "ready":
        raise RuntimeError("the watcher process failed")
    acks: dict[str, float] = {}
    server_cpu = server.cpu_seconds()
    started = time.perf_counter()
    for i in range(events):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        name = f"w-{i:06d}"
        await conn.call("POST", base, configmap(name, 64))
        acks[name] = time.monotonic()
    seconds = time.perf_counter() - started
    conn.close()
    parent.send("done")
    result = await loop.run_in_executor(None, parent.recv)
    server_cpu = server.cpu_seconds() - server_cpu
    proc.join(30)
    delays: list[float] = []
    missing = 0
    for got in result["arrivals"]:
        missing += events - len(got)
        delays.extend(max(0.0, t - acks[n]) for n, t in got)
    fig = Figures(f"watch fan-out x{watchers}", events, seconds, delays, result["cpu"],
                  server_cpu)
    if missing:
        print(f"  {missing} of {watchers * events} events never arrived", flush=True)
    return fig


# ----- profiling ------------------------------------------------------------------------


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.access(spy, os.X_OK):
        print("py-spy not found; not profiling", file=sys.stderr)
        return None
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--rate",
                             "200", "--nonblocking", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(proc: subprocess.Popen[bytes] | None, out: Path, top: int = 25) -> None:
    if proc is None:
        return
    proc.send_signal(2)
    proc.wait(30)
    if not out.exists():
        return
    self_samples: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        leaf = frames[-1]
        self_samples[leaf] = self_samples.get(leaf, 0) + n
        for f in set(frames):
            if "kubeling/" in f:
                inclusive[f] = inclusive.get(f, 0) + n
    print(f"\nprofile ({total} samples) in {out}; top self time:")
    for f, n in sorted(self_samples.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * n / total:5.1f}%  {f}")
    print("top inclusive time in kubeling frames:")
    for f, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * n / total:5.1f}%  {f}")


# ----- the run ------------------------------------------------------------------------


async def run_api(args: argparse.Namespace, workdir: Path) -> dict[str, Figures]:
    server = Server(workdir / "server")
    server.data_dir.mkdir()
    # The API server alone: no scheduler or controllers reacting to the benchmark's pods.
    server.start("--log-level", args.log_level,
                 server_args=("--disable-scheduler", "--disable-controllers"))
    figs: dict[str, Figures] = {}
    try:
        await ensure_namespace(server, "bench-cm")
        await ensure_namespace(server, "bench-pods")
        pid = server.proc.pid if server.proc else 0

        async def profiled(key: str, name: str, path: str, body: Callable[[int], bytes],
                           count: int) -> None:
            out = args.profile / f"creates-{key}.txt" if args.profile else None
            prof = start_profiler(pid, out) if out else None
            figs[key] = await create_load(name, server, path, body, count=count,
                                          concurrency=args.concurrency)
            print(figs[key].line(), flush=True)
            if prof is not None and out is not None:
                stop_profiler(prof, out)

        await profiled("configmaps", "create configmaps", "/api/v1/namespaces/bench-cm/configmaps",
                       lambda i: configmap(f"cm-{i:06d}", args.value_size), args.creates)
        await profiled("pods", "create pods", "/api/v1/namespaces/bench-pods/pods",
                       lambda i: pod(f"web-{i:06d}"), args.pods)
        for key, fig in (await list_figures(server, args.pods, args.repeats)).items():
            figs[key] = fig
            print(fig.line(), flush=True)
        figs["watch"] = await watch_fanout(server, watchers=args.watchers,
                                           events=args.watch_events, rate=args.watch_rate)
        print(figs["watch"].line(), flush=True)
    finally:
        server.stop()
    return figs


async def run_storage(args: argparse.Namespace, workdir: Path) -> tuple[Any, Any] | None:
    from bench import storage

    etcd = shutil.which("etcd")
    load = {"keys": args.storage_keys, "value_size": args.value_size,
            "concurrency": args.concurrency}
    sqlite = await storage.bench_sqlite(str(workdir), **load)
    print(sqlite.line(), flush=True)
    if etcd is None:
        print("etcd is not installed (apt-get install etcd-server): no storage comparison")
        return None
    other = await storage.bench_etcd(etcd, str(workdir), "raw", **load)
    print(other.line(), flush=True)
    return sqlite, other


def summary(figs: dict[str, Figures], stor: tuple[Any, Any] | None, pods: int) -> None:
    rows: list[tuple[str, str, str, str]] = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    for key in ("configmaps", "pods"):
        if key in figs:
            f = figs[key]
            rows.append((f"{key} creates/s (p50 / p99)",
                         f"{f.rate:.0f}/s ({f.p(0.5):.1f} / {f.p(0.99):.1f} ms)",
                         ">= 2000/s, p99 <= 100 ms",
                         verdict(f.rate >= 2000 and f.p(0.99) <= 100)))
    for key in ("list json", "list table", "kubectl", "kubectl whole"):
        if key in figs:
            f = figs[key]
            best = min(f.latencies)
            rows.append((f"{f.name} of {pods} (best / worst)",
                         f"{best * 1000:.0f} / {max(f.latencies) * 1000:.0f} ms", "<= 1 s",
                         verdict(max(f.latencies) <= 1.0)))
    if "watch" in figs:
        f = figs["watch"]
        rows.append((f"{f.name}, {f.count} events (p50 / p99)",
                     f"{f.p(0.5):.0f} / {f.p(0.99):.0f} ms", "p99 <= 1 s",
                     verdict(f.p(0.99) <= 1000 and len(f.latencies) > 0)))
    if stor is not None:
        sqlite, etcd = stor
        rows.append(("storage writes/s: sqlite vs etcd",
                     f"{sqlite.rate:.0f} vs {etcd.rate:.0f} (x{sqlite.rate / etcd.rate:.2f})",
                     ">= etcd", verdict(sqlite.rate >= etcd.rate)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)] if rows else [0] * 4
    print("\nSummary")
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run (about a minute)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--creates", type=int, default=10_000, help="ConfigMap creates")
    parser.add_argument("--pods", type=int, default=10_000, help="Pod creates, then listed")
    parser.add_argument("--value-size", type=int, default=1024)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--watch-events", type=int, default=100)
    parser.add_argument("--watch-rate", type=float, default=20.0, help="creates/s while watched")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each list")
    parser.add_argument("--storage-keys", type=int, default=10_000)
    parser.add_argument("--skip-storage", action="store_true")
    parser.add_argument("--log-level", default="info", help="the server's log level")
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy the server during the creates; write stacks here")
    args = parser.parse_args()
    if args.quick:
        args.creates, args.pods, args.storage_keys = 1000, 1000, 2000
        args.watchers, args.watch_events = 200, 30
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    print(f"kubeling API benchmark: {os.cpu_count()} CPUs, {args.concurrency} clients, "
          f"{args.value_size}-byte ConfigMap values", flush=True)
    with tempfile.TemporaryDirectory(prefix="kubeling-bench-api-") as tmp:
        figs = await run_api(args, Path(tmp))
        stor = None if args.skip_storage else await run_storage(args, Path(tmp))
    summary(figs, stor, args.pods)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
