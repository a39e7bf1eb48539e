"""SPDY/3.1 framing, as kubectl's port-forward speaks it (moby/spdystream).

kubectl multiplexes port-forward connections as SPDY streams, over an HTTP
connection upgraded to ``SPDY/3.1`` or tunnelled in WebSocket binary messages.
No maintained Python SPDY library exists, so the frames are built here from
the SPDY/3 draft: an 8-byte header (control bit, version 3, type, flags, 24-bit
length) then the payload; a data frame's header holds the stream id instead
of version and type. Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are
zlib streams primed with the draft's dictionary, one compressor and one
decompressor per direction for the whole session, each block ending in a sync
flush. Names are lowercase on the wire; a value holding several values
separates them with NUL.

``Parser`` turns bytes into frames incrementally (any split of the input
gives the same frames) and ``Encoder`` frames into bytes; the session logic
lives with its user (apiserver/spdysession.py).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
CANCEL = 5
INTERNAL_ERROR = 6

MAX_FRAME_PAYLOAD = (1 << 24) - 1
MAX_HEADER_BLOCK = 1 << 20  # a decompressed header block larger than this is refused


def _dictionary() -> bytes:
    """The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1): a list of
    length-prefixed words followed by a run of plain text."""
    words = [*(
        "options head post put delete trace accept accept-charset accept-encoding "
        "accept-language accept-ranges age allow authorization cache-control connection "
        "content-base content-encoding content-language content-length content-location "
        "content-md5 content-range content-type date etag expect expires from host if-match "
        "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
        "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
        "server te trailer transfer-encoding upgrade user-agent vary via warning "
        "www-authenticate method get status"
    ).split(), "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive",
        "origin"]
    text = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
        "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
        "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
        "charset=iso-8859-1,utf-,*,enq=0."
    )
    out = bytearray()
    for word in words:
        out += struct.pack(">I", len(word)) + word.encode()
    return bytes(out) + text.encode()


DICTIONARY = _dictionary()

Headers = dict[str, list[str]]


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3: the session must end."""


@dataclass
class DataFrame:
    stream_id: int
    data: bytes = b""
    flags: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass
class SynStream:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0
    associated_id: int = 0
    priority: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0


@dataclass
class HeadersFrame:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0


@dataclass
class RstStream:
    stream_id: int
    status: int = CANCEL


@dataclass
class Settings:
    entries: list[tuple[int, int, int]] = field(default_factory=list)  # (flags, id, value)
    flags: int = 0


@dataclass
class Ping:
    id: int


@dataclass
class GoAway:
    last_good_stream_id: int = 0
    status: int = 0


@dataclass
class WindowUpdate:
    stream_id: int
    delta: int


Frame = (DataFrame | SynStream | SynReply | HeadersFrame | RstStream | Settings | Ping | GoAway
         | WindowUpdate)


def pack_headers(headers: Headers) -> bytes:
    """An uncompressed header block: count, then (name, NUL-joined values) pairs."""
    out = bytearray(struct.pack(">I", len(headers)))
    for name, values in headers.items():
        n = name.lower().encode()
        v = "\x00".join(values).encode()
        out += struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v
    return bytes(out)


def unpack_headers(block: bytes) -> Headers:
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        pos = 4
        headers: Headers = {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4:pos + 4 + n].decode("latin-1")
            pos += 4 + n
            (v,) = struct.unpack_from(">I", block, pos)
            value = block[pos + 4:pos + 4 + v].decode("latin-1")
            pos += 4 + v
            if pos > len(block):
                raise ProtocolError("truncated header block")
            headers.setdefault(name.lower(), []).extend(value.split("\x00"))
        return headers
    except struct.error:
        raise ProtocolError("truncated header block") from None


