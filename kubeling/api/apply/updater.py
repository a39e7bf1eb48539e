"""Server-side apply and ownership tracking for every write.

Two entry points, called by the registry after it has the live object:

- :func:`apply_config` for ``PATCH`` with ``application/apply-patch+yaml``:
  merge the configuration into the live object, remove what this manager
  applied last time but no longer applies (unless someone else owns it),
  refuse with a 409 listing every field another manager owns and this apply
  would change (or, with force, take those fields over), and record the
  manager's new field set;
- :func:`track_update` for create, update and non-apply patches: the writer
  becomes the owner of everything it added or changed, and other managers
  lose those fields -- which is what later makes an apply conflict with
  ``kubectl scale`` or ``kubectl edit``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from kubeling.api.apply.fieldset import FieldSet, Path, path_string
from kubeling.api.apply.managed import (
    APPLY,
    BEFORE_FIRST_APPLY,
    STRIPPED,
    UPDATE,
    Entry,
    Identity,
    Managers,
    cap_update_managers,
    decode_or_empty,
    reconcile_sent_managed_fields,
    store,
)
from kubeling.api.apply.merge import merge
from kubeling.api.apply.typed import (
    Comparison,
    ShapeError,
    compare,
    ensure_named_fields,
    equal,
    fieldset_from_object,
    remove_items,
    with_zero_fields,
)
from kubeling.api.errors import Cause, StatusError, bad_request
from kubeling.api.jsoncopy import json_copy
from kubeling.api.schema import Struct

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def apply_config(
    live: dict[str, Any] | None,
    config: dict[str, Any],
    *,
    manager: str,
    force: bool,
    schema: Struct,
    api_version: str,
    now: str,
    subresource: str = "",
    ignored: Sequence[Path] = (),
) -> dict[str, Any]:
    """The object after ``manager`` applies ``config`` to ``live`` (``None``: a create).

    ``ignored`` are paths (e.g. ``(("f:status",),)`` on the main resource) this
    endpoint never gives ownership of. Raises a 409 ``Conflict`` StatusError
    when fields owned by others would change and ``force`` is false.
    """
    if (config.get("metadata") or {}).get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")
    obj = json_copy(live) if live is not None else {}
    meta = obj.get("metadata") or {}
    managers = decode_or_empty(meta.pop("managedFields", None))
    try:
        if live is not None and not managers:
            # An object nobody tracked yet: what it holds belongs to a placeholder
            # manager, so that the first apply does not silently take it all.
            _track(
                managers,
                compare(schema, with_zero_fields(schema, {}), with_zero_fields(schema, obj)),
                manager=BEFORE_FIRST_APPLY,
                api_version=api_version,
                subresource=subresource,
                now=now,
                ignored=ignored,
            )
        merged = merge(schema, obj, config)
        applied = fieldset_from_object(schema, config).without_prefixes(ignored)
        key: Identity = (manager, APPLY, "", subresource)
        last = managers.get(key)
        managers[key] = Entry(
            manager, APPLY, api_version, applied, last.time if last else None, subresource
        )
        if last is not None and not last.fields.empty():
            merged = _prune(schema, merged, managers, last.fields)
        changes = compare(
            schema, with_zero_fields(schema, obj), with_zero_fields(schema, merged)
        )
    except ShapeError as e:
        raise _typed_error(config, str(e)) from None
    _settle(managers, changes, workflow=key, force=force)
    entry = managers[key]
    entry.fields = entry.fields.difference(STRIPPED)
    if entry.fields.empty():
        del managers[key]
    elif live is None or not equal(obj, merged):
        entry.time = now
    cap_update_managers(managers)
    if manager == "kubectl":
        _sync_last_applied(merged, config)
    store(merged, managers)
    return merged


def track_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    *,
    manager: str,
    schema: Struct,
    api_version: str,
    subresource: str = "",
    now: str,
    ignored: Sequence[Path] = (),
) -> None:
    """Record in ``new``'s managedFields what ``manager`` changed (``old`` None: a create)."""
    managers = reconcile_sent_managed_fields(old, new, subresource=subresource)
    if old is not None and not managers:
        # Kubernetes stops tracking an object whose managedFields were cleared,
        # until the next apply.
        (new.get("metadata") or {}).pop("managedFields", None)
        return
    before = _without_managed_fields(old or {})
    after = _without_managed_fields(new)
    try:
        changes = compare(
            schema, with_zero_fields(schema, before), with_zero_fields(schema, after)
        )
    except ShapeError:
        (new.get("metadata") or {}).pop("managedFields", None)
        return
    _track(
        managers,
        changes,
        manager=manager,
        api_version=api_version,
        subresource=subresource,
        now=now,
        ignored=ignored,
    )
    cap_update_managers(managers)
    store(new, managers)


