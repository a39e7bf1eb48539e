"""A small HTTP load generator: one new connection per request, as many in flight as asked.

``python -m bench.httpload URL --seconds 8 --concurrency 16`` prints one JSON
line: requests, failures, requests per second and latency quantiles. A new
TCP connection per request is deliberate: a Service's rules act on a
connection's first packet (later packets follow conntrack), so this is the
traffic that costs the proxy the most. bench/services.py runs it inside a
pod's network namespace, against a pod directly and through its ClusterIP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

from bench.common import quantile


async def one(host: str, port: int, request: bytes) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        data = await reader.read()
        if not data.startswith(b"HTTP/1.") or b" 200 " not in data.split(b"\r\n", 1)[0]:
            raise ConnectionError(data[:80].decode(errors="replace"))
    finally:
        writer.close()


async def load(url: str, seconds: float, concurrency: int) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (f"GET {parts.path or '/'} HTTP/1.0\r\nHost: {host}\r\n\r\n").encode()
    latencies: list[float] = []
    failures = 0
    end = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal failures
        while time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                await asyncio.wait_for(one(host, port, request), 5)
            except (OSError, TimeoutError, ConnectionError):
                failures += 1
                continue
            latencies.append(time.perf_counter() - t0)

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    took = time.monotonic() - start
    return {"requests": len(latencies), "failures": failures,
            "rate": len(latencies) / took, "p50_ms": quantile(latencies, 0.5),
            "p99_ms": quantile(latencies, 0.99), "max_ms": quantile(latencies, 1.0),
            # connections that waited for a retransmitted SYN (the first retry is at 1 s)
            "over_900ms": sum(1 for x in latencies if x > 0.9)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--concurrency", type=int, default=16)
    args = p.parse_args()
    print(json.dumps(asyncio.run(load(args.url, args.seconds, args.concurrency))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
