"""Decode request bodies sent in the Kubernetes protobuf encoding.

kubectl 1.32 sends the objects of ``kubectl create ...`` and ``kubectl
autoscale`` as ``application/vnd.kubernetes.protobuf``: the magic
``k8s\\x00`` followed by a ``runtime.Unknown`` envelope whose ``raw`` bytes
are the object's message. Everything else in kubeling speaks JSON, so this
module turns such a body into exactly the dict the JSON encoding of the same
object would give, and nothing else: field names as in JSON, bytes as
base64, maps as dicts, ``IntOrString``/``Quantity``/``Time`` in their JSON
forms. The wire decoding is hand-written and driven by the field tables of
:mod:`kubeling.api.protobuf_types`; unknown field numbers are skipped, and
any malformed body is a 400 ``BadRequest``, never another exception.
"""

from __future__ import annotations

import base64
import struct
from datetime import UTC, datetime
from typing import Any

import orjson

from kubeling.api import protobuf_types as t
from kubeling.api.errors import StatusError, bad_request

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

_DELETE_OPTIONS = "meta.v1.DeleteOptions"

# Wire types.
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

_VARINT_KINDS = frozenset({t.BOOL, t.INT32, t.INT64, t.UINT32, t.UINT64, t.SINT32, t.SINT64})
_I64_KINDS = frozenset({t.DOUBLE, t.FIXED64, t.SFIXED64})
_I32_KINDS = frozenset({t.FLOAT, t.FIXED32, t.SFIXED32})
_SPECIAL_KINDS = frozenset(
    {t.TIME, t.MICROTIME, t.DURATION, t.QUANTITY, t.INT_OR_STRING, t.RAW_JSON}
)

_WIRE_OF = {
    **dict.fromkeys(_VARINT_KINDS, _VARINT),
    **dict.fromkeys(_I64_KINDS, _I64),
    **dict.fromkeys(_I32_KINDS, _I32),
}


class _Malformed(Exception):
    """Raised inside the decoder; turned into one 400 at the entry point."""


