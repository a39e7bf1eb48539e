"""The structured merge of an applied configuration into a live object.

This is the merge server-side apply performs before it prunes and checks
ownership: maps and structs merged key by key, associative lists merged item
by item on their map keys, sets unioned, atomic lists, atomic structs and
scalars replaced by the configuration's value. Nothing is removed here except
fields the configuration sets to ``null``; removing what a manager stopped
applying is the pruning step's job.

Order follows Kubernetes: items only the live object has stay where they
were, items both have and new items follow the configuration's order.
"""

from __future__ import annotations

import copy
from typing import Any

from kubeling.api.apply.fieldset import Path, PathElement, field_pe, path_string
from kubeling.api.apply.typed import (
    LEAF,
    LIST,
    MISSING,
    child_node,
    index_items,
    kind_of,
)
from kubeling.api.schema import ListOf, Node


def merge(schema: Node, live: Any, config: Any) -> Any:
    """``live`` with ``config`` merged in; neither argument is changed."""
    return _merge(schema, live, config, ())


def _merge(node: Node | None, lhs: Any, rhs: Any, path: Path) -> Any:
    if rhs is MISSING:
        return lhs
    if lhs is MISSING:
        return copy.deepcopy(rhs)
    kind = kind_of(node, lhs, rhs)
    if kind == LEAF:
        return copy.deepcopy(rhs)
    if kind == LIST:
        assert isinstance(node, ListOf)
        return _merge_list(node, lhs, rhs, path)
    left = lhs if isinstance(lhs, dict) else {}
    right = rhs if isinstance(rhs, dict) else {}
    out: dict[str, Any] = {}
    for key, value in left.items():
        if key in right and right[key] is None:
            continue
        out[key] = _merge(
            child_node(node, key), value, right.get(key, MISSING), (*path, field_pe(key))
        )
    for key, value in right.items():
        if key not in left and value is not None:
            out[key] = copy.deepcopy(value)
    return out


def _merge_list(node: ListOf, lhs: Any, rhs: Any, path: Path) -> list[Any]:
    where = path_string(path)
    left = index_items(node, lhs, where)
    right = index_items(node, rhs, where)
    left_order = list(left)
    right_order = list(right)
    shared = [pe for pe in right_order if pe in left]
    next_shared: PathElement | None = shared.pop(0) if shared else None
    out: list[Any] = []

    def emit(pe: PathElement) -> None:
        out.append(
            _merge(node.item, left.get(pe, MISSING), right.get(pe, MISSING), (*path, pe))
        )

    li = ri = 0
    while li < len(left_order) or ri < len(right_order):
        if li < len(left_order) and ri < len(right_order):
            pe = left_order[li]
            if pe == right_order[ri]:
                emit(pe)
                li += 1
                ri += 1
                next_shared = shared.pop(0) if shared else None
                continue
            if pe in right and next_shared is not None and next_shared != pe:
                li += 1  # shared, but its turn comes later in the config's order
                continue
        if li < len(left_order) and left_order[li] not in right:
            emit(left_order[li])
            li += 1
            continue
        if ri < len(right_order):
            pe = right_order[ri]
            emit(pe)
            ri += 1
            if next_shared == pe:
                next_shared = shared.pop(0) if shared else None
            continue
        li += 1  # a shared item already written from the config's side
    return out
