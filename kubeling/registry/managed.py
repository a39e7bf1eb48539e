"""Where the registry meets field checking and field ownership.

Unknown fields are refused, warned about or dropped (``fieldValidation``
Strict/Warn/Ignore) before anything else happens to an object, and every
write records which manager owns which fields (``metadata.managedFields``),
so that server-side apply can tell a conflict from a change of mind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubeling.api import errors, schema
from kubeling.api.kinds import Kind

if TYPE_CHECKING:
    from kubeling.registry.registry import WriteOptions

Obj = dict[str, Any]


def check_fields(kind: Kind, version: str, obj: Obj, opts: WriteOptions) -> Obj:
    """Apply the request's fieldValidation mode to ``obj`` (in ``version``)."""
    from kubeling.api import fieldcheck

    root = schema.kind_schema(kind.group, version, kind.kind)
    result = fieldcheck.check_fields(root, obj)
    if result.type_error:
        raise errors.bad_request(
            fieldcheck.handled_as_message(kind.kind, version, result.type_error))
    if not result.unknown:
        return obj
    mode = opts.field_validation or "Warn"
    if mode == "Strict":
        raise errors.bad_request(result.strict_message())
    if mode == "Warn":
        opts.warnings.extend(result.warnings())
    pruned: Obj = fieldcheck.prune_unknown(root, obj)
    return pruned


def _manager(opts: WriteOptions) -> str:
    from kubeling.api import apply

    return opts.field_manager or apply.default_manager(opts.user_agent)


def _ignored(kind: Kind, subresource: str) -> list[tuple[str, ...]]:
    """Fields an endpoint resets, which its writers therefore never own."""
    from kubeling.registry.strategy import strategy_for

    if not strategy_for(kind).status_subresource:
        return []
    if subresource == "status":
        return [("f:spec",)]
    return [("f:status",)] if subresource == "" else []


def on_create(kind: Kind, obj: Obj, opts: WriteOptions, now: str) -> None:
    from kubeling.api import apply

    if opts.field_manager == "__apply__":
        return
    apply.track_update(None, obj, manager=_manager(opts),
                       schema=schema.kind_schema(kind.group, kind.stored_version, kind.kind),
                       api_version=obj["apiVersion"], now=now, ignored=_ignored(kind, ""))


def on_update(kind: Kind, old: Obj, new: Obj, opts: WriteOptions, now: str, *,
              subresource: str = "") -> None:
    from kubeling.api import apply

    if opts.field_manager == "__apply__":
        return
    if "managedFields" not in new["metadata"] and "managedFields" in old["metadata"]:
        new["metadata"]["managedFields"] = old["metadata"]["managedFields"]
    apply.track_update(old, new, manager=_manager(opts),
                       schema=schema.kind_schema(kind.group, kind.stored_version, kind.kind),
                       api_version=new["apiVersion"], subresource=subresource, now=now,
                       ignored=_ignored(kind, subresource))
