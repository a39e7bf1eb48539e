"""Strategic merge patch, applied the way kube-apiserver applies it.

``kubectl apply``, ``kubectl edit`` and ``kubectl patch`` (its default type)
send ``application/strategic-merge-patch+json``: a merge patch that knows,
from the type's schema, which lists merge item by item (containers by
``name``, ports by ``containerPort``, ...) instead of being replaced, plus
directives: ``$patch`` (replace / delete a map or a list item),
``$retainKeys``, ``$setElementOrder/<list>`` and
``$deleteFromPrimitiveList/<list>``.

The algorithm follows k8s.io/apimachinery's strategicpatch package, including
its ordering rules (the ``$setElementOrder`` list first, then the patch's
order, then the live object's) and its failure answers: 400 for a malformed
directive, 422 for lists of lists, and 500 with the bare message for the
rest (an unknown ``$patch`` value, a list item without its merge key).

Where the schema has no node for a path (custom resources, free-form
fields) maps still merge and directives still apply, but lists are replaced,
as JSON merge patch does. Values taken whole from the patch lose their null
members and directives; Kubernetes drops those when it decodes the result
into the typed object, and we have no such decoding step to do it for us.
"""

from __future__ import annotations

from typing import Any

from kubeling.api.errors import StatusError, bad_request
from kubeling.api.patch.json_patch import rejected
from kubeling.api.patch.merge_patch import deep_copy
from kubeling.api.schema import ListOf, MapOf, Node, Struct

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
DELETE_PREFIX = "$deleteFromPrimitiveList"
ORDER_PREFIX = "$setElementOrder"

_BAD_FORMAT = {
    DELETE_PREFIX: "invalid patch format of primitive list",
    ORDER_PREFIX: "invalid patch format of setElementOrder list",
    RETAIN_KEYS: "invalid patch format of retainKeys",
}


def go_format(value: Any) -> str:
    """``value`` as Go's ``%v`` prints decoded JSON (maps with sorted keys)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def _go_type(value: Any) -> str:
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    return "%!s(<nil>)"


def server_error(message: str) -> StatusError:
    """A plain Go error reaching the HTTP edge: 500 with no reason."""
    return StatusError(500, "", message)


def _bad_type(expected: str, actual: Any) -> StatusError:
    return server_error(f"expected a {expected}, but received a {_go_type(actual)}")


def _no_merge_key(item: Any, key: str) -> StatusError:
    return server_error(f"map: {go_format(item)} does not contain declared merge key: {key}")


def _hkey(value: Any) -> tuple[str, Any]:
    """A hashable stand-in for a JSON scalar, equal where Go's ``==`` is."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("z", None)
    return ("j", go_format(value))


def _clean(value: Any) -> tuple[Any, bool]:
    """``value`` without nulls and directives; False when it is itself a directive."""
    if isinstance(value, dict):
        if DIRECTIVE in value:
            return None, False
        out: dict[str, Any] = {}
        for k, v in value.items():
            if v is None or k == RETAIN_KEYS or k.startswith((ORDER_PREFIX, DELETE_PREFIX)):
                continue
            cleaned, keep = _clean(v)
            if keep:
                out[k] = cleaned
        return out, True
    if isinstance(value, list):
        items = (_clean(v) for v in value)
        return [v for v, keep in items if keep], True
    return value, True


def _field(schema: Node | None, key: str) -> Node | None:
    if isinstance(schema, Struct):
        info = schema.fields.get(key)
        return info.node if info else None
    if isinstance(schema, MapOf):
        return schema.value
    return None


def _list_meta(node: Node | None) -> tuple[bool, str, Node | None]:
    """(merges, merge key, item schema) of a list field."""
    if not isinstance(node, ListOf):
        return False, "", None
    return "merge" in node.patch_strategy.split(","), node.merge_key, node.item


def _extract_key(key: str, prefix: str) -> str:
    head, sep, rest = key.partition("/")
    if not sep or head != prefix:
        raise bad_request(_BAD_FORMAT[prefix])
    return rest


