"""Sets of field paths: who owns what, in the FieldsV1 form Kubernetes stores.

Server-side apply reasons about objects as sets of paths ("this manager owns
``.spec.replicas`` and the container named nginx"). A path is a tuple of path
elements, each spelled exactly as it appears as a key in
``metadata.managedFields[].fieldsV1``: ``f:name`` for a field or map key,
``k:{"name":"nginx"}`` for an item of a list keyed by its map keys,
``v:"x"`` for an item of a set, ``i:0`` for an index. A :class:`FieldSet` is
a tree of those elements whose *members* are the owned paths; a node can be
both a member and the parent of deeper members, which FieldsV1 writes with the
``"."`` key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

PathElement = str
Path = tuple[PathElement, ...]

_KIND_RANK = {"f": 0, "k": 1, "v": 2, "i": 3}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def field_pe(name: str) -> PathElement:
    return "f:" + name


def key_pe(keys: dict[str, Any]) -> PathElement:
    """An item of an associative list, named by its key fields (written sorted)."""
    return "k:" + _dumps(keys)


def value_pe(value: Any) -> PathElement:
    return "v:" + _dumps(value)


def index_pe(index: int) -> PathElement:
    return f"i:{index}"


def _order(pe: PathElement) -> tuple[int, str]:
    return (_KIND_RANK.get(pe[:1], 9), pe[2:])


def pe_string(pe: PathElement) -> str:
    """One element as Kubernetes prints it in messages: ``.name``, ``[name="x"]``, ``[="x"]``."""
    kind, rest = pe[:1], pe[2:]
    if kind == "f":
        return "." + rest
    if kind == "k":
        keys = json.loads(rest)
        return "[" + ",".join(f"{k}={_dumps(keys[k])}" for k in sorted(keys)) + "]"
    if kind == "v":
        return f"[={rest}]"
    return f"[{rest}]"


def path_string(path: Path) -> str:
    return "".join(pe_string(pe) for pe in path)


class FieldSet:
    """A set of paths stored as a tree; empty subtrees are never kept.

    The set operations share untouched subtrees with their operands: treat a set
    returned by one as a value (``without_prefixes`` copies before it edits)."""

    __slots__ = ("children", "members")

    def __init__(self) -> None:
        self.members: set[PathElement] = set()
        self.children: dict[PathElement, FieldSet] = {}

    @classmethod
    def of(cls, paths: Iterable[Path]) -> FieldSet:
        s = cls()
        for p in paths:
            s.insert(p)
        return s

    def empty(self) -> bool:
        return not self.members and not self.children

    def insert(self, path: Path) -> None:
        if not path:
            return
        node = self
        for pe in path[:-1]:
            child = node.children.get(pe)
            if child is None:
                child = node.children[pe] = FieldSet()
            node = child
        node.members.add(path[-1])

    def has(self, path: Path) -> bool:
        node: FieldSet | None = self
        for pe in path[:-1]:
            node = node.children.get(pe) if node else None
        return bool(path) and node is not None and path[-1] in node.members

    def child(self, pe: PathElement) -> FieldSet:
        """The paths below ``pe`` (an empty set when there are none)."""
        return self.children.get(pe) or FieldSet()

    def copy(self) -> FieldSet:
        s = FieldSet()
        s.members = set(self.members)
        s.children = {pe: c.copy() for pe, c in self.children.items()}
        return s

    def union(self, other: FieldSet) -> FieldSet:
        s = FieldSet()
        s.members = self.members | other.members
        for pe in self.children.keys() | other.children.keys():
            a, b = self.children.get(pe), other.children.get(pe)
            s.children[pe] = a.union(b) if a and b else (a or b or FieldSet())
        return s

    def intersection(self, other: FieldSet) -> FieldSet:
        s = FieldSet()
        s.members = self.members & other.members
        for pe in self.children.keys() & other.children.keys():
            c = self.children[pe].intersection(other.children[pe])
            if not c.empty():
                s.children[pe] = c
        return s

    def difference(self, other: FieldSet) -> FieldSet:
        """Paths of ``self`` not in ``other``; a member of ``other`` hides no deeper path."""
        s = FieldSet()
        s.members = self.members - other.members
        for pe, c in self.children.items():
            o = other.children.get(pe)
            d = c.difference(o) if o else c
            if not d.empty():
                s.children[pe] = d
        return s

    def without_prefixes(self, prefixes: Iterable[Path]) -> FieldSet:
        """Drop every path equal to or below one of ``prefixes``."""
        s = self.copy()
        for prefix in prefixes:
            if not prefix:
                return FieldSet()
            node: FieldSet | None = s
            for pe in prefix[:-1]:
                node = node.children.get(pe) if node else None
            if node is not None:
                node.members.discard(prefix[-1])
                node.children.pop(prefix[-1], None)
        s._prune_empty()
        return s

    def _prune_empty(self) -> None:
        for pe in list(self.children):
            c = self.children[pe]
            c._prune_empty()
            if c.empty():
                del self.children[pe]

    def paths(self, prefix: Path = ()) -> Iterator[Path]:
        """Every member, depth first, in Kubernetes' element order."""
        for pe in sorted(self.members | self.children.keys(), key=_order):
            if pe in self.members:
                yield (*prefix, pe)
            c = self.children.get(pe)
            if c is not None:
                yield from c.paths((*prefix, pe))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSet):
            return NotImplemented
        return self.members == other.members and self.children == other.children

    def __repr__(self) -> str:
        return f"FieldSet({[path_string(p) for p in self.paths()]})"


def to_fields_v1(s: FieldSet) -> dict[str, Any]:
    """The FieldsV1 JSON object of a set (``{"f:spec": {"f:replicas": {}}}``)."""
    out: dict[str, Any] = {}
    for pe in sorted(s.members | s.children.keys(), key=_order):
        c = s.children.get(pe)
        if c is None:
            out[pe] = {}
            continue
        inner = to_fields_v1(c)
        out[pe] = {".": {}, **inner} if pe in s.members else inner
    return out


def from_fields_v1(doc: dict[str, Any]) -> FieldSet:
    """Read a FieldsV1 object; raises ValueError on a malformed one."""
    s, _ = _read(doc)
    return s


def _read(doc: Any) -> tuple[FieldSet, bool]:
    if not isinstance(doc, dict):
        raise ValueError(f"expected an object in fieldsV1, got {type(doc).__name__}")
    s = FieldSet()
    self_member = False
    for key, value in doc.items():
        if key == ".":
            self_member = True
            continue
        if key[:2] not in ("f:", "k:", "v:", "i:"):
            raise ValueError(f"unknown path element {key!r} in fieldsV1")
        child, member = _read(value)
        if member or child.empty():
            s.members.add(key)
        if not child.empty():
            s.children[key] = child
    return s, self_member
