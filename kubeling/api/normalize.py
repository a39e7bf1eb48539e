"""Objects in the shape Kubernetes stores them: no nulls, no empty maps or lists.

Kubernetes decodes every body into Go structs and encodes it back, so a
``null`` field and an empty map or list (all ``omitempty``) disappear, while
an empty struct that was set (``securityContext: {}``) stays. Walking the
schema gives the same result without Go.
"""

from __future__ import annotations

from typing import Any

from kubeling.api.schema import ListOf, MapOf, Node, Scalar, Struct


def normalize(node: Node, value: Any) -> None:
    """Drop, in place, what a Go round trip would drop from ``value``."""
    if isinstance(node, Struct):
        if not isinstance(value, dict):
            return
        fields = node.fields
        drop = []
        for key, child in value.items():
            fi = fields.get(key)
            if fi is None:
                continue
            if child is None:
                if key != "creationTimestamp":
                    drop.append(key)
                continue
            sub = fi.node
            if isinstance(sub, MapOf | ListOf) and not child and isinstance(child, dict | list):
                drop.append(key)
                continue
            if not isinstance(sub, Scalar):
                normalize(sub, child)
        for key in drop:
            del value[key]
    elif isinstance(node, ListOf):
        if isinstance(value, list) and not isinstance(node.item, Scalar):
            for item in value:
                normalize(node.item, item)
    elif isinstance(node, MapOf):
        if isinstance(value, dict) and not isinstance(node.value, Scalar):
            for item in value.values():
                normalize(node.value, item)