def apply_strategic_merge_patch(
    original: dict[str, Any], patch: dict[str, Any], schema: Struct | None
) -> dict[str, Any]:
    """Apply a strategic merge patch to ``original`` using the kind's ``schema``.

    ``schema`` is the root from ``kind_schema(group, version, kind)``, or None
    to merge without list knowledge. Neither input is mutated. Raises
    ``StatusError`` (400, 422 or 500) as kube-apiserver answers a bad patch.
    """
    if patch is None:
        patch = {}
    if not isinstance(patch, dict):
        kind = "array" if isinstance(patch, list) else "value"
        raise bad_request(
            f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
        )
    base = deep_copy(original) if isinstance(original, dict) else {}
    return _merge_map(base, deep_copy(patch), schema)


def _merge_map(
    original: dict[str, Any], patch: dict[str, Any], schema: Node | None
) -> dict[str, Any]:
    """Merge ``patch`` into ``original`` (both private copies, changed in place)."""
    if DIRECTIVE in patch:
        directive = patch[DIRECTIVE]
        if directive == "replace":
            del patch[DIRECTIVE]
            return _clean(patch)[0]
        if directive == "delete":
            return {}
        raise server_error(f"unknown patch type: {go_format(directive)} in map: {go_format(patch)}")
    _apply_retain_keys(original, patch)
    _merge_ordered_lists(original, patch, schema)
    deletions: list[tuple[str, Any]] = []
    for key, value in patch.items():
        if key.startswith(DELETE_PREFIX):
            deletions.append((_extract_key(key, DELETE_PREFIX), value))
        else:
            _merge_field(original, key, value, schema, deleting=False)
    for key, value in deletions:
        _merge_field(original, key, value, schema, deleting=True)
    return original


def _merge_field(
    original: dict[str, Any], key: str, value: Any, schema: Node | None, *, deleting: bool
) -> None:
    if value is None:
        original.pop(key, None)
        return
    current: Any = original.get(key)
    same_shape = (isinstance(current, dict) and isinstance(value, dict)) or (
        isinstance(current, list) and isinstance(value, list)
    )
    if key not in original or not same_shape:
        if deleting:
            return
        cleaned, keep = _clean(value)
        if keep:
            original[key] = cleaned
        else:
            original.pop(key, None)
        return
    node = _field(schema, key)
    if isinstance(current, dict):
        sub = node if isinstance(node, Struct | MapOf) else None
        original[key] = _merge_map(current, value, sub)
    else:
        original[key] = _merge_list(current, value, node, deleting=deleting)


def _merge_list(current: list[Any], value: list[Any], node: Node | None, *, deleting: bool) -> Any:
    merges, merge_key, item = _list_meta(node)
    if not merges:
        return _clean(value)[0]
    return _merge_slice(current, value, merge_key, item, deleting=deleting)


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if RETAIN_KEYS not in patch:
        return
    keys = patch.pop(RETAIN_KEYS)
    if not isinstance(keys, list):
        raise bad_request(_BAD_FORMAT[RETAIN_KEYS])
    allowed = {_hkey(k) for k in keys}
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_PREFIX, ORDER_PREFIX)):
            continue
        if ("s", key) not in allowed:
            raise bad_request(_BAD_FORMAT[RETAIN_KEYS])
    for key in [k for k in original if ("s", k) not in allowed]:
        del original[key]


def _merge_ordered_lists(
    original: dict[str, Any], patch: dict[str, Any], schema: Node | None
) -> None:
    """Merge each list named by a ``$setElementOrder/<list>`` and put it in that order."""
    for directive in [k for k in patch if k.startswith(ORDER_PREFIX)]:
        order = patch.pop(directive)
        if not isinstance(order, list):
            raise _bad_type("[]interface {}", order)
        key = _extract_key(directive, ORDER_PREFIX)
        in_original, in_patch = key in original, key in patch
        current, value = original.get(key, []), patch.get(key, [])
        if not isinstance(current, list):
            raise _bad_type("[]interface {}", current)
        if not isinstance(value, list):
            raise _bad_type("[]interface {}", value)
        node = _field(schema, key)
        _, merge_key, _ = _list_meta(node)
        _check_order(value, order, merge_key)
        if in_original and in_patch:
            merged = _merge_list(current, value, node, deleting=False)
        elif in_patch:
            merged = _clean(value)[0]
        elif in_original:
            merged = current
        else:
            continue
        if not merged:
            original[key] = merged
            patch.pop(key, None)
            continue
        if merge_key:
            ordered, server_only = _partition_maps(merged, order, merge_key)
        else:
            ordered, server_only = _partition_scalars(merged, order)
        is_map = _element_is_map(current, value)
        original[key] = _normalize(ordered, server_only, order, current, merge_key, is_map)
        patch.pop(key, None)


