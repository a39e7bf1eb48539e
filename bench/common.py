"""What the API benchmarks share: a server process, a lean HTTPS client and latency figures.

The load generator runs on the same small machine as the server, so its own cost per request
must stay far below the server's, or the figure measures the client. httpx spends about a
millisecond of CPU per request; ``Conn`` spends a few tens of microseconds: one TLS
connection kept alive, a request written in one piece, the answer read by its
Content-Length (or by chunks, for watches).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quantile(values: list[float], q: float) -> float:
    """The q-quantile of ``values`` in milliseconds (nearest rank); 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclass
class Figures:
    """Latencies (seconds) of ``count`` operations done in ``seconds`` of wall time."""

    name: str
    count: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    client_cpu: float = 0.0
    server_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        return quantile(self.latencies, q)

    def line(self) -> str:
        return (f"{self.name:<22} {self.count:>6} in {self.seconds:6.2f} s: {self.rate:7.0f}/s, "
                f"p50 {self.p(0.5):7.2f} ms, p99 {self.p(0.99):7.2f} ms, "
                f"CPU: client {self.client_cpu:5.2f} s, server {self.server_cpu:5.2f} s")


@dataclass
class Server:
    """A ``kubeling server`` child process on a free port with its own data dir."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def token(self) -> str:
        return (self.data_dir / "pki" / "admin.token").read_text().strip()

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    def start(self, *extra: str, server_args: tuple[str, ...] = (), agent: bool = False) -> None:
        """Start the server; its own node agent only with ``agent`` (benchmarks of the
        control plane keep pods on hollow nodes)."""
        if not agent:
            server_args = ("--disable-agent", *server_args)
        log = open(self.data_dir / "server.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubeling.cli.main", *extra, "server",
             "--data-dir", str(self.data_dir), "--listen", f"127.0.0.1:{self.port}",
             *server_args],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        ctx = insecure_context()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see "
                                   f"{self.data_dir / 'server.log'}")
            try:
                url = f"https://127.0.0.1:{self.port}/readyz"
                with urllib.request.urlopen(url, context=ctx, timeout=2) as r:
                    if r.status == 200 and self.kubeconfig.exists():
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server not ready within 60 s")

    def cpu_seconds(self) -> float:
        """User and system CPU time the server process (all its threads) has used."""
        if self.proc is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def insecure_context() -> ssl.SSLContext:
    """TLS to the benchmark's own server: the certificate is trusted by construction."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class HttpError(RuntimeError):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:300]!r}")
        self.status = status


class Conn:
    """One keep-alive HTTPS/1.1 connection with a bearer token."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 host: str, token: str) -> None:
        self.reader, self.writer = reader, writer
        self.host = host.encode()
        self.auth = f"Bearer {token}".encode()

    @classmethod
    async def open(cls, port: int, token: str, ctx: ssl.SSLContext) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                       limit=1 << 24)
        return cls(reader, writer, f"127.0.0.1:{port}", token)

    def _send(self, method: str, path: str, body: bytes, accept: str) -> None:
        self.writer.write(
            b"%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nAccept: %s\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (method.encode(), path.encode(), self.host, self.auth, accept.encode(),
               len(body), body))

    async def _head(self) -> tuple[int, dict[bytes, bytes]]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if b":" in line:
                k, v = line.split(b":", 1)
                headers[k.strip().lower()] = v.strip()
        return status, headers

    async def request(self, method: str, path: str, body: bytes = b"",
                      accept: str = "application/json") -> tuple[int, bytes]:
        self._send(method, path, body, accept)
        status, headers = await self._head()
        if b"content-length" in headers:
            data = await self.reader.readexactly(int(headers[b"content-length"]))
        else:
            data = b"".join([c async for c in self._chunks()])
        return status, data

    async def call(self, method: str, path: str, body: bytes = b"",
                   accept: str = "application/json") -> bytes:
        status, data = await self.request(method, path, body, accept)
        if status >= 300:
            raise HttpError(status, data)
        return data

    async def stream(self, path: str) -> int:
        """Start a streaming GET (a watch); read its chunks with ``chunks()``."""
        self._send("GET", path, b"", "application/json")
        status, _ = await self._head()
        return status

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return
            data = await self.reader.readexactly(size + 2)
            yield data[:-2]

    def chunks(self) -> AsyncIterator[bytes]:
        """The body chunks of a streaming answer, until the server ends it."""
        return self._chunks()

    def close(self) -> None:
        self.writer.close()


class FirstSeen:
    """One watch on a namespace's pods, noting when each pod is first seen meeting ``test``
    (bound to a node, Running...); ``done`` is set once ``expected`` pods have been."""

    def __init__(self, test: Callable[[dict[str, Any]], bool], expected: int = 0) -> None:
        self.test = test
        self.seen: dict[str, float] = {}
        self.expected = expected
        self.done = asyncio.Event()

    async def run(self, conn: Conn, namespace: str, rv: str) -> None:
        status = await conn.stream(
            f"/api/v1/namespaces/{namespace}/pods?watch=1&resourceVersion={rv}")
        if status != 200:
            raise RuntimeError(f"watch: HTTP {status}")
        buf = b""
        async for chunk in conn.chunks():
            buf += chunk
            *lines, buf = buf.split(b"\n")
            now = time.perf_counter()
            for line in lines:
                if not line:
                    continue
                obj = orjson.loads(line)["object"]
                name = obj["metadata"]["name"]
                if name not in self.seen and self.test(obj):
                    self.seen[name] = now
            if self.expected and len(self.seen) >= self.expected:
                self.done.set()
