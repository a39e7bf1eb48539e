"""Walking JSON objects along their schema: field sets, comparison, removal.

Server-side apply never looks at an object as plain JSON: whether a list is
replaced whole or merged item by item, and how an item is named in a path,
comes from the kind's schema (:mod:`kubeling.api.schema`). This module holds
the schema-aware walks every other part of apply builds on:

- :func:`fieldset_from_object`: the paths an object (or an applied
  configuration) sets, as Kubernetes computes them for ``fieldsV1``;
- :func:`compare`: which paths a write added, modified and removed;
- :func:`remove_items`: an object without some paths;
- :func:`ensure_named_fields`: a set where struct fields with owned
  descendants count as owned themselves (used when pruning).

A subtree the schema does not know is an atomic leaf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from kubeling.api.apply.fieldset import FieldSet, Path, PathElement, field_pe, key_pe, value_pe
from kubeling.api.jsoncopy import json_copy
from kubeling.api.schema import ListOf, MapOf, Node, Scalar, Struct

# Types Kubernetes marks ``+structType=atomic``: replaced whole, owned as one leaf.
ATOMIC_STRUCTS: Final = frozenset(
    {
        "v1.LabelSelector",
        "v1.NodeSelector",
        "v1.NodeSelectorTerm",
        "v1.TopologySelectorTerm",
        "v1.ObjectReference",
        "v1.LocalObjectReference",
        "v1.TypedLocalObjectReference",
        "v1.ConfigMapKeySelector",
        "v1.SecretKeySelector",
        "v1.ObjectFieldSelector",
        "v1.ResourceFieldSelector",
    }
)

# String maps Kubernetes marks ``+mapType=atomic``: a new map replaces the old.
ATOMIC_MAPS: Final = frozenset(
    {
        ("v1.PodSpec", "nodeSelector"),
        ("v1.ServiceSpec", "selector"),
        ("v1.ReplicationControllerSpec", "selector"),
    }
)

# List map keys that the OpenAPI gives a default, so an item may omit them.
_KEY_DEFAULTS: Final = {"protocol": "TCP"}

# Struct fields Go always serialises (value structs): an object read back from
# storage has them even when empty. Required fields are added from the schema.
_VALUE_STRUCTS: Final = frozenset(
    {
        ("v1.DeploymentSpec", "strategy"),
        ("v1.StatefulSetSpec", "updateStrategy"),
        ("v1.DaemonSetSpec", "updateStrategy"),
        ("v1.ReplicaSetSpec", "template"),
        ("v1.PodTemplateSpec", "metadata"),
        ("v1.PodTemplateSpec", "spec"),
        ("v1.JobTemplateSpec", "metadata"),
        ("v1.JobTemplateSpec", "spec"),
        ("v1.PodTemplate", "template"),
    }
)
_ROOT_VALUE_FIELDS: Final = ("metadata", "spec", "status")


class ShapeError(ValueError):
    """An object that does not fit its schema where apply needs it to."""


MISSING: Final[Any] = object()

LEAF, MAP, LIST = "leaf", "map", "list"


def is_atomic(node: Node | None) -> bool:
    if node is None or isinstance(node, Scalar):
        return True
    if isinstance(node, Struct):
        return node.atomic or node.name in ATOMIC_STRUCTS
    if isinstance(node, ListOf):
        return node.list_type not in ("set", "map")
    return False


def child_node(node: Node | None, key: str) -> Node | None:
    """The schema of a field or map value; ``None`` (an atomic leaf) when unknown or atomic."""
    if isinstance(node, Struct):
        if (node.name, key) in ATOMIC_MAPS:
            return None
        fi = node.fields.get(key)
        return fi.node if fi else None
    if isinstance(node, MapOf):
        return node.value
    return None


def node_for(node: Node | None, pe: PathElement) -> Node | None:
    if pe.startswith("f:"):
        return child_node(node, pe[2:])
    return node.item if isinstance(node, ListOf) else None


def is_named_field(node: Node | None, key: str) -> bool:
    return isinstance(node, Struct) and key in node.fields


def kind_of(node: Node | None, *values: Any, promote_empty: bool = True) -> str:
    """How a position is walked: as one leaf, as a map of fields, or as a list of items.

    When comparing or merging, a position empty or absent on every side is a
    leaf, which keeps the difference between empty and null visible.
    """
    if is_atomic(node):
        return LEAF
    present = [v for v in values if v is not MISSING and v is not None]
    if isinstance(node, ListOf):
        if not all(isinstance(v, list) for v in present):
            return LEAF
    elif not all(isinstance(v, dict) for v in present):
        return LEAF
    if promote_empty and not any(present):
        return LEAF
    return LIST if isinstance(node, ListOf) else MAP


def item_pe(lst: ListOf, item: Any) -> PathElement:
    if lst.list_type == "set":
        return value_pe(item)
    if not isinstance(item, dict):
        raise ShapeError("associative list item is not an object")
    keys: dict[str, Any] = {}
    for k in lst.map_keys:
        if k in item:
            keys[k] = item[k]
        elif k in _KEY_DEFAULTS:
            keys[k] = _KEY_DEFAULTS[k]
        else:
            raise ShapeError(
                f'associative list with keys has an element that omits key field "{k}" '
                "(and doesn't have default value)"
            )
    return key_pe(keys)


def index_items(lst: ListOf, items: Any, where: str | Path = "") -> dict[PathElement, Any]:
    """Items of a mergeable list by path element, first occurrence wins, in order.

    ``where`` (a path, rendered only for an error) says where the list is."""
    out: dict[PathElement, Any] = {}
    if not isinstance(items, list):
        return out
    for i, item in enumerate(items):
        try:
            pe = item_pe(lst, item)
        except ShapeError as e:
            at = where if isinstance(where, str) else _where(where)
            raise ShapeError(f"{at}: element {i}: {e}") from None
        out.setdefault(pe, item)
    return out


def equal(a: Any, b: Any) -> bool:
    """JSON equality where true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(equal(v, b[k]) for k, v in a.items())
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(equal, a, b))
    return bool(a == b)


