"""The ``pod-template-hash``: the name suffix of a Deployment's ReplicaSets.

Kubernetes hashes the Go value of the pod template: it prints the
``v1.PodTemplateSpec`` struct with go-spew's ``%#v`` (every field in
declaration order, with its Go type; maps with sorted keys; quantities by
their internal fields), feeds that text and the collision count (4 bytes
little-endian, padded to 8) to FNV-32a, and spells the decimal value of the
hash with the 27 letters and digits of ``SafeEncodeString``. To give the same
names as Kubernetes 1.32, this module renders the same text from the JSON
object, driven by the Go declarations in :mod:`.gotypes`. A template using a
type not described there is hashed from its canonical JSON instead: stable and
unique, but not Kubernetes' value.
"""

from __future__ import annotations

from typing import Any

import orjson

from kubeling.controllers.deployment.gotypes import ALIASES, STRUCTS

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
FNV32_OFFSET = 0x811C9DC5
FNV32_PRIME = 0x01000193


class UnknownGoType(Exception):
    pass


def fnv32a(data: bytes, h: int = FNV32_OFFSET) -> int:
    for b in data:
        h = ((h ^ b) * FNV32_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: each byte mapped onto an alphabet without vowels or 0/1/3."""
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in text.encode())


def compute_hash(template: dict[str, Any], collision_count: int | None = None) -> str:
    """The ``pod-template-hash`` of a pod template (as the API stores it)."""
    try:
        text = spew("v1.PodTemplateSpec", template, typed=True).encode()
    except UnknownGoType:
        text = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    h = fnv32a(text)
    if collision_count is not None:
        h = fnv32a((collision_count & 0xFFFFFFFF).to_bytes(4, "little") + bytes(4), h)
    return safe_encode(str(h))


# ----- go-spew's %#v over JSON values ------------------------------------------------------

_INTS = {"int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32",
         "uint64", "resource.Scale", "intstr.Type"}


def spew(go_type: str, value: Any, *, typed: bool) -> str:
    """The text go-spew prints for ``value`` of ``go_type``; ``typed`` is False where spew
    leaves the type out (slice elements, map keys and values, behind a pointer)."""
    prefix = f"({go_type})" if typed else ""
    if go_type.startswith("*"):
        if value is None:
            return f"({go_type})<nil>" if typed else "<nil>"
        return (prefix if typed else "<*>") + spew(go_type[1:], value, typed=False)
    if go_type.startswith("[]"):
        if value is None:
            return prefix + "<nil>"
        elem = go_type[2:]
        return prefix + "[" + " ".join(spew(elem, v, typed=False) for v in value) + "]"
    base = ALIASES.get(go_type, go_type)
    if base.startswith("map["):
        if value is None:
            return prefix + "<nil>"
        key_type, _, val_type = base[4:].partition("]")
        items = [f"{spew(key_type, k, typed=False)}:{spew(val_type, value[k], typed=False)}"
                 for k in sorted(value)]
        return prefix + "map[" + " ".join(items) + "]"
    if base == "string":
        return prefix + ("" if value is None else str(value))
    if base == "bool":
        return prefix + ("true" if value else "false")
    if base in _INTS:
        return prefix + str(int(value or 0))
    if base == "resource.Quantity":
        return prefix + _quantity(value)
    if base == "intstr.IntOrString":
        return prefix + _int_or_string(value)
    if base == "v1.Time":
        if value:
            raise UnknownGoType("a set time")
        return prefix + ("{Time:(time.Time){wall:(uint64)0 ext:(int64)0 "
                         "loc:(*time.Location)<nil>}}")
    fields = STRUCTS.get(base)
    if fields is None:
        raise UnknownGoType(go_type)
    obj = value or {}
    if not isinstance(obj, dict):
        raise UnknownGoType(go_type)
    parts = []
    for field_name, json_name, field_type in fields:
        field_value = obj if json_name == "-" else obj.get(json_name)
        parts.append(f"{field_name}:{spew(field_type, field_value, typed=True)}")
    return prefix + "{" + " ".join(parts) + "}"


def _int_or_string(value: Any) -> str:
    if isinstance(value, str):
        return f"{{Type:(intstr.Type)1 IntVal:(int32)0 StrVal:(string){value}}}"
    return f"{{Type:(intstr.Type)0 IntVal:(int32){int(value or 0)} StrVal:(string)}}"


_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15,
            "E": 18}
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}


def _split_quantity(text: str) -> tuple[bool, str, str, str]:
    positive = True
    pos = 0
    if text[:1] in "+-":
        positive = text[0] != "-"
        pos = 1
    while pos < len(text) and text[pos] == "0":
        pos += 1
    start = pos
    while pos < len(text) and text[pos].isdigit():
        pos += 1
    num = text[start:pos] or "0"
    denom = ""
    if pos < len(text) and text[pos] == ".":
        pos += 1
        start = pos
        while pos < len(text) and text[pos].isdigit():
            pos += 1
        denom = text[start:pos]
    return positive, num, denom, text[pos:]


def _quantity(value: Any) -> str:
    """resource.Quantity's fields after ParseQuantity, for values held in an int64."""
    text = str(value).strip()
    if text == "0":
        return _quantity_fields(0, 0, "0", "DecimalSI")
    positive, num, denom, suffix = _split_quantity(text)
    if suffix in _DECIMAL:
        fmt, exponent, mantissa = "DecimalSI", _DECIMAL[suffix], 1
        precision = 18 - (len(num) + len(denom))
        scale = exponent
    elif suffix in _BINARY and not denom:
        fmt, exponent, scale = "BinarySI", _BINARY[suffix], 0
        mantissa = 1 << exponent
        precision = 15 - len(num) - int(exponent * 3 / 10) - 1
    elif suffix[:1] in ("e", "E") and suffix[1:].lstrip("+-").isdigit():
        fmt, exponent, mantissa = "DecimalExponent", int(suffix[1:]), 1
        precision = 18 - (len(num) + len(denom))
        scale = exponent
    else:
        raise UnknownGoType(f"quantity {text}")
    scale -= len(denom)
    if precision < 0 or scale < -9:
        raise UnknownGoType(f"quantity {text}")
    shifted = num + denom
    result = int(shifted) * mantissa
    if result >= 2**63:
        raise UnknownGoType(f"quantity {text}")
    if not positive:
        result = -result
    if fmt == "BinarySI":
        canonical = exponent % 10 == 0 and int(shifted) & 7 != 0
    else:
        canonical = scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"
    return _quantity_fields(result, scale, text if canonical else "", fmt)


def _quantity_fields(value: int, scale: int, s: str, fmt: str) -> str:
    return (f"{{i:(resource.int64Amount){{value:(int64){value} scale:(resource.Scale){scale}}} "
            f"d:(resource.infDecAmount){{Dec:(*inf.Dec)<nil>}} s:(string){s} "
            f"Format:(resource.Format){fmt}}}")