def decode_protobuf(body: bytes) -> dict[str, Any]:
    """Decode a ``k8s\\x00``-prefixed protobuf body into its JSON-shaped dict.

    Raises :class:`~kubeling.api.errors.StatusError` (400 BadRequest) for a
    body that is not a well-formed protobuf object of a kind we know.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise bad_request("the protobuf body must be bytes")
    buf = bytes(body)
    if not buf.startswith(MAGIC):
        raise bad_request("the body does not start with the Kubernetes protobuf magic 'k8s\\x00'")
    try:
        api_version, kind, raw, encoding = _envelope(buf)
    except _Malformed as err:
        raise bad_request(f"invalid protobuf envelope: {err}") from None
    if encoding:
        raise bad_request(f"unsupported protobuf content encoding {encoding!r}")
    message = t.KINDS.get((api_version, kind))
    if message is None and kind == "DeleteOptions" and api_version:
        message = _DELETE_OPTIONS
    if message is None:
        raise bad_request(f'no kind "{kind}" is registered for version "{api_version}"')
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    try:
        _message(raw, 0, len(raw), t.MESSAGES[message], obj)
    except _Malformed as err:
        raise bad_request(f"invalid protobuf body for {kind}: {err}") from None
    except StatusError:
        raise
    except (RecursionError, ValueError, OverflowError) as err:
        raise bad_request(f"invalid protobuf body for {kind}: {err}") from None
    return obj


def _envelope(buf: bytes) -> tuple[str, str, bytes, str]:
    api_version = kind = encoding = ""
    raw = b""
    pos, end = len(MAGIC), len(buf)
    while pos < end:
        num, wire, pos, value = _field(buf, pos, end)
        if wire != _LEN:
            continue
        start, stop = value
        if num == 1:
            p = start
            while p < stop:
                n2, w2, p, v2 = _field(buf, p, stop)
                if w2 == _LEN and n2 in (1, 2):
                    text = _text(buf, *v2)
                    if n2 == 1:
                        api_version = text
                    else:
                        kind = text
        elif num == 2:
            raw = buf[start:stop]
        elif num == 3:
            encoding = _text(buf, start, stop)
    return api_version, kind, raw, encoding


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise _Malformed("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _Malformed("varint longer than 10 bytes")


def _field(buf: bytes, pos: int, end: int) -> tuple[int, int, int, Any]:
    """Read one field: (number, wire type, next position, value or (start, stop))."""
    if pos < end and buf[pos] < 0x80:  # one-byte key: fields 1..15, the common case
        key = buf[pos]
        pos += 1
    else:
        key, pos = _varint(buf, pos, end)
    num, wire = key >> 3, key & 7
    if num == 0:
        raise _Malformed("field number 0")
    if wire == _LEN:
        if pos < end and buf[pos] < 0x80:
            n = buf[pos]
            pos += 1
        else:
            n, pos = _varint(buf, pos, end)
        if n > end - pos:
            raise _Malformed(f"field {num} is longer than its message")
        return num, wire, pos + n, (pos, pos + n)
    if wire == _VARINT:
        value, pos = _varint(buf, pos, end)
        return num, wire, pos, value
    if wire == _I64:
        if pos + 8 > end:
            raise _Malformed("truncated fixed64")
        return num, wire, pos + 8, buf[pos : pos + 8]
    if wire == _I32:
        if pos + 4 > end:
            raise _Malformed("truncated fixed32")
        return num, wire, pos + 4, buf[pos : pos + 4]
    raise _Malformed(f"unsupported wire type {wire} for field {num}")


def _text(buf: bytes, start: int, stop: int) -> str:
    try:
        return buf[start:stop].decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed("a string field is not valid UTF-8") from None


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _scalar(kind: int, wire: int, value: Any, buf: bytes) -> Any:
    if kind == t.STRING:
        return _text(buf, *value)
    if kind == t.BYTES:
        start, stop = value
        return base64.b64encode(buf[start:stop]).decode("ascii")
    if kind == t.BOOL:
        return value != 0
    if kind == t.INT32:
        return _signed(value, 32)
    if kind == t.INT64:
        return _signed(value, 64)
    if kind == t.UINT32:
        return value & 0xFFFFFFFF
    if kind == t.UINT64:
        return value & 0xFFFFFFFFFFFFFFFF
    if kind in (t.SINT32, t.SINT64):
        return (value >> 1) ^ -(value & 1)
    fmt = {
        t.DOUBLE: "<d",
        t.FIXED64: "<Q",
        t.SFIXED64: "<q",
        t.FLOAT: "<f",
        t.FIXED32: "<I",
        t.SFIXED32: "<i",
    }[kind]
    return struct.unpack(fmt, value)[0]


def _expected_wire(kind: int) -> int:
    return _WIRE_OF.get(kind, _LEN)


def _value(kind: int, nested: str | None, wire: int, value: Any, buf: bytes) -> Any:
    if kind == t.MESSAGE:
        start, stop = value
        return _message(buf, start, stop, t.MESSAGES[nested or ""], {})
    if kind in _SPECIAL_KINDS:
        start, stop = value
        return _special(kind, buf, start, stop)
    return _scalar(kind, wire, value, buf)


def _zero(kind: int, nested: str | None) -> Any:
    if kind == t.MESSAGE:
        return {}
    if kind == t.STRING or kind == t.BYTES:
        return ""
    if kind == t.BOOL:
        return False
    if kind in _SPECIAL_KINDS:
        return _special(kind, b"", 0, 0)
    return 0


def _message(
    buf: bytes, pos: int, end: int, table: dict[int, t.Field], out: dict[str, Any]
) -> dict[str, Any]:
    while pos < end:
        num, wire, pos, value = _field(buf, pos, end)
        spec = table.get(num)
        if spec is None:
            continue
        name, kind, flags, nested = spec
        expected = _WIRE_OF.get(kind, _LEN)
        if flags & t.MAP:
            if wire != _LEN:
                raise _Malformed(f"map field {name} has wire type {wire}")
            start, stop = value
            key, item = _map_entry(buf, start, stop, kind, nested)
            entries = out.get(name)
            if not isinstance(entries, dict):
                entries = out[name] = {}
            entries[key] = item
        elif flags & t.REPEATED:
            items = out.get(name)
            if not isinstance(items, list):
                items = out[name] = []
            if wire == _LEN and expected != _LEN:
                start, stop = value
                items.extend(_packed(buf, start, stop, kind))
            elif wire != expected:
                raise _Malformed(f"field {name} has wire type {wire}")
            else:
                items.append(_value(kind, nested, wire, value, buf))
        elif wire != expected:
            raise _Malformed(f"field {name} has wire type {wire}")
        elif flags & t.INLINE:
            start, stop = value
            _message(buf, start, stop, t.MESSAGES[nested or ""], out)
        elif kind == t.MESSAGE:
            start, stop = value
            target = out.get(name)
            out[name] = _message(
                buf,
                start,
                stop,
                t.MESSAGES[nested or ""],
                target if isinstance(target, dict) else {},
            )
        else:
            item = _value(kind, nested, wire, value, buf)
            if item or flags & t.KEEP_ZERO or kind in _SPECIAL_KINDS:
                out[name] = item
            else:
                out.pop(name, None)
    return out


def _packed(buf: bytes, pos: int, end: int, kind: int) -> list[Any]:
    items: list[Any] = []
    wire = _expected_wire(kind)
    size = 8 if wire == _I64 else 4
    while pos < end:
        if wire == _VARINT:
            raw, pos = _varint(buf, pos, end)
            items.append(_scalar(kind, wire, raw, buf))
        else:
            if pos + size > end:
                raise _Malformed("truncated packed field")
            items.append(_scalar(kind, wire, buf[pos : pos + size], buf))
            pos += size
    return items


def _map_entry(buf: bytes, pos: int, end: int, kind: int, nested: str | None) -> tuple[str, Any]:
    key = ""
    item: Any = _zero(kind, nested)
    expected = _expected_wire(kind)
    while pos < end:
        num, wire, pos, value = _field(buf, pos, end)
        if num == 1:
            if wire != _LEN:
                raise _Malformed("map key is not a string")
            key = _text(buf, *value)
        elif num == 2:
            if wire != expected:
                raise _Malformed(f"map value has wire type {wire}")
            item = _value(kind, nested, wire, value, buf)
    return key, item


def _ints(buf: bytes, pos: int, end: int) -> dict[int, Any]:
    """The fields of a small message of varints and strings, by number (last wins)."""
    fields: dict[int, Any] = {}
    while pos < end:
        num, wire, pos, value = _field(buf, pos, end)
        fields[num] = (wire, value)
    return fields


def _get_int(fields: dict[int, Any], num: int, bits: int) -> int:
    wire, value = fields.get(num, (_VARINT, 0))
    if wire != _VARINT:
        raise _Malformed(f"field {num} has wire type {wire}")
    return _signed(value, bits)


def _get_bytes(fields: dict[int, Any], num: int, buf: bytes) -> bytes:
    wire, value = fields.get(num, (_LEN, (0, 0)))
    if wire != _LEN:
        raise _Malformed(f"field {num} has wire type {wire}")
    start, stop = value
    return buf[start:stop]


def _special(kind: int, buf: bytes, start: int, stop: int) -> Any:
    fields = _ints(buf, start, stop)
    if kind == t.QUANTITY:
        text = _get_bytes(fields, 1, buf)
        return _text(text, 0, len(text)) or "0"
    if kind == t.INT_OR_STRING:
        if _get_int(fields, 1, 64) == 1:
            text = _get_bytes(fields, 3, buf)
            return _text(text, 0, len(text))
        return _get_int(fields, 2, 32)
    if kind == t.TIME or kind == t.MICROTIME:
        seconds, nanos = _get_int(fields, 1, 64), _get_int(fields, 2, 32)
        return _timestamp(seconds, nanos, micro=kind == t.MICROTIME)
    if kind == t.DURATION:
        return go_duration(_get_int(fields, 1, 64))
    raw = _get_bytes(fields, 1, buf)
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _Malformed("embedded object is not JSON") from None


def _timestamp(seconds: int, nanos: int, *, micro: bool) -> str | None:
    if seconds == 0 and nanos == 0:
        return None
    if not 0 <= nanos < 1_000_000_000:
        raise _Malformed("timestamp nanos out of range")
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise _Malformed("timestamp out of range") from None
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if len(text) != 19:
        raise _Malformed("timestamp out of range")
    if micro:
        return f"{text}.{nanos // 1000:06d}Z"
    return text + "Z"


def go_duration(nanoseconds: int) -> str:
    """Format a duration the way Go's ``time.Duration.String`` does ("1h2m3.5s")."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    n = abs(nanoseconds)
    if n < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if n >= size:
                return sign + _fraction(n, size) + unit
    hours, rest = divmod(n, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    text = _fraction(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _fraction(n: int, unit: int) -> str:
    whole, frac = divmod(n, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{frac:0{digits}d}".rstrip("0")
