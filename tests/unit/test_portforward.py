"""Port-forward bookkeeping above the SPDY codec: the session (replies, PING, FIN, RST,
GOAWAY), stream pairs by requestID, and one forwarded connection relayed between a SPDY
client and a stand-in for the kubelet's WebSocket channels."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kubeling.api import errors
from kubeling.apiserver import spdy
from kubeling.apiserver.portforward import Pairs, PortForwarder, port_of
from kubeling.apiserver.spdysession import Session, Stream


class Client:
    """The client's end of a session: frames in, frames out."""

    def __init__(self) -> None:
        self.enc = spdy.Encoder()
        self.parser = spdy.Parser()
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.got: list[spdy.Frame] = []
        self.arrived = asyncio.Event()

    async def write(self, data: bytes) -> None:  # the server's writes
        self.got += self.parser.feed(data)
        self.arrived.set()

    def send(self, frame: spdy.Frame) -> None:
        self.inbox.put_nowait(self.enc.encode(frame))

    async def source(self) -> AsyncIterator[bytes]:
        while (chunk := await self.inbox.get()) is not None:
            yield chunk

    async def wait_for(self, pred: Any, timeout: float = 5.0) -> spdy.Frame:
        async with asyncio.timeout(timeout):
            while True:
                for f in self.got:
                    if pred(f):
                        return f
                self.arrived.clear()
                await self.arrived.wait()


def syn(sid: int, kind: str, port: str = "80", request: str | None = "0") -> spdy.SynStream:
    headers = {"streamtype": [kind], "port": [port]}
    if request is not None:
        headers["requestid"] = [request]
    return spdy.SynStream(sid, headers)


async def test_session_replies_echoes_and_ends_streams() -> None:
    client = Client()
    streams: list[Stream] = []
    session = Session(client.write, streams.append)
    runner = asyncio.ensure_future(session.run(client.source()))
    client.send(syn(1, "data"))
    client.send(spdy.Ping(3))
    await client.wait_for(lambda f: f == spdy.Ping(3))
    assert len(streams) == 1 and streams[0].header("streamType") == "data"
    await streams[0].reply()
    await client.wait_for(lambda f: isinstance(f, spdy.SynReply) and f.stream_id == 1)
    client.send(spdy.DataFrame(1, b"hello"))
    client.send(spdy.DataFrame(1, b"", spdy.FLAG_FIN))
    assert await streams[0].read() == b"hello"
    assert await streams[0].read() == b""
    await streams[0].write(b"x" * 70_000)  # more than a frame; no window is waited for
    await streams[0].close()
    fin = await client.wait_for(lambda f: isinstance(f, spdy.DataFrame) and f.fin)
    data = b"".join(f.data for f in client.got if isinstance(f, spdy.DataFrame))
    assert data == b"x" * 70_000 and fin == spdy.DataFrame(1, b"", spdy.FLAG_FIN)
    assert 1 not in session.streams  # both sides finished

    client.send(syn(2, "data"))  # even ids are the server's: refused
    await client.wait_for(lambda f: f == spdy.RstStream(2, spdy.PROTOCOL_ERROR))
    client.send(syn(5, "error"))
    client.send(spdy.RstStream(5, spdy.CANCEL))
    await asyncio.sleep(0)
    client.send(spdy.GoAway(5))
    client.send(syn(7, "data"))
    await client.wait_for(lambda f: f == spdy.RstStream(7, spdy.REFUSED_STREAM))
    assert streams[-1].id == 5 and streams[-1].reset_received
    assert await streams[-1].read() == b""
    client.inbox.put_nowait(None)
    await runner
    assert session.closed


def stream(sid: int, headers: dict[str, list[str]]) -> Stream:
    return Stream(Session(_discard, lambda s: None), sid, headers, remote_fin=False)


async def _discard(data: bytes) -> None:
    return None


