"""pods/portforward: kubectl's SPDY port-forward and the WebSocket channel protocol.

Clients reach a pod's ports three ways, all ending at the kubelet's
WebSocket ``/portForward/{ns}/{pod}`` (kubelet/portforward.py):

- WebSocket with the channel subprotocols (``v4.channel.k8s.io`` and its
  base64 form; the official Python client): the ``ports`` query names the
  ports and the frames are relayed to the kubelet untouched.
- WebSocket with ``SPDY/3.1+portforward.k8s.io`` (kubectl 1.31+, client-go's
  tunnelling dialer): SPDY/3.1 runs inside binary messages.
- ``Upgrade: SPDY/3.1`` on a plain request (older kubectl, and newer ones
  falling back): the HTTP server hands the connection over (server.py) once
  the request was authenticated; this module writes the 101 itself.

In both SPDY forms every forwarded connection is a pair of client streams
sharing a ``requestID`` header: ``streamType: error`` first, then
``streamType: data``, with the remote ``port``. Each stream is answered
(SYN_REPLY); once the pair is complete one kubelet WebSocket is opened for
that port, its data channel relayed to the data stream and its error channel
to the error stream; when the pod's side ends both streams are finished
(FIN). A client's FIN on the data stream becomes a ``v5.channel.k8s.io``
close message, which half-closes the pod connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from kubeling.api import errors
from kubeling.apiserver import nodeproxy
from kubeling.apiserver.nodeproxy import NodeProxy
from kubeling.apiserver.request import Request, RequestInfo
from kubeling.apiserver.spdysession import Session, Stream

log = logging.getLogger("kubeling.apiserver.portforward")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Hijack = Callable[[bytes], tuple[asyncio.StreamReader, asyncio.StreamWriter]]

PROTOCOL = "portforward.k8s.io"
TUNNEL_PREFIX = "SPDY/3.1+"
TUNNEL = TUNNEL_PREFIX + PROTOCOL
HIJACK_KEY = "kubeling.hijack"  # scope["extensions"]: take over a SPDY upgrade's connection
KUBELET_PROTOCOLS = [Subprotocol("v5.channel.k8s.io"), Subprotocol("v4.channel.k8s.io")]
PAIR_TIMEOUT = 30.0


@dataclass
class Pair:
    request_id: str
    error: Stream | None = None
    data: Stream | None = None

    @property
    def complete(self) -> bool:
        return self.error is not None and self.data is not None


class Pairs:
    """Streams matched into (error, data) pairs by requestID, as the kubelet does; a
    client without requestIDs (before 1.6) opens the error stream right before the data
    stream, so their ids differ by 2."""

    def __init__(self) -> None:
        self.pending: dict[str, Pair] = {}

    @staticmethod
    def key(stream: Stream) -> str:
        kind = stream.header("streamType")
        request_id = stream.header("requestID")
        if kind == "error":
            return request_id or str(stream.id)
        if kind == "data":
            return request_id or str(stream.id - 2)
        raise ValueError(f"invalid stream type {kind!r}")

    def add(self, stream: Stream) -> Pair | None:
        """The completed pair, or None while its other half is awaited. ValueError for a
        stream that is neither."""
        request_id = self.key(stream)
        kind = stream.header("streamType")
        pair = self.pending.setdefault(request_id, Pair(request_id))
        if (pair.error if kind == "error" else pair.data) is not None:
            raise ValueError(f"a {kind} stream for request {request_id} already exists")
        if kind == "error":
            pair.error = stream
        else:
            pair.data = stream
        if pair.complete:
            del self.pending[request_id]
            return pair
        return None


def port_of(stream: Stream) -> int:
    text = stream.header("port")
    try:
        port = int(text)
    except ValueError:
        raise ValueError(
            f'encountered failure converting port header "{text}" to integer') from None
    if not 0 < port < 65536:
        raise ValueError(f"port {port} must be between 1 and 65535")
    return port


class PortForwarder:
    def __init__(self, nodes: NodeProxy) -> None:
        self.nodes = nodes

    async def kubelet_url(self, info: RequestInfo) -> str:
        """wss://node/portForward/{ns}/{pod}, with kube-apiserver's checks of the pod."""
        pod = await self.nodes.get_pod(info)
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        if not node_name:
            raise errors.bad_request(f"pod {info.name} does not have a host assigned")
        host, port = await self.nodes.node_endpoint(node_name)
        meta = pod["metadata"]
        return (f"wss://{nodeproxy._host(host)}:{port}/portForward/"
                f"{quote(meta['namespace'])}/{quote(meta['name'])}/{meta.get('uid', '')}")

    # ----- WebSocket: channel relay or SPDY tunnel ------------------------------------

    async def serve_websocket(self, req: Request, info: RequestInfo, scope: Scope,
                              send: Send, receive: Receive) -> None:
        url = await self.kubelet_url(info)
        offered = list(scope.get("subprotocols") or ())
        if any(p.startswith(TUNNEL_PREFIX) for p in offered):
            if TUNNEL not in offered:
                raise errors.bad_request(f"unable to negotiate a tunnelled protocol: client "
                                         f"supports {offered}, server supports [{TUNNEL}]")
            await send({"type": "websocket.accept", "subprotocol": TUNNEL})

            async def write(data: bytes) -> None:
                await send({"type": "websocket.send", "bytes": data})

            await self._session(url, _websocket_source(receive), write)
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": 1000})
            return
        ports = req.query.get("ports", [])
        query = urlencode([("ports", p) for p in ports])
        target = nodeproxy.Target(f"{url}?{query}", {"metadata": {}})
        await self.nodes.serve_stream(target, scope, send, receive)

    # ----- plain HTTP: SPDY upgrade ----------------------------------------------------

    async def serve_http(self, req: Request, info: RequestInfo, scope: Scope) -> None:
        """Take over a SPDY upgrade; raises a StatusError (answered as usual) otherwise."""
        if req.method not in ("GET", "POST"):
            raise errors.method_not_supported("pods/portforward", req.method.lower())
        upgrade = req.headers.get("upgrade", "").lower()
        hijack: Hijack | None = (scope.get("extensions") or {}).get(HIJACK_KEY)
        if "spdy/3.1" not in upgrade or hijack is None:
            await self.kubelet_url(info)
            raise errors.bad_request("Upgrade request required")
        versions = [v.decode("latin-1").strip() for k, v in scope["headers"]
                    if k.lower() == b"x-stream-protocol-version"]
        versions = [p.strip() for v in versions for p in v.split(",") if p.strip()]
        if versions and PROTOCOL not in versions:
            raise errors.StatusError(
                403, "Forbidden", f"unable to upgrade: unable to negotiate protocol: client "
                                  f"supports {versions}, server supports [{PROTOCOL}]")
        url = await self.kubelet_url(info)
        head = ("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                "Upgrade: SPDY/3.1\r\n"
                + (f"X-Stream-Protocol-Version: {PROTOCOL}\r\n" if versions else "")
                + f"Date: {formatdate(usegmt=True)}\r\n\r\n").encode()
        reader, writer = hijack(head)

        async def write(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        try:
            await self._session(url, _stream_source(reader), write)
        finally:
            writer.close()

    # ----- the SPDY session --------------------------------------------------------------

    async def _session(self, url: str, source: AsyncIterator[bytes],
                       write: Callable[[bytes], Awaitable[None]]) -> None:
        pairs = Pairs()
        tasks: set[asyncio.Task[None]] = set()

        def on_stream(stream: Stream) -> None:
            task = asyncio.ensure_future(self._accept(stream, pairs, url))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        session = Session(write, on_stream)
        try:
            await session.run(source)
        finally:
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _accept(self, stream: Stream, pairs: Pairs, url: str) -> None:
        try:
            await stream.reply()
            pair = pairs.add(stream)
        except ValueError as exc:
            log.info("port-forward stream %d refused: %s", stream.id, exc)
            await stream.reset()
            return
        except (ConnectionError, OSError):
            return
        if pair is None:
            await asyncio.sleep(PAIR_TIMEOUT)
            if pairs.pending.pop(Pairs.key(stream), None) is not None:
                if stream.header("streamType") == "error":
                    await stream.write(b"timed out waiting for the data stream")
                await stream.close()
            return
        await self._forward(pair, url)

    async def _forward(self, pair: Pair, url: str) -> None:
        assert pair.error is not None and pair.data is not None
        error, data = pair.error, pair.data
        try:
            try:
                port = port_of(data)
                ws = await self._dial(url, port)
            except (ValueError, errors.StatusError) as exc:
                text = exc.message if isinstance(exc, errors.StatusError) else str(exc)
                await error.write(text.encode())
                return
            try:
                await _relay(ws, data, error)
            finally:
                await ws.close()
        except (ConnectionError, OSError):
            return
        finally:
            with contextlib.suppress(ConnectionError, OSError):
                await data.close()
                await error.close()

    async def _dial(self, url: str, port: int) -> ClientConnection:
        try:
            return await connect(f"{url}?ports={port}", ssl=self.nodes.ssl_context(),
                                 subprotocols=KUBELET_PROTOCOLS, max_size=None,
                                 open_timeout=15, compression=None, ping_interval=None)
        except InvalidStatus as exc:
            body = (exc.response.body or b"").decode(errors="replace").strip()
            raise errors.bad_request(f"error forwarding port {port}: {body}") from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise errors.internal(f"error dialing backend: {exc}") from None


async def _relay(ws: ClientConnection, data: Stream, error: Stream) -> None:
    """Kubelet channels ↔ the stream pair, until the kubelet closes or the client resets."""
    half_close = ws.subprotocol == "v5.channel.k8s.io"

    async def down() -> None:
        seen: set[int] = set()
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                if isinstance(message, str) or not message:
                    continue
                channel, body = message[0], message[1:]
                if channel not in seen:  # each channel opens with the port number
                    seen.add(channel)
                    continue
                if channel == 0:
                    await data.write(body)
                elif channel == 1:
                    await error.write(body)

    async def up() -> None:
        with contextlib.suppress(ConnectionClosed):
            while chunk := await data.read():
                await ws.send(b"\x00" + chunk)
            if data.reset_received:
                return
            if half_close:
                await ws.send(bytes([255, 0]))
        await asyncio.Future()  # the pod's side decides when this pair ends

    downward = asyncio.ensure_future(down())
    upward = asyncio.ensure_future(up())
    try:
        await asyncio.wait({downward, upward}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (downward, upward):
            task.cancel()
        await asyncio.gather(downward, upward, return_exceptions=True)


async def _websocket_source(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            return
        if msg.get("bytes"):
            yield msg["bytes"]


async def _stream_source(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        try:
            chunk = await reader.read(64 * 1024)
        except (ConnectionError, OSError):
            return
        if not chunk:
            return
        yield chunk