def _where(path: Path) -> str:
    from kubeling.api.apply.fieldset import path_string

    return path_string(path)


def fieldset_from_object(schema: Node, obj: Any) -> FieldSet:
    """Every leaf and list or map item ``obj`` sets, as Kubernetes owns them."""
    return _collect(schema, obj, ())


def _collect(node: Node | None, value: Any, path: Path) -> FieldSet:
    s = FieldSet()
    kind = kind_of(node, value, promote_empty=False)
    if kind == LEAF or value is None:
        return s
    if kind == LIST:
        assert isinstance(node, ListOf)
        for pe, item in index_items(node, value, path).items():
            s.members.add(pe)
            c = _collect(node.item, item, (*path, pe))
            if not c.empty():
                s.children[pe] = c
        return s
    for key, val in value.items():
        pe = field_pe(key)
        sub = child_node(node, key)
        c = _collect(sub, val, (*path, pe))
        if (
            val is None
            or val == {}
            or kind_of(sub, val, promote_empty=False) == LEAF
            or not is_named_field(node, key)
        ):
            s.members.add(pe)
        if not c.empty():
            s.children[pe] = c
    return s


def ensure_named_fields(node: Node | None, s: FieldSet) -> FieldSet:
    out = FieldSet()
    out.members = set(s.members)
    for pe, c in s.children.items():
        if pe.startswith("f:") and is_named_field(node, pe[2:]):
            out.members.add(pe)
        out.children[pe] = ensure_named_fields(node_for(node, pe), c)
    return out


def remove_items(node: Node | None, value: Any, s: FieldSet) -> Any:
    """A copy of ``value`` without the members of ``s`` (each with all it holds).

    A map or list emptied by the removal disappears from its parent.
    """
    kind = kind_of(node, value)
    if kind == LEAF or s.empty():
        return value
    if kind == LIST:
        assert isinstance(node, ListOf)
        items = []
        for item in value:
            pe = item_pe(node, item)
            if pe in s.members:
                continue
            c = s.children.get(pe)
            items.append(remove_items(node.item, item, c) if c else item)
        return items
    out = {}
    for key, val in value.items():
        pe = field_pe(key)
        if pe in s.members:
            continue
        c = s.children.get(pe)
        if c is None:
            out[key] = val
            continue
        new = remove_items(child_node(node, key), val, c)
        if new is None or (isinstance(new, dict | list) and not new):
            continue
        out[key] = new
    return out


@dataclass
class Comparison:
    added: FieldSet = field(default_factory=FieldSet)
    modified: FieldSet = field(default_factory=FieldSet)
    removed: FieldSet = field(default_factory=FieldSet)

    def changed(self) -> FieldSet:
        return self.added.union(self.modified)

    def same(self) -> bool:
        return self.added.empty() and self.modified.empty() and self.removed.empty()