def test_pairs_by_request_id_and_by_stream_id() -> None:
    pairs = Pairs()
    err = stream(1, {"streamtype": ["error"], "requestid": ["7"]})
    other = stream(3, {"streamtype": ["error"], "requestid": ["8"]})
    data = stream(5, {"streamtype": ["data"], "requestid": ["7"]})
    assert pairs.add(err) is None and pairs.add(other) is None
    pair = pairs.add(data)
    assert pair is not None and pair.error is err and pair.data is data
    assert list(pairs.pending) == ["8"]
    with pytest.raises(ValueError):
        pairs.add(stream(9, {"streamtype": ["error"], "requestid": ["8"]}))
    with pytest.raises(ValueError, match="invalid stream type"):
        pairs.add(stream(11, {"streamtype": ["resize"]}))
    legacy = Pairs()  # no requestID: the data stream follows its error stream
    assert legacy.add(stream(13, {"streamtype": ["error"]})) is None
    assert legacy.add(stream(15, {"streamtype": ["data"]})) is not None


def test_port_header() -> None:
    assert port_of(stream(1, {"port": ["8080"]})) == 8080
    with pytest.raises(ValueError, match="converting port header"):
        port_of(stream(1, {"port": ["http"]}))
    with pytest.raises(ValueError):
        port_of(stream(1, {"port": ["0"]}))


class FakeKubelet:
    """The kubelet's WebSocket for one port: port prefixes, then the pod's bytes."""

    subprotocol = "v5.channel.k8s.io"

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.sent: list[bytes] = []
        self.closed = False
        for channel in (0, 1):
            self.outbox.put_nowait(bytes([channel]) + (80).to_bytes(2, "little"))

    def __aiter__(self) -> FakeKubelet:
        return self

    async def __anext__(self) -> bytes:
        item = await self.outbox.get()
        if item is None:
            raise StopAsyncIteration
        return item

    async def send(self, data: bytes) -> None:
        self.sent.append(data)
        if data == b"\x00ping":
            self.outbox.put_nowait(b"\x00pong")
        if data == bytes([255, 0]):  # half-closed: the pod answers and closes
            self.outbox.put_nowait(b"\x01some error")
            self.outbox.put_nowait(None)

    async def close(self) -> None:
        self.closed = True


async def test_a_forwarded_connection_end_to_end(monkeypatch: pytest.MonkeyPatch) -> None:
    kubelet = FakeKubelet()
    dialled: list[tuple[str, int]] = []

    async def dial(self: PortForwarder, url: str, port: int) -> FakeKubelet:
        dialled.append((url, port))
        if port == 81:
            raise errors.bad_request("error forwarding port 81: refused")
        return kubelet

    monkeypatch.setattr(PortForwarder, "_dial", dial)
    forwarder = PortForwarder(None)  # type: ignore[arg-type]
    client = Client()
    runner = asyncio.ensure_future(forwarder._session("wss://node/pf", client.source(),
                                                      client.write))
    client.send(syn(1, "error", "80"))
    client.send(spdy.DataFrame(1, b"", spdy.FLAG_FIN))  # kubectl writes nothing on it
    client.send(syn(3, "data", "80"))
    await client.wait_for(lambda f: isinstance(f, spdy.SynReply) and f.stream_id == 3)
    client.send(spdy.DataFrame(3, b"ping"))
    pong = await client.wait_for(lambda f: isinstance(f, spdy.DataFrame) and f.data)
    assert pong == spdy.DataFrame(3, b"pong")
    client.send(spdy.DataFrame(3, b"", spdy.FLAG_FIN))
    await client.wait_for(lambda f: isinstance(f, spdy.DataFrame) and f.stream_id == 1
                          and f.fin)
    await client.wait_for(lambda f: isinstance(f, spdy.DataFrame) and f.stream_id == 3
                          and f.fin)
    assert b"".join(f.data for f in client.got if isinstance(f, spdy.DataFrame)
                    and f.stream_id == 1) == b"some error"
    assert kubelet.sent == [b"\x00ping", bytes([255, 0])] and kubelet.closed

    client.send(syn(5, "error", "81", "1"))
    client.send(syn(7, "data", "81", "1"))
    await client.wait_for(lambda f: isinstance(f, spdy.DataFrame) and f.stream_id == 5
                          and f.fin)
    assert b"".join(f.data for f in client.got if isinstance(f, spdy.DataFrame)
                    and f.stream_id == 5) == b"error forwarding port 81: refused"
    assert dialled == [("wss://node/pf", 80), ("wss://node/pf", 81)]
    client.inbox.put_nowait(None)
    await runner
