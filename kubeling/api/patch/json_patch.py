"""JSON patch (RFC 6902), with the answers kube-apiserver gives when it fails.

``kubectl patch --type=json`` and controllers that want a conditional write
(a ``test`` operation before a change) send ``application/json-patch+json``.
The operations are applied by the ``jsonpatch`` library; what this module
adds is Kubernetes' behaviour around it:

- a body that is not a list of operation objects is a 400 BadRequest worded
  as Go's JSON decoder words it;
- more than 10000 operations is a 413;
- an operation that does not apply (a missing path, a failed ``test``, an
  unknown ``op``) is a 422 Invalid whose message does not say which one:
  "the server rejected our request due to an error in our request";
- ``test`` compares as JSON does (``true`` is not ``1``), and testing a
  missing member of an existing object for ``null`` succeeds.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import jsonpatch
import orjson
from jsonpointer import JsonPointerException

from kubeling.api.errors import StatusError, bad_request, too_large
from kubeling.api.patch.merge_patch import deep_copy, json_equal

MAX_OPERATIONS = 10000
REJECTED = "the server rejected our request due to an error in our request"


def _go_json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


class _StrictTest(jsonpatch.TestOperation):
    def apply(self, obj: Any) -> Any:
        try:
            parent, part = self.pointer.to_last(obj)
            if part is None:
                actual = parent
            elif isinstance(parent, dict):
                actual = parent.get(part)
            else:
                actual = self.pointer.walk(parent, part)
        except (JsonPointerException, TypeError) as exc:
            raise jsonpatch.JsonPatchTestFailed(str(exc)) from exc
        expected = self.operation.get("value")
        if not json_equal(actual, expected):
            raise jsonpatch.JsonPatchTestFailed(f"testing value {self.location} failed")
        return obj


class _KubePatch(jsonpatch.JsonPatch):
    operations = MappingProxyType({**jsonpatch.JsonPatch.operations, "test": _StrictTest})


def rejected() -> StatusError:
    """The 422 kube-apiserver answers for a patch that does not apply."""
    return StatusError(422, "Invalid", REJECTED)


def _decode(patch_body: Any) -> list[Any]:
    if isinstance(patch_body, bytes | bytearray | memoryview):
        try:
            patch_body = orjson.loads(patch_body)
        except orjson.JSONDecodeError as exc:
            raise bad_request(f"invalid JSON: {exc}") from None
    if patch_body is None:
        return []
    if not isinstance(patch_body, list):
        raise bad_request(
            f"json: cannot unmarshal {_go_json_kind(patch_body)} "
            "into Go value of type jsonpatch.Patch"
        )
    for op in patch_body:
        if op is not None and not isinstance(op, dict):
            raise bad_request(
                f"json: cannot unmarshal {_go_json_kind(op)} "
                "into Go value of type jsonpatch.Operation"
            )
    return patch_body


def apply_json_patch(doc: Any, patch_body: Any) -> Any:
    """Apply a JSON patch (parsed JSON, or raw ``bytes``) to ``doc``.

    Returns the patched document; neither input is mutated. Raises
    ``StatusError`` 400 for a body that is not a JSON patch, 413 for too many
    operations and 422 for an operation that does not apply.
    """
    ops = _decode(patch_body)
    if len(ops) > MAX_OPERATIONS:
        raise too_large(
            f"The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {len(ops)}"
        )
    if not ops:
        return deep_copy(doc)
    if any(op is None for op in ops):
        raise rejected()
    try:
        return _KubePatch(deep_copy(ops)).apply(deep_copy(doc), in_place=True)
    except (jsonpatch.JsonPatchException, JsonPointerException) as exc:
        raise rejected() from exc
    except (TypeError, KeyError, IndexError, ValueError, AttributeError) as exc:
        raise rejected() from exc