def compare(schema: Node, old: Any, new: Any) -> Comparison:
    """The paths ``new`` added, modified and removed relative to ``old``."""
    c = Comparison()
    _compare(schema, old, new, (), c)
    return c


def _compare(node: Node | None, lhs: Any, rhs: Any, path: Path, c: Comparison) -> None:
    if lhs is MISSING and rhs is not MISSING and path:
        # A whole new subtree (every field of a create): build it in one walk.
        parent = c.added
        for pe in path[:-1]:
            child = parent.children.get(pe)
            if child is None:
                child = parent.children[pe] = FieldSet()
            parent = child
        _add_new(node, rhs, parent, path)
        return
    kind = kind_of(node, lhs, rhs)
    if kind == LEAF:
        if lhs is MISSING:
            c.added.insert(path)
        elif rhs is MISSING:
            c.removed.insert(path)
        elif not equal(lhs, rhs):
            c.modified.insert(path)
        return
    if kind == LIST:
        assert isinstance(node, ListOf)
        where = path
        left = index_items(node, lhs, where) if lhs is not MISSING else {}
        right = index_items(node, rhs, where) if rhs is not MISSING else {}
        for pe in left.keys() | right.keys():
            _compare(
                node.item, left.get(pe, MISSING), right.get(pe, MISSING), (*path, pe), c
            )
    else:
        left = lhs if isinstance(lhs, dict) else {}
        right = rhs if isinstance(rhs, dict) else {}
        for key in left.keys() | right.keys():
            _compare(
                child_node(node, key),
                left.get(key, MISSING),
                right.get(key, MISSING),
                (*path, field_pe(key)),
                c,
            )
    if path:
        if lhs is MISSING:
            c.added.insert(path)
        elif rhs is MISSING:
            c.removed.insert(path)


def _add_new(node: Node | None, value: Any, parent: FieldSet, path: Path) -> None:
    """Add ``path`` and every path below it in ``value`` to ``parent`` (the set at the
    path's parent): what :func:`_compare` finds when the old side lacks the subtree."""
    pe = path[-1]
    kind = kind_of(node, MISSING, value)
    if kind != LEAF:
        sub = parent.children.get(pe) or FieldSet()
        if kind == LIST:
            assert isinstance(node, ListOf)
            for ipe, item in index_items(node, value, path).items():
                _add_new(node.item, item, sub, (*path, ipe))
        else:
            for key, v in value.items():
                _add_new(child_node(node, key), v, sub, (*path, field_pe(key)))
        if not sub.empty():
            parent.children[pe] = sub
    parent.members.add(pe)


def with_zero_fields(schema: Struct, obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` shaped as Go would write it back: value structs present.

    Kubernetes compares objects after a round trip through Go types, where
    ``spec``, ``status`` or a required list are present (empty or null) even
    when unset. Comparing in that shape gives the same ownership as Kubernetes
    (no ``"."`` entry for ``spec``, one for ``labels`` when they are new).
    """
    out = json_copy(obj)
    for name in _ROOT_VALUE_FIELDS:
        fi = schema.fields.get(name)
        if fi is not None and isinstance(fi.node, Struct) and out.get(name) is None:
            out[name] = {}
    _fill(schema, out)
    return out


# Per struct, only the fields _fill acts on: (name, node, when missing: "{}" | "null" | "",
# recurse into a present dict).
_FillPlan = list[tuple[str, Node, str, bool]]
_FILL_PLANS: dict[int, _FillPlan] = {}


def _fill_plan(node: Struct) -> _FillPlan:
    plan = _FILL_PLANS.get(id(node))
    if plan is None:
        plan = []
        for name, fi in node.fields.items():
            sub = fi.node
            walkable = isinstance(sub, Struct) and not is_atomic(sub)
            if walkable and (name in node.required or (node.name, name) in _VALUE_STRUCTS):
                missing = "{}"
            elif name in node.required and isinstance(sub, ListOf | MapOf | Struct):
                missing = "null"
            else:
                missing = ""
            if missing or walkable:
                plan.append((name, sub, missing, walkable))
        _FILL_PLANS[id(node)] = plan
    return plan


def _fill(node: Struct, obj: dict[str, Any]) -> None:
    for name, sub, missing, walkable in _fill_plan(node):
        value = obj.get(name, MISSING)
        if value is MISSING:
            if missing == "{}":
                value = obj[name] = {}
            elif missing == "null":
                obj[name] = None
                continue
        if walkable and isinstance(value, dict):
            assert isinstance(sub, Struct)
            _fill(sub, value)
