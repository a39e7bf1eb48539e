"""The WebSocket channel protocols: framing, negotiation, and a session bridged to them."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson
import pytest

from kubeling.kubelet import streams
from kubeling.kubelet.streams import Protocol, StreamError, StreamRequest
from kubeling.runtime.protocol import STDERR, STDOUT


class FakeSession:
    """A scripted exec: emits ``output``, then waits for stdin to close before exiting."""

    def __init__(self, output: list[tuple[int, bytes]], code: int, *, tty: bool = False,
                 wait_for_stdin: bool = False) -> None:
        self.tty = tty
        self.queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        for item in output:
            self.queue.put_nowait(item)
        if not wait_for_stdin:
            self.queue.put_nowait((0, b""))
        self.code = code
        self.stdin = b""
        self.stdin_closed = False
        self.sizes: list[tuple[int, int]] = []
        self.closed = False

    async def read(self) -> tuple[int, bytes]:
        return await self.queue.get()

    async def write(self, data: bytes) -> None:
        self.stdin += data
        await self.queue.put((STDOUT, data.upper()))

    async def close_stdin(self) -> None:
        self.stdin_closed = True
        await self.queue.put((0, b""))

    async def resize(self, width: int, height: int) -> None:
        self.sizes.append((width, height))

    async def wait(self) -> int:
        return self.code

    async def close(self) -> None:
        self.closed = True


class Socket:
    """The ASGI side of a WebSocket: what the server sent, and what the client sends."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(self, msg: dict[str, Any]) -> None:
        self.sent.append(msg)

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    def frames(self) -> list[tuple[int, bytes]]:
        out = []
        for m in self.sent:
            if m["type"] == "websocket.send":
                data = m["bytes"]
                out.append((data[0], data[1:]))
        return out


def test_negotiation_takes_the_clients_first_supported_protocol() -> None:
    assert streams.negotiate(["v5.channel.k8s.io", "v4.channel.k8s.io"]).name == streams.V5
    assert streams.negotiate(["v6.channel.k8s.io", "v4.channel.k8s.io"]).name == streams.V4
    assert streams.negotiate([]).name == streams.V1
    assert not streams.negotiate([]).offered
    with pytest.raises(StreamError, match="not supported"):
        streams.negotiate(["v9.channel.k8s.io"])


def test_framing_binary_and_base64() -> None:
    v5 = Protocol(streams.V5)
    assert v5.frame(1, b"hi") == {"type": "websocket.send", "bytes": b"\x01hi"}
    assert v5.unframe({"bytes": b"\x00data"}) == (0, b"data")
    assert v5.unframe({"text": "\x00typed"}) == (0, b"typed")  # the Python client sends text
    assert v5.unframe({"bytes": b""}) is None
    b64 = Protocol(streams.V1_BASE64)
    frame = b64.frame(2, b"err")
    assert frame == {"type": "websocket.send", "text": "2" + base64.b64encode(b"err").decode()}
    assert b64.unframe({"text": "0" + base64.b64encode(b"in").decode()}) == (0, b"in")


def test_request_from_query() -> None:
    req = StreamRequest.from_query("exec", {"command": ["sh", "-c", "exit 3"],
                                            "stdout": ["1"], "stderr": ["1"], "tty": ["1"]})
    assert req.command == ("sh", "-c", "exit 3") and req.tty and not req.stderr
    with pytest.raises(StreamError, match="at least 1 of stdin, stdout, stderr"):
        StreamRequest.from_query("exec", {"command": ["true"]})
    with pytest.raises(StreamError, match="at least one command"):
        StreamRequest.from_query("exec", {"stdout": ["1"]})


def test_exit_status_as_the_kubelet_words_it() -> None:
    status = streams.exit_status(("sh", "-c", "exit 3"), 3)
    assert orjson.dumps(status) == (
        b'{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit '
        b'code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode",'
        b'"details":{"causes":[{"reason":"ExitCode","message":"3"}]}}')


async def bridge(session: FakeSession, request: StreamRequest, protocol: Protocol,
                 sock: Socket) -> dict[str, Any] | None:
    return await streams.Bridge(session, request, protocol, sock.send, sock.receive).run()


async def test_output_streams_and_the_exit_status() -> None:
    session = FakeSession([(STDOUT, b"out"), (STDERR, b"err")], 3)
    sock = Socket()
    req = StreamRequest("exec", ("sh", "-c", "exit 3"), False, True, True, False)
    status = await bridge(session, req, Protocol(streams.V4), sock)
    assert sock.frames() == [(1, b""), (1, b"out"), (2, b"err")]
    assert status is not None and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


async def test_v5_stdin_close_and_resize() -> None:
    session = FakeSession([], 0, tty=True, wait_for_stdin=True)
    sock = Socket()
    req = StreamRequest("exec", ("cat",), True, True, False, True)
    task = asyncio.create_task(bridge(session, req, Protocol(streams.V5), sock))
    await sock.incoming.put({"type": "websocket.receive", "bytes": b"\x04" + orjson.dumps(
        {"Width": 120, "Height": 40})})
    await sock.incoming.put({"type": "websocket.receive", "bytes": b"\x00abc"})
    await sock.incoming.put({"type": "websocket.receive", "bytes": b"\xff\x00"})
    status = await asyncio.wait_for(task, 5)
    assert status == {"metadata": {}, "status": "Success"}
    assert session.stdin == b"abc" and session.stdin_closed
    assert session.sizes == [(120, 40)]
    assert (1, b"ABC") in sock.frames()


async def test_v4_has_no_close_message() -> None:
    session = FakeSession([], 0, wait_for_stdin=True)
    sock = Socket()
    req = StreamRequest("exec", ("cat",), True, True, False, False)
    task = asyncio.create_task(bridge(session, req, Protocol(streams.V4), sock))
    await sock.incoming.put({"type": "websocket.receive", "bytes": b"\xff\x00"})
    await asyncio.sleep(0.05)
    assert not session.stdin_closed and not task.done()
    await sock.incoming.put({"type": "websocket.disconnect", "code": 1000})
    assert await asyncio.wait_for(task, 5) is None  # the client left: no status


async def test_serve_reports_a_missing_container_on_the_error_channel() -> None:
    sock = Socket()
    req = StreamRequest("exec", ("true",), False, True, False, False)
    await streams.serve(None, req, None, Protocol(streams.V5), sock.send,  # type: ignore[arg-type]
                        sock.receive, container_name="app")
    assert sock.sent[0] == {"type": "websocket.accept", "subprotocol": streams.V5}
    channel, data = sock.frames()[0]
    assert channel == 3
    status = orjson.loads(data)
    assert status["status"] == "Failure"
    assert 'container not found ("app")' in status["message"]
    assert sock.sent[-1] == {"type": "websocket.close", "code": 1000}