class Encoder:
    """Frames to bytes; owns this direction's header compressor."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY,
                                      DICTIONARY)

    def _block(self, headers: Headers) -> bytes:
        return self._zlib.compress(pack_headers(headers)) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, DataFrame):
            if len(frame.data) > MAX_FRAME_PAYLOAD:
                raise ValueError("data frame too large")
            return struct.pack(">II", frame.stream_id & 0x7FFFFFFF,
                               (frame.flags << 24) | len(frame.data)) + frame.data
        if isinstance(frame, SynStream):
            body = struct.pack(">IIBB", frame.stream_id & 0x7FFFFFFF,
                               frame.associated_id & 0x7FFFFFFF, (frame.priority & 7) << 5,
                               0) + self._block(frame.headers)
            return _control(SYN_STREAM, frame.flags, body)
        if isinstance(frame, SynReply):
            body = struct.pack(">I", frame.stream_id & 0x7FFFFFFF) + self._block(frame.headers)
            return _control(SYN_REPLY, frame.flags, body)
        if isinstance(frame, HeadersFrame):
            body = struct.pack(">I", frame.stream_id & 0x7FFFFFFF) + self._block(frame.headers)
            return _control(HEADERS, frame.flags, body)
        if isinstance(frame, RstStream):
            return _control(RST_STREAM, 0, struct.pack(">II", frame.stream_id & 0x7FFFFFFF,
                                                       frame.status))
        if isinstance(frame, Settings):
            body = struct.pack(">I", len(frame.entries)) + b"".join(
                struct.pack(">II", (f << 24) | (i & 0xFFFFFF), v) for f, i, v in frame.entries)
            return _control(SETTINGS, frame.flags, body)
        if isinstance(frame, Ping):
            return _control(PING, 0, struct.pack(">I", frame.id))
        if isinstance(frame, GoAway):
            return _control(GOAWAY, 0, struct.pack(">II", frame.last_good_stream_id & 0x7FFFFFFF,
                                                   frame.status))
        return _control(WINDOW_UPDATE, 0, struct.pack(">II", frame.stream_id & 0x7FFFFFFF,
                                                      frame.delta & 0x7FFFFFFF))


def _control(kind: int, flags: int, body: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(body)) + body


class Parser:
    """Bytes to frames, fed in pieces of any size; owns the peer's header decompressor."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._zlib = zlib.decompressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= 8:
            word, flags_len = struct.unpack_from(">II", self._buf, 0)
            length = flags_len & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            flags = flags_len >> 24
            if not word & 0x80000000:
                frames.append(DataFrame(word & 0x7FFFFFFF, payload, flags))
                continue
            version, kind = (word >> 16) & 0x7FFF, word & 0xFFFF
            if version != VERSION:
                raise ProtocolError(f"unsupported SPDY version {version}")
            frame = self._control(kind, flags, payload)
            if frame is not None:
                frames.append(frame)
        return frames

    def _headers(self, block: bytes) -> Headers:
        try:
            raw = self._zlib.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise ProtocolError(f"bad header block: {exc}") from None
        if self._zlib.unconsumed_tail:
            raise ProtocolError("header block too large")
        return unpack_headers(raw)

    def _control(self, kind: int, flags: int, p: bytes) -> Frame | None:
        try:
            if kind == SYN_STREAM:
                sid, assoc, prio = struct.unpack_from(">IIB", p, 0)
                return SynStream(sid & 0x7FFFFFFF, self._headers(p[10:]), flags,
                                 assoc & 0x7FFFFFFF, prio >> 5)
            if kind == SYN_REPLY:
                (sid,) = struct.unpack_from(">I", p, 0)
                return SynReply(sid & 0x7FFFFFFF, self._headers(p[4:]), flags)
            if kind == HEADERS:
                (sid,) = struct.unpack_from(">I", p, 0)
                return HeadersFrame(sid & 0x7FFFFFFF, self._headers(p[4:]), flags)
            if kind == RST_STREAM:
                sid, status = struct.unpack_from(">II", p, 0)
                return RstStream(sid & 0x7FFFFFFF, status)
            if kind == SETTINGS:
                (count,) = struct.unpack_from(">I", p, 0)
                entries = []
                for i in range(count):
                    fid, value = struct.unpack_from(">II", p, 4 + 8 * i)
                    entries.append((fid >> 24, fid & 0xFFFFFF, value))
                return Settings(entries, flags)
            if kind == PING:
                return Ping(struct.unpack_from(">I", p, 0)[0])
            if kind == GOAWAY:
                last, status = struct.unpack_from(">II", p, 0)
                return GoAway(last & 0x7FFFFFFF, status)
            if kind == WINDOW_UPDATE:
                sid, delta = struct.unpack_from(">II", p, 0)
                return WindowUpdate(sid & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        except struct.error:
            raise ProtocolError(f"truncated control frame of type {kind}") from None
        return None  # unknown control frames are ignored, as the draft says
