"""``/portForward/{namespace}/{pod}``: the kubelet's WebSocket port-forward.

As the kubelet's streaming server does, one WebSocket carries the ports named
in the ``ports`` query (``ports=80,443``): port *i* has a data channel
``2i`` (both ways) and an error channel ``2i+1`` (to the client). The first
message on each channel is the port as two little-endian bytes, so a client
can tell the streams apart; then the data channel carries the bytes of one
TCP connection the runtime opened to localhost:port in the pod's network
(CRI PortForward), and the error channel any failure, as text. The socket
closes when every connection has ended.

Subprotocols as the kubelet offers them (``v4.channel.k8s.io``, its base64
form, or none), plus ``v5.channel.k8s.io``, where a close message (255, the
channel) half-closes the connection to the pod: the API server relays a
SPDY client's end of data through it, so an HTTP request sent by a client
that then shuts its side down is still answered.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kubeling.kubelet.context import POD_NAME, POD_NAMESPACE
from kubeling.runtime.protocol import Runtime, RuntimeFailure, SandboxState

log = logging.getLogger("kubeling.kubelet.portforward")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
SUPPORTED = (V5, V4, V4_BASE64)
CLOSE_CHANNEL = 255
READ_SIZE = 64 * 1024


class PortForwardRequestError(Exception):
    """Refused before the WebSocket is accepted: (HTTP code, text)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_ports(values: list[str]) -> list[int]:
    """The ``ports`` query values (each may be a comma-separated list), as the kubelet
    reads them."""
    if not values:
        raise PortForwardRequestError(400, 'query parameter "port" is required')
    ports: list[int] = []
    for value in values:
        if not value:
            raise PortForwardRequestError(400, 'query parameter "port" cannot be empty')
        for part in value.split(","):
            try:
                port = int(part)
            except ValueError:
                port = -1
            if not 0 <= port <= 65535 or not part.isdigit():
                raise PortForwardRequestError(400, f'unable to parse "{value}" as a port')
            if port < 1:
                raise PortForwardRequestError(400, f'port "{value}" must be > 0')
            ports.append(port)
    return ports


def negotiate(offered: list[str]) -> str:
    """The subprotocol to answer with ("" when the client offered none)."""
    if not offered:
        return ""
    for name in offered:
        if name in SUPPORTED:
            return name
    raise PortForwardRequestError(
        400, f"requested protocol(s) are not supported: {offered}; supports "
             f"{list(SUPPORTED)}")


async def find_sandbox(runtime: Runtime, namespace: str, pod: str) -> str | None:
    """The pod's newest ready sandbox, by the labels the agent gave it."""
    boxes = [s for s in await runtime.list_pod_sandboxes()
             if s.labels.get(POD_NAMESPACE, s.namespace) == namespace
             and s.labels.get(POD_NAME, s.name) == pod and s.state == SandboxState.READY]
    if not boxes:
        return None
    return max(boxes, key=lambda s: (s.created_at, s.attempt)).id


@dataclass
class _Pair:
    port: int
    index: int
    writer: asyncio.StreamWriter | None = None
    opened: asyncio.Event = field(default_factory=asyncio.Event)  # connected, or failed


class _Channels:
    """Framing of one negotiated subprotocol, and serialized sends."""

    def __init__(self, protocol: str, send: Send) -> None:
        self.base64 = protocol == V4_BASE64
        self._send = send
        self._lock = asyncio.Lock()
        self.closed = False

    async def write(self, channel: int, data: bytes) -> None:
        if self.closed:
            return
        async with self._lock:
            if self.base64:
                text = chr(ord("0") + channel) + base64.b64encode(data).decode()
                await self._send({"type": "websocket.send", "text": text})
            else:
                await self._send({"type": "websocket.send", "bytes": bytes([channel]) + data})

    def decode(self, msg: dict[str, Any]) -> tuple[int, bytes] | None:
        raw = msg.get("bytes")
        if raw is not None:
            return (raw[0], raw[1:]) if raw else None
        text = msg.get("text")
        if not text:
            return None
        channel = ord(text[0]) - ord("0") if self.base64 else ord(text[0])
        body = text[1:]
        try:
            return channel, (base64.b64decode(body) if self.base64 else body.encode())
        except ValueError:
            return None


async def serve(runtime: Runtime, sandbox_id: str, pod: str, uid: str, ports: list[int],
                protocol: str, send: Send, receive: Receive) -> None:
    """Accept the WebSocket and forward every port until all are done or the client
    leaves."""
    await send({"type": "websocket.accept", "subprotocol": protocol or None})
    channels = _Channels(protocol, send)
    pairs = [_Pair(port, i) for i, port in enumerate(ports)]
    for pair in pairs:
        prefix = struct.pack("<H", pair.port)
        await channels.write(2 * pair.index, prefix)
        await channels.write(2 * pair.index + 1, prefix)
    forwards = [asyncio.ensure_future(_forward(runtime, sandbox_id, pod, uid, p, channels))
                for p in pairs]
    inbound: asyncio.Future[Any] = asyncio.ensure_future(_inbound(pairs, channels, receive))
    everything: asyncio.Future[Any] = asyncio.ensure_future(
        asyncio.gather(*forwards, return_exceptions=True))
    try:
        await asyncio.wait({inbound, everything}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (*forwards, inbound):
            task.cancel()
        await asyncio.gather(*forwards, inbound, everything, return_exceptions=True)
        for pair in pairs:
            if pair.writer is not None:
                pair.writer.close()
        if not channels.closed:
            channels.closed = True
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": 1000})


async def _forward(runtime: Runtime, sandbox_id: str, pod: str, uid: str, pair: _Pair,
                   channels: _Channels) -> None:
    try:
        reader, writer = await runtime.port_forward(sandbox_id, pair.port)
    except RuntimeFailure as exc:
        text = f"error forwarding port {pair.port} to pod {pod}, uid {uid}: {exc.message}"
        log.info("%s", text)
        await channels.write(2 * pair.index + 1, text.encode())
        pair.opened.set()
        return
    pair.writer = writer
    pair.opened.set()
    try:
        while True:
            chunk = await reader.read(READ_SIZE)
            if not chunk:
                break
            await channels.write(2 * pair.index, chunk)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _inbound(pairs: list[_Pair], channels: _Channels, receive: Receive) -> None:
    """Client → pods, until the client disconnects."""
    by_channel = {2 * p.index: p for p in pairs}
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            channels.closed = True
            return
        decoded = channels.decode(msg)
        if decoded is None:
            continue
        channel, data = decoded
        if channel == CLOSE_CHANNEL:
            pair = by_channel.get(data[0]) if data else None
            if pair is not None and pair.writer is not None and pair.writer.can_write_eof():
                with contextlib.suppress(OSError):
                    pair.writer.write_eof()
            continue
        pair = by_channel.get(channel)
        if pair is None or not data:
            continue
        await pair.opened.wait()  # the pod connection may still be opening
        if pair.writer is None:
            continue
        try:
            pair.writer.write(data)
            await pair.writer.drain()
        except (ConnectionError, OSError):
            pass
