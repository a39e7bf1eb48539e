"""exec and attach over WebSocket: the Kubernetes channel protocols, server side.

kubectl (1.29+) and the official clients speak to ``/exec`` and ``/attach``
over a WebSocket whose subprotocol names the framing: every message starts
with a byte naming the stream (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize)
and carries its bytes (``base64.*`` variants: an ASCII digit and base64
text). Since ``v4.channel.k8s.io`` the error stream carries a JSON ``Status``
at the end (Success, or NonZeroExitCode with the exit code); ``v5`` adds a
close message (255, then the stream) so a client can end stdin and still read
the output. This module negotiates the protocol and bridges a runtime
``StreamSession`` to it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from kubeling.runtime.protocol import (
    STDERR,
    STDOUT,
    ContainerState,
    ContainerStatus,
    Runtime,
    RuntimeFailure,
    StreamSession,
)

log = logging.getLogger("kubeling.kubelet.streams")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

STDIN_CHANNEL = 0
STDOUT_CHANNEL = 1
STDERR_CHANNEL = 2
ERROR_CHANNEL = 3
RESIZE_CHANNEL = 4
CLOSE_CHANNEL = 255

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V2 = "v2.channel.k8s.io"
V1 = "channel.k8s.io"
V1_BASE64 = "base64.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
SUPPORTED = (V5, V4, V3, V2, V1, V4_BASE64, V1_BASE64)
_TRUE = ("1", "true", "True")


class StreamError(Exception):
    """A request the kubelet refuses before the WebSocket is accepted (HTTP 400)."""


@dataclass(frozen=True)
class Protocol:
    name: str
    offered: bool = True  # echoed in the handshake (not when the client offered none)

    @property
    def version(self) -> int:
        return {V5: 5, V4: 4, V4_BASE64: 4, V3: 3, V2: 2}.get(self.name, 1)

    @property
    def base64(self) -> bool:
        return self.name.startswith(("base64.", "v4.base64."))

    @property
    def status_json(self) -> bool:
        """v4 and later: the error channel carries a Status object."""
        return self.version >= 4

    def frame(self, channel: int, data: bytes) -> dict[str, Any]:
        """The ASGI send message for ``data`` on ``channel``."""
        if self.base64:
            return {"type": "websocket.send",
                    "text": chr(48 + channel) + base64.b64encode(data).decode("ascii")}
        return {"type": "websocket.send", "bytes": bytes((channel,)) + data}

    def unframe(self, message: dict[str, Any]) -> tuple[int, bytes] | None:
        """(channel, data) of a received ASGI message; None for an empty one."""
        raw = message.get("bytes")
        text = message.get("text")
        if self.base64:
            payload = text if text is not None else (raw or b"").decode("ascii", "replace")
            if not payload:
                return None
            try:
                return ord(payload[0]) - 48, base64.b64decode(payload[1:])
            except ValueError:
                return None
        data: bytes = raw if raw is not None else (text or "").encode("utf-8")
        if not data:
            return None
        return data[0], data[1:]


def negotiate(offered: list[str]) -> Protocol:
    """The first protocol the client offered that we speak (none offered: ``channel.k8s.io``)."""
    if not offered:
        return Protocol(V1, offered=False)
    for name in offered:
        if name in SUPPORTED:
            return Protocol(name)
    raise StreamError(f"requested protocol(s) are not supported: [{' '.join(offered)}]; "
                      f"supports [{' '.join(SUPPORTED)}]")


@dataclass(frozen=True)
class StreamRequest:
    verb: str  # exec | attach
    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def from_query(cls, verb: str, query: dict[str, list[str]]) -> StreamRequest:
        def flag(name: str) -> bool:
            v = query.get(name) or [""]
            return v[-1] in _TRUE

        tty = flag("tty")
        req = cls(verb, tuple(query.get("command", [])), flag("stdin"), flag("stdout"),
                  flag("stderr") and not tty, tty)  # with a TTY, stderr is stdout
        if not (req.stdin or req.stdout or flag("stderr")):
            raise StreamError("you must specify at least 1 of stdin, stdout, stderr")
        if verb == "exec" and not req.command:
            raise StreamError("you must specify at least one command for the container")
        return req


def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(command: tuple[str, ...], code: int) -> dict[str, Any]:
    """What the kubelet reports for a command that exited non-zero (kubectl exits with it)."""
    return {"metadata": {}, "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command "
                       f"[{' '.join(command)}], exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def error_status(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {message}",
            "reason": "InternalError", "details": {"causes": [{"message": message}]},
            "code": 500}


async def serve(runtime: Runtime, request: StreamRequest, container: ContainerStatus | None,
                protocol: Protocol, send: Send, receive: Receive, *,
                container_name: str) -> None:
    """Accept the WebSocket and run the exec or attach to its end."""
    await send({"type": "websocket.accept",
                "subprotocol": protocol.name if protocol.offered else None})
    session: StreamSession | None = None
    pending: list[dict[str, Any]] = []
    try:
        if container is None or container.state is not ContainerState.RUNNING:
            raise RuntimeFailure("NotFound", f'container not found ("{container_name}")')
        if request.verb == "exec":
            size = await first_size(protocol, receive, pending) if request.tty else None
            session = await runtime.exec(container.id, request.command, tty=request.tty,
                                         stdin=request.stdin, size=size)
        else:
            session = await runtime.attach(container.id, tty=request.tty, stdin=request.stdin)
    except Exception as exc:  # the client is owed a Status whatever went wrong
        what = "executing command in" if request.verb == "exec" else "attaching to"
        if not isinstance(exc, RuntimeFailure):
            log.exception("%s in container %s failed", request.verb, container_name)
        message = exc.message if isinstance(exc, RuntimeFailure) else repr(exc)
        await _finish(send, protocol, error_status(f"error {what} container: {message}"))
        return
    try:
        status = await Bridge(session, request, protocol, send, receive, pending).run()
    finally:
        await session.close()
    if status is not None:
        await _finish(send, protocol, status)


INITIAL_SIZE_WAIT = 0.5  # seconds a TTY exec waits for the client's terminal size


async def first_size(protocol: Protocol, receive: Receive,
                     pending: list[dict[str, Any]]) -> tuple[int, int] | None:
    """The client's terminal size, which kubectl sends as soon as the stream is up: the
    command then starts with it rather than racing it. Other messages that come first are
    kept in ``pending`` for the bridge."""
    deadline = asyncio.get_running_loop().time() + INITIAL_SIZE_WAIT
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            msg = await asyncio.wait_for(receive(), left)
        except TimeoutError:
            return None
        frame = protocol.unframe(msg) if msg["type"] != "websocket.disconnect" else None
        if frame is not None and frame[0] == RESIZE_CHANNEL:
            size = parse_size(frame[1])
            if size is not None:
                return size
        pending.append(msg)
        if msg["type"] == "websocket.disconnect":
            return None
    return None


def parse_size(data: bytes) -> tuple[int, int] | None:
    """(columns, rows) of a resize message, None when it is malformed or empty."""
    try:
        size = orjson.loads(data)
        width, height = int(size.get("Width", 0)), int(size.get("Height", 0))
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        log.debug("ignoring a malformed resize message %r", data[:100])
        return None
    return (width, height) if width > 0 and height > 0 else None


async def _finish(send: Send, protocol: Protocol, status: dict[str, Any]) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        if protocol.status_json:
            await send(protocol.frame(ERROR_CHANNEL, orjson.dumps(status)))
        elif status["status"] != "Success":
            await send(protocol.frame(ERROR_CHANNEL, str(status.get("message", "")).encode()))
        await send({"type": "websocket.close", "code": 1000})


class Bridge:
    """Moves bytes between the WebSocket and a runtime session until the session ends (its
    Status is returned) or the client goes away (None)."""

    def __init__(self, session: StreamSession, request: StreamRequest, protocol: Protocol,
                 send: Send, receive: Receive, pending: list[dict[str, Any]] | None = None
                 ) -> None:
        self.session = session
        self.pending = list(pending or ())  # messages read before the session started
        self.request = request
        self.protocol = protocol
        self.send = send
        self.receive = receive

    async def run(self) -> dict[str, Any] | None:
        first = (STDOUT_CHANNEL if self.request.stdout else
                 STDERR_CHANNEL if self.request.stderr else ERROR_CHANNEL)
        await self.send(self.protocol.frame(first, b""))  # tells the client we are up
        output = asyncio.ensure_future(self._output())
        inbound = asyncio.ensure_future(self._input())
        try:
            done, _ = await asyncio.wait({output, inbound},
                                         return_when=asyncio.FIRST_COMPLETED)
            if output not in done:
                return None  # the client left
            output.result()
            code = await self.session.wait()
        finally:
            for t in (output, inbound):
                t.cancel()
            await asyncio.gather(output, inbound, return_exceptions=True)
        if self.request.verb == "attach" or code == 0:
            return success_status()
        return exit_status(self.request.command, code)

    async def _output(self) -> None:
        while True:
            stream, data = await self.session.read()
            if stream == 0 and not data:
                return
            if stream == STDOUT and self.request.stdout:
                await self.send(self.protocol.frame(STDOUT_CHANNEL, data))
            elif stream == STDERR:
                if self.request.stderr:
                    await self.send(self.protocol.frame(STDERR_CHANNEL, data))
                elif self.session.tty and self.request.stdout:
                    await self.send(self.protocol.frame(STDOUT_CHANNEL, data))

    async def _input(self) -> None:
        stdin_open = self.request.stdin
        while True:
            msg = self.pending.pop(0) if self.pending else await self.receive()
            if msg["type"] == "websocket.disconnect":
                return
            frame = self.protocol.unframe(msg)
            if frame is None:
                continue
            channel, data = frame
            if channel == STDIN_CHANNEL and stdin_open:
                if data:
                    await self.session.write(data)
            elif channel == RESIZE_CHANNEL:
                await self._resize(data)
            elif channel == CLOSE_CHANNEL and self.protocol.version >= 5:
                if data[:1] == bytes((STDIN_CHANNEL,)) and stdin_open:
                    stdin_open = False
                    await self.session.close_stdin()

    async def _resize(self, data: bytes) -> None:
        size = parse_size(data)
        if size is not None:
            await self.session.resize(*size)


async def stream_body(chunks: AsyncIterator[bytes], send: Send, receive: Receive) -> None:
    """Send an HTTP response body as it is produced; stop early if the client leaves."""

    async def pump() -> None:
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    work = asyncio.ensure_future(pump())
    gone = asyncio.ensure_future(disconnect())
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (work, gone):
            t.cancel()
        await asyncio.gather(work, gone, return_exceptions=True)
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    if work.done() and not work.cancelled() and work.exception() is not None:
        exc = work.exception()
        if not isinstance(exc, OSError):
            log.error("log stream failed: %r", exc)
    with contextlib.suppress(OSError, RuntimeError):
        await send({"type": "http.response.body", "body": b"", "more_body": False})
