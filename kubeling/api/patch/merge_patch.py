"""JSON merge patch (RFC 7386), applied the way kube-apiserver applies it.

``kubectl patch --type=merge`` and every client that sends
``application/merge-patch+json`` end up here, and so do custom resources,
which have no strategic merge patch. Kubernetes uses evanphx/json-patch,
whose merge differs from the RFC's pseudo-code in one visible way: nulls are
also pruned inside arrays of objects that are newly set. A ``null`` patch
document is refused with 400 rather than turning the object into ``null``.

The module also holds the two JSON helpers the other patch flavours share:
a deep copy of JSON-shaped data and JSON equality (where ``true`` is not
``1``, unlike Python's ``==``).
"""

from __future__ import annotations

from typing import Any

import orjson

from kubeling.api.errors import bad_request
from kubeling.api.jsoncopy import json_copy

INVALID_PATCH = "Invalid JSON Patch"


def deep_copy(value: Any) -> Any:
    """A copy of JSON-shaped data that shares no dict or list with ``value``."""
    return json_copy(value)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of two JSON values: booleans are never numbers, 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict):
        if not isinstance(b, dict) or a.keys() != b.keys():
            return False
        return all(json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return False
        return all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _pruned(value: Any) -> Any:
    """A copy of ``value`` without null members in any object, however deep."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _merge_into(doc: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
            continue
        current = doc.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            _merge_into(current, value)
        elif isinstance(current, dict):
            doc[key] = deep_copy(value)
        else:
            doc[key] = _pruned(value)


def apply_merge_patch(doc: Any, patch: Any) -> Any:
    """Apply a JSON merge patch to ``doc`` and return the result.

    ``patch`` is parsed JSON, or raw ``bytes`` to be parsed. Objects merge
    key by key, ``null`` deletes a key, anything else replaces. A patch that
    is not an object replaces the whole document. Neither input is mutated.
    Raises a 400 ``StatusError`` for a ``null`` or unparseable patch.
    """
    if isinstance(patch, bytes | bytearray | memoryview):
        try:
            patch = orjson.loads(patch)
        except orjson.JSONDecodeError:
            raise bad_request(INVALID_PATCH) from None
    if patch is None:
        raise bad_request(INVALID_PATCH)
    if not isinstance(patch, dict):
        return _pruned(patch) if not isinstance(doc, dict) else deep_copy(patch)
    if not isinstance(doc, dict):
        return _pruned(patch)
    result: dict[str, Any] = deep_copy(doc)
    _merge_into(result, patch)
    return result


def create_merge_patch(original: Any, modified: Any) -> Any:
    """The merge patch that turns ``original`` into ``modified``.

    Exact for documents without null values (a merge patch cannot set a
    member to null); this is what ``kubectl edit`` sends for custom resources.
    """
    if not isinstance(original, dict) or not isinstance(modified, dict):
        return deep_copy(modified)
    patch: dict[str, Any] = {k: None for k in original if k not in modified}
    for key, value in modified.items():
        if key not in original:
            patch[key] = deep_copy(value)
        elif json_equal(original[key], value):
            continue
        elif isinstance(original[key], dict) and isinstance(value, dict):
            patch[key] = create_merge_patch(original[key], value)
        else:
            patch[key] = deep_copy(value)
    return patch
