"""Verbs built on :meth:`Registry.mutate`: patch and pod binding.

The HTTP handlers and the in-process client both call these, so a patch or a
binding means the same thing whichever way it arrives.
"""

from __future__ import annotations

import logging
from typing import Any

from kubeling.api import errors, kinds, schema
from kubeling.api import patch as patches
from kubeling.api.kinds import Kind
from kubeling.registry.cache import Cached
from kubeling.registry.registry import Registry, WriteOptions, now_rfc3339

log = logging.getLogger("kubeling.registry")

Obj = dict[str, Any]
JSON_PATCH = "json"
MERGE_PATCH = "merge"
STRATEGIC_PATCH = "strategic"


async def patch(registry: Registry, kind: Kind, namespace: str | None, name: str,
                patch_type: str, body: Any, opts: WriteOptions, *, subresource: str = "",
                version: str = "") -> Cached:
    """Apply a JSON, merge or strategic merge patch to the stored object."""
    version = version or kind.preferred_version
    root = schema.kind_schema(kind.group, version, kind.kind)

    def fn(current: Obj) -> Obj:
        if patch_type == JSON_PATCH:
            out = patches.apply_json_patch(current, body)
        elif patch_type == MERGE_PATCH:
            out = patches.apply_merge_patch(current, body)
        else:
            if not isinstance(body, dict):
                raise errors.bad_request("the patch must be a JSON object")
            out = patches.apply_strategic_merge_patch(current, body, root)
        if not isinstance(out, dict):
            raise errors.bad_request("the patched object is not a JSON object")
        return out

    c, _ = await registry.mutate(kind, namespace, name, fn, opts, subresource=subresource,
                                 version=version)
    return c


async def bind(registry: Registry, namespace: str, name: str, node: str,
               opts: WriteOptions, *, uid: str = "") -> None:
    """Set ``spec.nodeName`` and the PodScheduled condition, as ``pods/binding`` does."""
    if not node:
        raise errors.invalid("Binding", name, [{
            "reason": "FieldValueRequired", "message": "Required value",
            "field": "target.name"}])
    now = now_rfc3339()
    pods = kinds.by_resource("", "pods")
    assert pods is not None

    def fn(pod: Obj) -> Obj:
        spec = pod.setdefault("spec", {})
        if uid and pod["metadata"].get("uid") != uid:
            raise errors.conflict("pods", name, "", "the pod's UID does not match the binding")
        if pod["metadata"].get("deletionTimestamp"):
            raise errors.conflict("pods", name, "", "pod is being deleted, cannot be assigned "
                                  "to a host")
        if spec.get("nodeName"):
            raise errors.conflict("pods", name, "",
                                  f"pod {name} is already assigned to node "
                                  f"\"{spec['nodeName']}\"")
        spec["nodeName"] = node
        status = pod.setdefault("status", {})
        conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": now})
        status["conditions"] = conds
        return pod

    await registry.mutate(pods, namespace, name, fn, opts, subresource="binding")
    log.debug("bound pod %s/%s to %s", namespace, name, node)