def _check_order(value: list[Any], order: list[Any], merge_key: str) -> None:
    """Every item of the patch list must appear, in the same order, in the order list."""
    if not order or not value:
        return
    items = value
    if merge_key:
        for v in value:
            if not isinstance(v, dict):
                raise _bad_type("map[string]interface {}", v)
        items = [v for v in value if v.get(DIRECTIVE) != "delete"]
    i = j = 0
    while i < len(items) and j < len(order):
        if isinstance(items[i], dict) and DIRECTIVE in items[i]:
            i += 1
            continue
        if _same_key(items[i], order[j], merge_key):
            i += 1
        j += 1
    if i < len(items) and j >= len(order):
        raise server_error(
            f"the order in patch list:\n{go_format(value)}\n doesn't match "
            f"{ORDER_PREFIX} list:\n{go_format(order)}"
        )


def _same_key(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return _hkey(left) == _hkey(right)
    for side in (left, right):
        if not isinstance(side, dict):
            raise _bad_type("map[string]interface {}", side)
        if merge_key not in side:
            raise _no_merge_key(side, merge_key)
    return _hkey(left[merge_key]) == _hkey(right[merge_key])


def _element_is_map(*lists: list[Any]) -> bool:
    """Whether the items are maps; every item must have the same JSON type."""
    first: Any = None
    seen = False
    for items in lists:
        for v in items:
            if not seen:
                if isinstance(v, list):
                    raise rejected()
                first, seen = v, True
            elif _go_type(v) != _go_type(first):
                raise server_error(
                    f"list element types are not identical: {go_format(list(lists))}"
                )
    return isinstance(first, dict)


def _merge_slice(
    original: list[Any], patch: list[Any], merge_key: str, item: Node | None, *, deleting: bool
) -> list[Any]:
    if not original and not patch:
        return original
    is_map = _element_is_map(original, patch)
    if not is_map:
        if deleting:
            gone = {_hkey(v) for v in patch}
            return [v for v in original if _hkey(v) not in gone]
        merged = _dedupe(original + patch)
    else:
        if not merge_key:
            raise server_error("cannot merge lists without merge key for type map")
        original, patch = _special_items(original, patch, merge_key)
        merged = _merge_items(original, patch, merge_key, item)
    if merge_key:
        in_patch, server_only = _partition_maps(merged, patch, merge_key)
    else:
        in_patch, server_only = _partition_scalars(merged, patch)
    return _normalize(in_patch, server_only, patch, original, merge_key, is_map)


def _dedupe(items: list[Any]) -> list[Any]:
    seen: set[tuple[str, Any]] = set()
    out = []
    for v in items:
        k = _hkey(v)
        if k not in seen:
            seen.add(k)
            out.append(v)
    return out


def _special_items(
    original: list[Any], patch: list[Any], merge_key: str
) -> tuple[list[Any], list[Any]]:
    """Apply ``$patch`` list items: delete by merge key, or replace the whole list."""
    plain: list[Any] = []
    replace = False
    for v in patch:
        if DIRECTIVE not in v:
            plain.append(v)
            continue
        directive = v[DIRECTIVE]
        if directive == "delete":
            if merge_key not in v:
                raise _no_merge_key(v, merge_key)
            doomed = _hkey(v[merge_key])
            original = [o for o in original if not _matches(o, merge_key, doomed)]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise server_error("merging lists cannot yet be specified in the patch")
        else:
            raise server_error(f"unknown patch type: {go_format(directive)} in map: {go_format(v)}")
    if replace:
        return _clean(plain)[0], []
    return original, plain


def _matches(item: Any, merge_key: str, wanted: tuple[str, Any]) -> bool:
    if not isinstance(item, dict):
        raise server_error("value for key 0 is not a map.")
    return merge_key in item and _hkey(item[merge_key]) == wanted


def _find(items: list[Any], merge_key: str, value: Any) -> int:
    wanted = _hkey(value)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise server_error(f"value for key {i} is not a map.")
        if merge_key in item and _hkey(item[merge_key]) == wanted:
            return i
    return -1


def _merge_items(
    original: list[Any], patch: list[Any], merge_key: str, item: Node | None
) -> list[Any]:
    merged = list(original)
    for v in patch:
        if merge_key not in v:
            raise _no_merge_key(v, merge_key)
        at = _find(merged, merge_key, v[merge_key])
        if at >= 0:
            merged[at] = _merge_map(merged[at], v, item)
        else:
            merged.append(_clean(v)[0])
    return merged


def _partition_scalars(items: list[Any], by: list[Any]) -> tuple[list[Any], list[Any]]:
    wanted = {_hkey(v) for v in by}
    inside = [v for v in items if _hkey(v) in wanted]
    return inside, [v for v in items if _hkey(v) not in wanted]


def _partition_maps(items: list[Any], by: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    inside: list[Any] = []
    outside: list[Any] = []
    for v in items:
        if not isinstance(v, dict):
            raise _bad_type("map[string]interface {}", v)
        if merge_key not in v:
            raise _no_merge_key(v, merge_key)
        (inside if _find(by, merge_key, v[merge_key]) >= 0 else outside).append(v)
    return inside, outside


def _order_key(v: Any, merge_key: str, is_map: bool) -> tuple[str, Any]:
    if is_map:
        return _hkey(v.get(merge_key) if isinstance(v, dict) else None)
    return _hkey(v)


def _positions(order: list[Any], merge_key: str, is_map: bool) -> dict[tuple[str, Any], int]:
    pos: dict[tuple[str, Any], int] = {}
    for i, v in enumerate(order):
        pos.setdefault(_order_key(v, merge_key, is_map), i)
    return pos


def _sort_by(items: list[Any], order: list[Any], merge_key: str, is_map: bool) -> list[Any]:
    """Stable-sort ``items`` by their place in ``order``; ``$patch: delete`` items go last."""
    deleted: list[Any] = []
    if is_map:
        for v in [*items, *order]:
            if not isinstance(v, dict):
                raise _bad_type("map[string]interface {}", v)
            if merge_key not in v:
                raise _no_merge_key(v, merge_key)
        deleted = [v for v in items if v.get(DIRECTIVE) == "delete"]
        items = [v for v in items if v.get(DIRECTIVE) != "delete"]
    pos = _positions(order, merge_key, is_map)
    idx = [pos.get(_order_key(v, merge_key, is_map), -1) for v in items]
    if all(i >= 0 for i in idx):
        ranked = sorted(range(len(items)), key=lambda n: idx[n])
        return [items[n] for n in ranked] + deleted
    # Go's comparator treats an unplaced item as smaller than anything; an
    # insertion sort reproduces where that leaves it.
    pairs = list(zip(idx, items, strict=True))
    for i in range(1, len(pairs)):
        j = i
        while j > 0 and (pairs[j][0] < 0 or pairs[j - 1][0] < 0 or pairs[j][0] < pairs[j - 1][0]):
            pairs[j], pairs[j - 1] = pairs[j - 1], pairs[j]
            j -= 1
    return [v for _, v in pairs] + deleted


def _normalize(
    in_patch: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str,
    is_map: bool,
) -> list[Any]:
    """Interleave patch items (in patch order) with server-only items (in live order)."""
    right = _sort_by(in_patch, patch_order, merge_key, is_map)
    left = _sort_by(server_only, server_order, merge_key, is_map)
    pos = _positions(server_order, merge_key, is_map)
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            out.append(left[i])
            i += 1
        elif i >= len(left):
            out.append(right[j])
            j += 1
        else:
            li = pos.get(_order_key(left[i], merge_key, is_map), -1)
            ri = pos.get(_order_key(right[j], merge_key, is_map), -1)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out
