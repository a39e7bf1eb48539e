"""Storage write benchmark: the SQLite store against a real etcd on the same machine.

Creates N keys with V-byte values from C concurrent writers and prints writes/s and the
p50/p99 latency of each write, first through the SQLite store in-process, then through an
etcd 3.4 server started here on loopback (its v3 JSON gateway, ``POST /v3/kv/put``) with the
same load generator, then the ratios. etcd is driven twice, each time fresh: through a
minimal keep-alive HTTP/1.1 client ("raw"), and through httpx over keep-alive connections.
httpx costs about a millisecond of client CPU per request, so on a small machine the httpx
figure measures the client more than etcd; the raw figure is the fair comparison.

    python bench/storage.py [--keys 10000] [--value-size 1024] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from kubeling.storage import open_store

Write = Callable[[str, bytes], Awaitable[None]]


@dataclass
class Figures:
    name: str
    writes: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.writes / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def line(self) -> str:
        return (
            f"{self.name:<8} {self.writes} writes in {self.seconds:6.2f} s: "
            f"{self.rate:8.0f} writes/s, p50 {self.quantile(0.5):6.2f} ms, "
            f"p99 {self.quantile(0.99):6.2f} ms"
        )


async def load(name: str, write: Write, *, keys: int, value_size: int, concurrency: int) -> Figures:
    """Create ``keys`` keys from ``concurrency`` workers; time each write."""
    value = os.urandom(value_size // 2).hex().encode()[:value_size]
    latencies: list[float] = []
    next_index = iter(range(keys))

    async def worker() -> None:
        for i in next_index:
            key = f"/registry/bench/pods/ns{i % 16}/pod-{i:08d}"
            started = time.perf_counter()
            await write(key, value)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Figures(name, keys, time.perf_counter() - started, latencies)


async def bench_sqlite(workdir: str, **load_args: int) -> Figures:
    store = open_store(f"sqlite://{os.path.join(workdir, 'sqlite', 'state.db')}")
    try:

        async def write(key: str, value: bytes) -> None:
            await store.create(key, value)

        return await load("sqlite", write, **load_args)
    finally:
        await store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RawHttp:
    """The least a keep-alive HTTP/1.1 client can do: one connection per writer, a request
    written in one piece, the response read by its Content-Length. It shows what etcd can
    take when the client's own cost is out of the way."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes) -> None:
        if self.idle:
            reader, writer = self.idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path.encode(), self.host.encode(), len(body), body)
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"etcd answered {head[:200]!r}")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        )
        await reader.readexactly(length)
        self.idle.append((reader, writer))

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


def put_body(key: str, value: bytes) -> dict[str, str]:
    return {
        "key": base64.b64encode(key.encode()).decode(),
        "value": base64.b64encode(value).decode(),
    }


def start_etcd(
    binary: str, data_dir: str, client_url: str, peer_url: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            binary,
            "--name=bench",
            f"--data-dir={data_dir}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=bench={peer_url}",
            "--log-level=error",
            "--logger=zap",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def bench_etcd(
    binary: str, workdir: str, client: str, *, concurrency: int, **load_args: int
) -> Figures:
    client_port, peer_port = free_port(), free_port()
    client_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    etcd = start_etcd(binary, os.path.join(workdir, "etcd-" + client), client_url, peer_url)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    raw = RawHttp("127.0.0.1", client_port)
    try:
        async with httpx.AsyncClient(base_url=client_url, limits=limits, timeout=30) as http:
            await wait_healthy(http, etcd)

            async def write_httpx(key: str, value: bytes) -> None:
                response = await http.post("/v3/kv/put", json=put_body(key, value))
                response.raise_for_status()

            async def write_raw(key: str, value: bytes) -> None:
                await raw.post("/v3/kv/put", json.dumps(put_body(key, value)).encode())

            write = write_httpx if client == "httpx" else write_raw
            return await load(f"etcd/{client}", write, concurrency=concurrency, **load_args)
    finally:
        raw.close()
        etcd.terminate()
        etcd.wait(10)


async def wait_healthy(http: httpx.AsyncClient, etcd: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if etcd.poll() is not None:
            err = etcd.stderr.read().decode() if etcd.stderr else ""
            raise RuntimeError(f"etcd exited with {etcd.returncode}: {err[-2000:]}")
        try:
            if (await http.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("etcd did not become healthy within 20 s")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--value-size", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--etcd", default=shutil.which("etcd") or "/usr/bin/etcd")
    parser.add_argument("--skip-etcd", action="store_true")
    parser.add_argument(
        "--etcd-clients",
        default="raw,httpx",
        help="comma-separated: raw (minimal HTTP/1.1 client) and/or httpx",
    )
    args = parser.parse_args()
    load_args = {"keys": args.keys, "value_size": args.value_size, "concurrency": args.concurrency}
    print(
        f"creates of {args.keys} keys, {args.value_size}-byte values, "
        f"{args.concurrency} concurrent writers, {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="kubeling-bench-") as workdir:
        sqlite = await bench_sqlite(workdir, **load_args)
        print(sqlite.line(), flush=True)
        if args.skip_etcd:
            return 0
        if not os.access(args.etcd, os.X_OK):
            print(f"etcd not found at {args.etcd} (apt-get install etcd-server)", file=sys.stderr)
            return 1
        for client in args.etcd_clients.split(","):
            etcd = await bench_etcd(args.etcd, workdir, client, **load_args)
            print(etcd.line(), flush=True)
            print(
                f"  sqlite vs {etcd.name}: throughput x{sqlite.rate / etcd.rate:.2f}, "
                f"p99 latency x{sqlite.quantile(0.99) / etcd.quantile(0.99):.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