def _sync_last_applied(obj: dict[str, Any], config: dict[str, Any]) -> None:
    """Keep kubectl's client-side annotation, where it exists, in step with the apply."""
    annotations = (obj.get("metadata") or {}).get("annotations")
    if not isinstance(annotations, dict) or LAST_APPLIED not in annotations:
        return
    applied = copy.deepcopy(config)
    applied_annotations = (applied.get("metadata") or {}).get("annotations")
    if isinstance(applied_annotations, dict):
        applied_annotations.pop(LAST_APPLIED, None)
        if not applied_annotations:
            del applied["metadata"]["annotations"]
    annotations[LAST_APPLIED] = json.dumps(applied, separators=(",", ":"), sort_keys=True) + "\n"


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    if isinstance(out.get("metadata"), dict):
        out["metadata"] = {k: v for k, v in out["metadata"].items() if k != "managedFields"}
    return out


def _track(
    managers: Managers,
    changes: Comparison,
    *,
    manager: str,
    api_version: str,
    subresource: str,
    now: str,
    ignored: Sequence[Path],
) -> None:
    _settle(managers, changes, workflow=None, force=True)
    own = (
        changes.changed()
        .difference(changes.removed)
        .without_prefixes(ignored)
        .difference(STRIPPED)
    )
    if own.empty():
        return
    key: Identity = (manager, UPDATE, api_version, subresource)
    prev = managers.get(key)
    fields = own.union(prev.fields) if prev else own
    managers[key] = Entry(manager, UPDATE, api_version, fields, now, subresource)


def _settle(
    managers: Managers, changes: Comparison, *, workflow: Identity | None, force: bool
) -> None:
    """Take changed fields from every other manager, or refuse when not forced."""
    changed = changes.changed()
    conflicts: dict[Identity, FieldSet] = {}
    for ident, entry in managers.items():
        if ident == workflow:
            continue
        overlap = entry.fields.intersection(changed)
        if not overlap.empty():
            conflicts[ident] = overlap
    if conflicts and not force:
        raise conflict_error([(managers[i], s) for i, s in sorted(conflicts.items())])
    for ident in list(managers):
        if ident == workflow:
            continue
        entry = managers[ident]
        fields = entry.fields.difference(changes.removed)
        if ident in conflicts:
            fields = fields.difference(conflicts[ident])
        if fields.empty():
            del managers[ident]
        else:
            entry.fields = fields


def _prune(
    schema: Struct, merged: dict[str, Any], managers: Managers, last: FieldSet
) -> dict[str, Any]:
    """Remove what the applier owned last time and nobody owns now."""
    last_e = ensure_named_fields(schema, last)
    pruned = remove_items(schema, merged, last_e)
    owned = FieldSet()
    for entry in managers.values():
        owned = owned.union(entry.fields)
    merged_e = ensure_named_fields(schema, fieldset_from_object(schema, merged))
    pruned_e = ensure_named_fields(schema, fieldset_from_object(schema, pruned))
    keep = pruned_e.union(ensure_named_fields(schema, owned))
    pruned = remove_items(schema, merged, merged_e.difference(keep))
    # Only what this applier owned before may go; anything else removed above returns.
    pruned_e = ensure_named_fields(schema, fieldset_from_object(schema, pruned))
    result: dict[str, Any] = remove_items(
        schema, merged, merged_e.difference(pruned_e).intersection(last_e)
    )
    return result


def conflict_error(conflicts: list[tuple[Entry, FieldSet]]) -> StatusError:
    """409 Conflict worded as Kubernetes words apply conflicts."""
    causes: list[Cause] = []
    lines: list[str] = []
    total = 0
    for entry, fields in conflicts:
        who = entry.describe()
        paths = [path_string(p) for p in fields.paths()]
        total += len(paths)
        lines.append(f"conflicts with {who}:")
        for p in paths:
            causes.append(
                {"reason": "FieldManagerConflict", "message": f"conflict with {who}", "field": p}
            )
            lines.append(f"- {p}")
    if total == 1:
        c = causes[0]
        message = f"Apply failed with 1 conflict: {c['message']}: {c.get('field', '')}"
    else:
        message = f"Apply failed with {total} conflicts: " + "\n".join(lines)
    return StatusError(409, "Conflict", message, causes=causes)


def _typed_error(config: dict[str, Any], detail: str) -> StatusError:
    meta = config.get("metadata") or {}
    name = meta.get("name", "")
    ns = meta.get("namespace")
    ref = f"{ns}/{name}" if ns else name
    gvk = f"{config.get('apiVersion', '')}, Kind={config.get('kind', '')}"
    return StatusError(
        500, "InternalError", f"failed to create typed patch object ({ref}; {gvk}): {detail}"
    )
