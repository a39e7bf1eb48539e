"""The three PATCH flavours of the Kubernetes API, as pure functions over JSON data.

- :func:`apply_json_patch` for ``application/json-patch+json`` (RFC 6902);
- :func:`apply_merge_patch` for ``application/merge-patch+json`` (RFC 7386);
- :func:`apply_strategic_merge_patch` for
  ``application/strategic-merge-patch+json``, driven by the kind's schema.

Each returns a new document and raises :class:`kubeling.api.errors.StatusError`
with the code and message kube-apiserver answers for a patch it refuses.
"""

from kubeling.api.patch.json_patch import MAX_OPERATIONS, apply_json_patch
from kubeling.api.patch.merge_patch import (
    apply_merge_patch,
    create_merge_patch,
    deep_copy,
    json_equal,
)
from kubeling.api.patch.strategic import apply_strategic_merge_patch

__all__ = [
    "MAX_OPERATIONS",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
    "create_merge_patch",
    "deep_copy",
    "json_equal",
]
