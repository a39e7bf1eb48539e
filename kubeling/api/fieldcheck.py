"""Unknown-field and type checking of request bodies, as Go's JSON decoding does it.

kube-apiserver decodes a body into typed Go structs. A value of the wrong JSON
type fails the request (400, whatever ``fieldValidation`` says); a field the
type does not have is an error with ``fieldValidation=Strict``, a warning
with ``Warn`` (the default) and silently dropped with ``Ignore`` -- in every
case it is not stored. This module walks a decoded body against the field
schema once and reports both, worded as Kubernetes words them, and prunes
unknown fields before the object is stored. It runs on every write, so it is
a plain recursive walk with no allocation on the happy path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kubeling.api.schema import (
    ANY,
    BOOLEAN,
    DATETIME,
    INT_OR_STRING,
    INTEGER,
    NUMBER,
    QUANTITY,
    STRING,
    ListOf,
    MapOf,
    Node,
    Scalar,
    Struct,
)

_QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
QUANTITY_FORMAT_ERROR = (
    "quantities must match the regular expression "
    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)

# Integer fields that are int64 in the Go types; every other integer field is int32.
_INT64_FIELDS = frozenset({
    "activeDeadlineSeconds", "terminationGracePeriodSeconds", "deletionGracePeriodSeconds",
    "runAsUser", "runAsGroup", "fsGroup", "supplementalGroups", "generation",
    "observedGeneration", "expirationSeconds", "startingDeadlineSeconds", "seconds",
    "limitBytes", "sinceSeconds", "tailLines", "gracePeriodSeconds", "uid", "gid",
    "remainingItemCount", "revision", "progressDeadlineSeconds",
})
_INT32_LIMIT = 2**31
_INT64_LIMIT = 2**63


def go_integer_type(owner: str, name: str) -> str:
    """``int64`` or ``int32``: the Go type of an integer field of struct ``owner``."""
    if name == "revision" and owner != "v1.ControllerRevision":
        return "int32"
    return "int64" if name in _INT64_FIELDS else "int32"


@dataclass
class FieldCheck:
    """What decoding a body found: unknown field paths, and the first type error."""

    unknown: list[str] = field(default_factory=list)
    type_error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.unknown and self.type_error is None

    def warnings(self) -> list[str]:
        """One ``Warning`` header text per unknown field (``fieldValidation=Warn``)."""
        return [f'unknown field "{p}"' for p in self.unknown]

    def strict_message(self) -> str:
        """The 400 message for ``fieldValidation=Strict``; empty when nothing is unknown."""
        if not self.unknown:
            return ""
        return "strict decoding error: " + ", ".join(self.warnings())


def handled_as_message(kind: str, version: str, type_error: str) -> str:
    """The BadRequest message kube-apiserver gives for a body it cannot decode."""
    return f'{kind} in version "{version}" cannot be handled as a {kind}: {type_error}'


def _json_kind(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object"


def _go_type(node: Node, owner: str, name: str) -> str:
    if isinstance(node, Struct):
        return _go_struct_name(node.name)
    if isinstance(node, ListOf):
        return "[]" + _go_type(node.item, owner, name)
    if isinstance(node, MapOf):
        return "map[string]" + _go_type(node.value, owner, name)
    t = node.type
    if t == INTEGER:
        return go_integer_type(owner, name)
    if t == NUMBER:
        return "float64"
    if t == BOOLEAN:
        return "bool"
    if t == DATETIME:
        return "v1.Time"
    if t == INT_OR_STRING:
        return "intstr.IntOrString"
    if t == QUANTITY:
        return "resource.Quantity"
    return "string"


def _go_struct_name(name: str) -> str:
    if "." in name:
        return name
    m = re.match(r"^[A-Z][a-z]+(V\d+)(.*)$", name)
    return f"{m.group(1).lower()}.{m.group(2)}" if m else name


class _Walker:
    __slots__ = ("path_names", "result")

    def __init__(self) -> None:
        self.result = FieldCheck()
        self.path_names: list[str] = []

    def type_error(self, value: Any, node: Node, owner: Struct | None, name: str,
                   detail: str = "", go_type: str = "") -> None:
        if self.result.type_error is not None:
            return
        shown = _json_kind(value)
        if shown == "number" and detail:
            shown = f"number {detail}"
        go_type = go_type or _go_type(node, owner.name if owner else "", name)
        if owner is None:
            self.result.type_error = (
                f"json: cannot unmarshal {shown} into Go value of type {go_type}")
            return
        struct = _go_struct_name(owner.name).rpartition(".")[2]
        path = ".".join(self.path_names)
        self.result.type_error = (
            f"json: cannot unmarshal {shown} into Go struct field {struct}.{path} of type {go_type}"
        )

    def integer(self, value: Any, node: Node, owner: Struct | None, name: str,
                go_type: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            detail = _number_text(value) if isinstance(value, float) else ""
            self.type_error(value, node, owner, name, detail, go_type)
            return
        limit = _INT64_LIMIT if go_type == "int64" else _INT32_LIMIT
        if not -limit <= value < limit:
            self.type_error(value, node, owner, name, str(value), go_type)

    def scalar(self, node: Scalar, value: Any, owner: Struct | None, name: str) -> None:
        t = node.type
        if t == STRING:
            if not isinstance(value, str):
                self.type_error(value, node, owner, name)
        elif t == INTEGER:
            self.integer(value, node, owner, name, go_integer_type(owner.name if owner else "",
                                                                   name))
        elif t == NUMBER:
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.type_error(value, node, owner, name)
        elif t == BOOLEAN:
            if not isinstance(value, bool):
                self.type_error(value, node, owner, name)
        elif t == DATETIME:
            # metav1.Time decodes a JSON string, then parses it.
            if not isinstance(value, str):
                self.type_error(value, node, owner, name, go_type="string")
        elif t == INT_OR_STRING:
            # IntOrString decodes a JSON string as-is and anything else as an int32.
            if not isinstance(value, str):
                self.integer(value, node, owner, name, "int32")
        elif t == QUANTITY:
            ok = (isinstance(value, int | float) and not isinstance(value, bool)) or (
                isinstance(value, str) and _QUANTITY_RE.match(value.strip()) is not None)
            if not ok and self.result.type_error is None:
                self.result.type_error = QUANTITY_FORMAT_ERROR

    def walk(self, node: Node, value: Any, path: str, owner: Struct | None, name: str) -> None:
        if value is None:
            return
        if isinstance(node, Struct):
            if not isinstance(value, dict):
                self.type_error(value, node, owner, name)
                return
            fields = node.fields
            for key, child in value.items():
                fi = fields.get(key)
                child_path = f"{path}.{key}" if path else key
                if fi is None:
                    self.result.unknown.append(child_path)
                    continue
                self.path_names.append(key)
                self.walk(fi.node, child, child_path, node, key)
                self.path_names.pop()
        elif isinstance(node, ListOf):
            if not isinstance(value, list):
                self.type_error(value, node, owner, name)
                return
            item = node.item
            if isinstance(item, Scalar) and item.type == ANY:
                return
            for i, child in enumerate(value):
                self.walk(item, child, f"{path}[{i}]", owner, name)
        elif isinstance(node, MapOf):
            if not isinstance(value, dict):
                self.type_error(value, node, owner, name)
                return
            inner = node.value
            if isinstance(inner, Scalar) and inner.type == ANY:
                return
            for key, child in value.items():
                self.walk(inner, child, f"{path}[{key}]", owner, name)
        elif node.type != ANY:
            self.scalar(node, value, owner, name)


def _number_text(value: float) -> str:
    text = repr(value)
    return text[:-2] if text.endswith(".0") and "e" not in text else text


def check_fields(root: Struct, obj: Any) -> FieldCheck:
    """Check a decoded body against its kind's schema.

    ``unknown`` lists unknown field paths in document order
    (``spec.containers[0].imagePullPolcy``); ``type_error`` is the first
    value of the wrong JSON type, worded as Go's decoder words it. Both
    ``apiVersion`` and ``kind`` are known fields of every kind.
    """
    walker = _Walker()
    if not isinstance(obj, dict):
        walker.type_error(obj, root, None, "")
        return walker.result
    walker.walk(root, obj, "", None, "")
    return walker.result


def _prune(node: Node, value: Any) -> Any:
    if isinstance(node, Struct):
        if not isinstance(value, dict):
            return value
        fields = node.fields
        out: dict[str, Any] | None = None
        for key, child in value.items():
            fi = fields.get(key)
            if fi is None:
                if out is None:
                    out = {k: v for k, v in value.items() if k in fields}
                continue
            pruned = _prune(fi.node, child)
            if pruned is not child:
                if out is None:
                    out = {k: v for k, v in value.items() if k in fields}
                out[key] = pruned
        return value if out is None else out
    if isinstance(node, ListOf):
        if not isinstance(value, list) or isinstance(node.item, Scalar):
            return value
        items = [_prune(node.item, v) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(node, MapOf):
        if not isinstance(value, dict) or isinstance(node.value, Scalar):
            return value
        entries = {k: _prune(node.value, v) for k, v in value.items()}
        return value if all(entries[k] is v for k, v in value.items()) else entries
    return value


def prune_unknown(root: Struct, obj: Any) -> Any:
    """``obj`` without the fields its schema does not have (what Go decoding keeps).

    Unchanged subtrees are shared with the input, which is not modified; when
    nothing is unknown the input itself is returned.
    """
    return _prune(root, obj)
