"""The server side of a SPDY/3.1 session, over any byte transport.

One session per upgraded connection (plain ``Upgrade: SPDY/3.1`` or SPDY
tunnelled in WebSocket binary messages). The client opens streams
(SYN_STREAM, odd ids); the session hands each to its handler, which replies
(SYN_REPLY), reads and writes DATA and ends its side with FIN. PINGs from the
client are echoed. Flow control is not enforced: moby/spdystream, the SPDY
implementation in kubectl and the kubelet, neither sends nor honours
WINDOW_UPDATE, so a sender waiting for window would stall; WINDOW_UPDATEs are
still sent as received data is consumed, for any peer that counts them.
Frames are written under one lock, in the order their header blocks were
compressed (the compressor's state is shared across frames).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from kubeling.apiserver import spdy

log = logging.getLogger("kubeling.apiserver.spdy")

Write = Callable[[bytes], Awaitable[None]]
MAX_DATA = 32 * 1024  # bytes per DATA frame written
WINDOW_CREDIT = 64 * 1024  # WINDOW_UPDATE once this much has been consumed
INBOX = 64  # frames buffered per stream before the reader waits


class Stream:
    """One client-initiated stream."""

    def __init__(self, session: Session, stream_id: int, headers: spdy.Headers,
                 *, remote_fin: bool) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue(INBOX)
        self.remote_closed = remote_fin
        self.local_closed = False
        self.reset_received = False
        self._consumed = 0
        if remote_fin:
            self._inbox.put_nowait(None)

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    async def reply(self) -> None:
        await self.session.send(spdy.SynReply(self.id, {}))

    async def read(self) -> bytes:
        """The next bytes from the client; b"" once it has finished (FIN or reset)."""
        chunk = await self._inbox.get()
        if chunk is None:
            self._inbox.put_nowait(None)
            return b""
        self._consumed += len(chunk)
        if self._consumed >= WINDOW_CREDIT and not self.remote_closed:
            credit, self._consumed = self._consumed, 0
            with contextlib.suppress(ConnectionError, OSError):
                await self.session.send(spdy.WindowUpdate(self.id, credit))
        return chunk

    async def write(self, data: bytes) -> None:
        if self.local_closed or self.reset_received:
            return
        for start in range(0, len(data), MAX_DATA):
            await self.session.send(spdy.DataFrame(self.id, data[start:start + MAX_DATA]))

    async def close(self) -> None:
        """FIN: nothing more from this side."""
        if self.local_closed or self.reset_received:
            return
        self.local_closed = True
        await self.session.send(spdy.DataFrame(self.id, b"", spdy.FLAG_FIN))
        self.session.forget_if_done(self)

    async def reset(self, status: int = spdy.CANCEL) -> None:
        if self.reset_received:
            return
        self.local_closed = True
        self._finish()
        await self.session.send(spdy.RstStream(self.id, status))
        self.session.forget(self)

    def _deliver(self, chunk: bytes) -> Awaitable[None]:
        return self._inbox.put(chunk)

    def _finish(self) -> None:
        if not self.remote_closed:
            self.remote_closed = True
            try:
                self._inbox.put_nowait(None)
            except asyncio.QueueFull:
                # The reader is behind: drop what it has not read, it is ending anyway.
                while not self._inbox.empty():
                    self._inbox.get_nowait()
                self._inbox.put_nowait(None)


class Session:
    def __init__(self, write: Write, on_stream: Callable[[Stream], None]) -> None:
        self._write = write
        self._on_stream = on_stream
        self._encoder = spdy.Encoder()
        self._parser = spdy.Parser()
        self._lock = asyncio.Lock()
        self.streams: dict[int, Stream] = {}
        self._last_id = 0
        self.gone_away = False
        self.closed = False

    async def send(self, frame: spdy.Frame) -> None:
        if self.closed:
            raise ConnectionResetError("SPDY session closed")
        async with self._lock:
            await self._write(self._encoder.encode(frame))

    def forget(self, stream: Stream) -> None:
        self.streams.pop(stream.id, None)

    def forget_if_done(self, stream: Stream) -> None:
        if stream.local_closed and stream.remote_closed:
            self.forget(stream)

    async def run(self, source: AsyncIterator[bytes]) -> None:
        """Read frames until the client goes; then every stream sees its end."""
        try:
            async for chunk in source:
                for frame in self._parser.feed(chunk):
                    await self._handle(frame)
        except spdy.ProtocolError as exc:
            log.info("SPDY session ended: %s", exc)
            with contextlib.suppress(ConnectionError, OSError):
                await self.send(spdy.GoAway(self._last_id, 1))
        finally:
            self.closed = True
            for stream in list(self.streams.values()):
                stream.reset_received = True
                stream._finish()
            self.streams.clear()

    async def _handle(self, frame: spdy.Frame) -> None:
        if isinstance(frame, spdy.DataFrame):
            stream = self.streams.get(frame.stream_id)
            if stream is None or stream.remote_closed:
                return
            if frame.data:
                await stream._deliver(frame.data)
            if frame.fin:
                stream._finish()
                self.forget_if_done(stream)
        elif isinstance(frame, spdy.SynStream):
            await self._syn(frame)
        elif isinstance(frame, spdy.RstStream):
            stream = self.streams.pop(frame.stream_id, None)
            if stream is not None:
                stream.reset_received = True
                stream._finish()
        elif isinstance(frame, spdy.Ping):
            if frame.id % 2 == 1:  # the client's; ours (even) are never sent
                await self.send(frame)
        elif isinstance(frame, spdy.GoAway):
            self.gone_away = True
        elif isinstance(frame, spdy.HeadersFrame):
            stream = self.streams.get(frame.stream_id)
            if stream is not None and frame.flags & spdy.FLAG_FIN:
                stream._finish()
                self.forget_if_done(stream)
        # SETTINGS and WINDOW_UPDATE need nothing: no flow control is enforced (above).

    async def _syn(self, frame: spdy.SynStream) -> None:
        sid = frame.stream_id
        if self.gone_away or sid % 2 == 0 or sid <= self._last_id:
            await self.send(spdy.RstStream(sid, spdy.PROTOCOL_ERROR if not self.gone_away
                                           else spdy.REFUSED_STREAM))
            return
        self._last_id = sid
        stream = Stream(self, sid, frame.headers, remote_fin=frame.fin)
        if frame.flags & spdy.FLAG_UNIDIRECTIONAL:
            stream.local_closed = True
        self.streams[sid] = stream
        self._on_stream(stream)
