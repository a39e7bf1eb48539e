"""Pod fields and container resources as the downward API renders them, for env vars
(``valueFrom``) and downwardAPI volume files alike.

A downwardAPI volume item is one pod field (``metadata.labels``...) or one
container resource (``limits.memory`` with a divisor) written as text, exactly
as the kubelet writes it: label and annotation maps as sorted ``key="value"``
lines with Go-quoted values and no trailing newline, resources as the ceiling
of value ÷ divisor, limits that are not set read from the node's allocatable.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from kubeling.api.quantity import parse_quantity
from kubeling.client.interface import Obj

_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def go_quote(text: str) -> str:
    """``text`` as Go's ``%q`` prints a string."""
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch == " " or (ch.isprintable() and not ch.isspace()):
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def format_map(values: dict[str, str]) -> str:
    return "\n".join(f"{k}={go_quote(values[k])}" for k in sorted(values))


def _subscript(path: str) -> tuple[str, str | None]:
    if path.endswith("']") and "['" in path:
        head, _, rest = path.partition("['")
        if head:
            return head, rest[:-2]
    return path, None


def pod_field(pod: Obj, field_path: str) -> str:
    """The text of one ``fieldRef`` path allowed in a downwardAPI volume."""
    meta = pod.get("metadata") or {}
    head, key = _subscript(field_path)
    if key is not None and head in ("metadata.labels", "metadata.annotations"):
        values = meta.get(head.split(".")[1]) or {}
        return str(values.get(key, ""))
    if field_path in ("metadata.labels", "metadata.annotations"):
        return format_map(dict(meta.get(field_path.split(".")[1]) or {}))
    if field_path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return str(meta.get(field_path.split(".")[1]) or "")
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    simple: dict[str, Any] = {
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
    }
    if field_path in simple:
        return str(simple[field_path] or "")
    raise ValueError(f"unsupported fieldPath: {field_path}")


def _container(pod: Obj, name: str) -> Obj | None:
    spec = pod.get("spec") or {}
    for c in list(spec.get("containers") or ()) + list(spec.get("initContainers") or ()):
        if c.get("name") == name:
            return c
    return None


def resource_field(pod: Obj, ref: Obj, node: Obj | None, *, container: Obj | None = None) -> str:
    """The text of one ``resourceFieldRef`` (``containerName`` names the container unless
    ``container`` is given)."""
    target = container
    if target is None:
        name = ref.get("containerName") or ""
        target = _container(pod, name)
        if target is None:
            raise ValueError(f"failed to find container {name!r} in pod "
                             f"{(pod.get('metadata') or {}).get('name', '')}")
    resource = ref.get("resource") or ""
    kind, _, res = resource.partition(".")
    if kind not in ("limits", "requests") or not res:
        raise ValueError(f"unsupported container resource : {resource}")
    resources = target.get("resources") or {}
    raw = (resources.get(kind) or {}).get(res)
    if raw is None and kind == "limits":
        allocatable = ((node or {}).get("status") or {}).get("allocatable") or {}
        raw = allocatable.get(res)
    if raw is None and kind == "requests" and res in ("cpu", "memory", "ephemeral-storage"):
        raw = (resources.get("limits") or {}).get(res)
    value = parse_quantity(raw if raw is not None else "0")
    divisor = parse_quantity(ref.get("divisor") or "1")
    if divisor.is_zero():
        raise ValueError("divisor must not be zero")
    if res == "cpu":
        ratio = Fraction(value.milli_value(), max(divisor.milli_value(), 1))
    else:
        ratio = Fraction(value.value(), max(divisor.value(), 1))
    return str(math.ceil(ratio))
