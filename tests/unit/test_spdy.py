"""The SPDY/3.1 codec: frames built by hand from the draft's layout, round trips of every
frame type through any split of the byte stream, and header blocks compressed across frames
with the SPDY/3 dictionary."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeling.apiserver import spdy


def test_dictionary_is_the_drafts() -> None:
    d = spdy.DICTIONARY
    assert len(d) == 1423
    assert d.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert d.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")
    assert b"\x00\x00\x00\x06200 OK\x00\x00\x00\x07version" in d


def test_data_frame_layout() -> None:
    raw = spdy.Encoder().encode(spdy.DataFrame(5, b"abc", spdy.FLAG_FIN))
    assert raw == b"\x00\x00\x00\x05" + b"\x01\x00\x00\x03" + b"abc"
    assert spdy.Parser().feed(raw) == [spdy.DataFrame(5, b"abc", spdy.FLAG_FIN)]


def test_control_frames_by_hand() -> None:
    ping = b"\x80\x03\x00\x06" + b"\x00\x00\x00\x04" + struct.pack(">I", 7)
    rst = b"\x80\x03\x00\x03" + b"\x00\x00\x00\x08" + struct.pack(">II", 3, 5)
    goaway = b"\x80\x03\x00\x07" + b"\x00\x00\x00\x08" + struct.pack(">II", 9, 0)
    window = b"\x80\x03\x00\x09" + b"\x00\x00\x00\x08" + struct.pack(">II", 1, 65536)
    settings = (b"\x80\x03\x00\x04" + b"\x00\x00\x00\x0c" + struct.pack(">I", 1)
                + struct.pack(">II", 7, 1 << 20))
    frames = spdy.Parser().feed(ping + rst + goaway + window + settings)
    assert frames == [spdy.Ping(7), spdy.RstStream(3, spdy.CANCEL), spdy.GoAway(9, 0),
                      spdy.WindowUpdate(1, 65536), spdy.Settings([(0, 7, 1 << 20)])]
    enc = spdy.Encoder()
    assert enc.encode(spdy.Ping(7)) == ping
    assert enc.encode(spdy.RstStream(3, spdy.CANCEL)) == rst
    assert enc.encode(spdy.GoAway(9, 0)) == goaway
    assert enc.encode(spdy.WindowUpdate(1, 65536)) == window
    assert enc.encode(spdy.Settings([(0, 7, 1 << 20)])) == settings


def test_syn_stream_as_a_go_client_compresses_it() -> None:
    """A header block compressed independently with zlib and the dictionary (as Go's
    compress/zlib does) parses, and a second frame continues the same zlib stream."""
    z = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, spdy.DICTIONARY)
    frames = b""
    for sid, kind in ((1, "error"), (3, "data")):
        block = spdy.pack_headers({"streamtype": [kind], "port": ["8080"], "requestid": ["0"]})
        compressed = z.compress(block) + z.flush(zlib.Z_SYNC_FLUSH)
        body = struct.pack(">IIBB", sid, 0, 0, 0) + compressed
        frames += struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, len(body)) + body
    parsed = spdy.Parser().feed(frames)
    assert [f.stream_id for f in parsed if isinstance(f, spdy.SynStream)] == [1, 3]
    assert [f.headers["streamtype"] for f in parsed if isinstance(f, spdy.SynStream)] == [
        ["error"], ["data"]]


def test_headers_are_lowercased_and_multi_valued() -> None:
    enc, parser = spdy.Encoder(), spdy.Parser()
    raw = enc.encode(spdy.SynReply(1, {"X-Stream-Protocol-Version": ["a", "b"]}))
    (frame,) = parser.feed(raw)
    assert isinstance(frame, spdy.SynReply)
    assert frame.headers == {"x-stream-protocol-version": ["a", "b"]}


def test_bad_input_is_a_protocol_error() -> None:
    with pytest.raises(spdy.ProtocolError):
        spdy.Parser().feed(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01")  # SPDY/2
    body = struct.pack(">IIBB", 1, 0, 0, 0) + b"not zlib at all"
    with pytest.raises(spdy.ProtocolError):
        spdy.Parser().feed(struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, len(body)) + body)
    with pytest.raises(spdy.ProtocolError):
        spdy.Parser().feed(b"\x80\x03\x00\x06\x00\x00\x00\x02\x00\x00")  # short PING


def test_unknown_control_frames_are_skipped() -> None:
    raw = b"\x80\x03\x00\x0a\x00\x00\x00\x02zz" + spdy.Encoder().encode(spdy.Ping(1))
    assert spdy.Parser().feed(raw) == [spdy.Ping(1)]


_ids = st.integers(1, 0x7FFFFFFF)
_headers = st.dictionaries(st.text("abcdefghij-", min_size=1, max_size=12),
                           st.lists(st.text("xyz0123 ", min_size=1, max_size=8),
                                    min_size=1, max_size=3), max_size=4)
_frames = st.one_of(
    st.builds(spdy.DataFrame, _ids, st.binary(max_size=300), st.sampled_from([0, 1])),
    st.builds(spdy.SynStream, _ids, _headers, st.sampled_from([0, 1, 2, 3]), _ids,
              st.integers(0, 7)),
    st.builds(spdy.SynReply, _ids, _headers, st.sampled_from([0, 1])),
    st.builds(spdy.HeadersFrame, _ids, _headers, st.sampled_from([0, 1])),
    st.builds(spdy.RstStream, _ids, st.integers(1, 11)),
    st.builds(spdy.Ping, st.integers(0, 0xFFFFFFFF)),
    st.builds(spdy.GoAway, _ids, st.integers(0, 2)),
    st.builds(spdy.WindowUpdate, _ids, _ids),
)


@given(st.lists(_frames, max_size=8), st.lists(st.integers(1, 50), max_size=20))
def test_round_trip_through_any_split(frames: list[spdy.Frame], cuts: list[int]) -> None:
    encoder = spdy.Encoder()  # one compressor for the whole session
    raw = b"".join(encoder.encode(f) for f in frames)
    parser = spdy.Parser()
    out: list[spdy.Frame] = []
    pos = 0
    for cut in cuts:
        out += parser.feed(raw[pos:pos + cut])
        pos += cut
    out += parser.feed(raw[pos:])
    assert out == frames
