"""Objects and lists out of the registry into the representation the client asked for.

Stored objects already are JSON in the storage version; when the request's
version is the storage version their bytes go out untouched, lists are the
stored bytes joined. Tables and PartialObjectMetadata are built per request.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from kubeling.api import conversion
from kubeling.api.kinds import Kind, api_version
from kubeling.apiserver import codec
from kubeling.apiserver.codec import Want
from kubeling.registry.cache import Cached

Obj = dict[str, Any]


def _now() -> datetime:
    return datetime.now(UTC)


def in_version(kind: Kind, c: Cached, version: str) -> Obj:
    if version == kind.stored_version and not kind.storage_of:
        return c.obj
    return conversion.from_storage(kind, c.obj, version)


def object_json(kind: Kind, c: Cached, version: str) -> bytes:
    if version == kind.stored_version and not kind.storage_of:
        return c.json()
    return orjson.dumps(conversion.from_storage(kind, c.obj, version))


def partial(obj: Obj, meta_version: str = "v1") -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{meta_version}",
            "metadata": obj.get("metadata") or {}}


def table(kind: Kind, objs: Iterable[Obj], *, include_object: str, resource_version: str = "",
          continue_token: str = "", remaining: int | None = None, columns: bool = True,
          table_version: str = "v1") -> Obj:
    from kubeling.apiserver.tables import make_table

    t = make_table(kind, list(objs), include_object=include_object or "Metadata",
                   resource_version=resource_version, continue_token=continue_token,
                   remaining=remaining, now=_now(), columns=columns)
    if table_version != "v1":
        t["apiVersion"] = f"meta.k8s.io/{table_version}"
    return t


def render_object(kind: Kind, c: Cached, version: str, want: Want,
                  include_object: str = "") -> tuple[bytes, str]:
    if want.shape == "Table":
        return codec.encode(table(kind, [in_version(kind, c, version)],
                                  include_object=include_object,
                                  resource_version=c.obj["metadata"].get("resourceVersion", ""),
                                  table_version=want.table_version), want)
    if want.shape == "PartialObjectMetadata":
        return codec.encode(partial(c.obj, want.table_version), want)
    return codec.from_json_bytes(object_json(kind, c, version), want)


def render_list(kind: Kind, items: list[Cached], version: str, want: Want, *, revision: int,
                continue_token: str = "", remaining: int | None = None,
                include_object: str = "") -> tuple[bytes, str]:
    rv = str(revision)
    if want.shape == "Table":
        return codec.encode(table(kind, (in_version(kind, c, version) for c in items),
                                  include_object=include_object, resource_version=rv,
                                  continue_token=continue_token, remaining=remaining,
                                  table_version=want.table_version), want)
    meta: Obj = {"resourceVersion": rv}
    if continue_token:
        meta["continue"] = continue_token
    if remaining is not None and continue_token:
        meta["remainingItemCount"] = remaining
    if want.shape == "PartialObjectMetadata":
        lst = {"kind": "PartialObjectMetadataList",
               "apiVersion": f"meta.k8s.io/{want.table_version}", "metadata": meta,
               "items": [partial(c.obj, want.table_version) for c in items]}
        return codec.encode(lst, want)
    head = orjson.dumps({"kind": kind.list_kind, "apiVersion": api_version(kind.group, version),
                         "metadata": meta})
    body = head[:-1] + b',"items":[' + b",".join(object_json(kind, c, version)
                                                    for c in items) + b"]}"
    return codec.from_json_bytes(body, want)


def success_status(kind: Kind, c: Cached) -> Obj:
    meta = c.obj.get("metadata") or {}
    details: Obj = {"name": meta.get("name", ""), "kind": kind.resource,
                    "uid": meta.get("uid", "")}
    if kind.group:
        details["group"] = kind.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": details}
