"""``metadata.managedFields``: reading, writing and keeping the entries tidy.

Each entry records what one manager owns: its name, whether it got there by
``Apply`` or by ``Update`` (create, update, patch), the API version and
subresource it used, when it last changed something, and the owned paths in
FieldsV1. Kubernetes identifies an entry by manager, operation, subresource
and -- for updates only -- API version, so an applier keeps one entry across
versions while each version an updater writes gets its own. This module turns
the list into those entries and back (sorted as Kubernetes sorts them), caps
the number of update entries, decides which entries an incoming write starts
from, and derives a manager name from a User-Agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from kubeling.api.apply.fieldset import (
    FieldSet,
    field_pe,
    from_fields_v1,
    to_fields_v1,
)

APPLY: Final = "Apply"
UPDATE: Final = "Update"
FIELDS_V1: Final = "FieldsV1"
MAX_UPDATE_MANAGERS: Final = 10
ANCIENT_CHANGES: Final = "ancient-changes"
BEFORE_FIRST_APPLY: Final = "before-first-apply"
MANAGER_MAX_LENGTH: Final = 128

# Paths no manager ever owns: identity and bookkeeping the server keeps.
STRIPPED: Final = FieldSet.of(
    [
        (field_pe("apiVersion"),),
        (field_pe("kind"),),
        (field_pe("metadata"),),
        *(
            (field_pe("metadata"), field_pe(name))
            for name in (
                "name",
                "namespace",
                "creationTimestamp",
                "selfLink",
                "uid",
                "clusterName",
                "generation",
                "managedFields",
                "resourceVersion",
            )
        ),
    ]
)

Identity = tuple[str, str, str, str]  # manager, operation, apiVersion (updates only), subresource


@dataclass
class Entry:
    manager: str
    operation: str
    api_version: str
    fields: FieldSet
    time: str | None = None
    subresource: str = ""

    @property
    def identity(self) -> Identity:
        version = self.api_version if self.operation == UPDATE else ""
        return (self.manager, self.operation, version, self.subresource)

    def describe(self) -> str:
        """The manager as conflict messages name it."""
        text = f'"{self.manager}"'
        if self.subresource:
            text += f' with subresource "{self.subresource}"'
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text


Managers = dict[Identity, Entry]


def decode(raw: Any) -> Managers:
    """Entries from a ``managedFields`` list; raises ValueError if it is malformed."""
    out: Managers = {}
    if raw is None:
        return out
    if not isinstance(raw, list):
        raise ValueError("managedFields must be a list")
    for item in raw:
        if not isinstance(item, dict):
            raise ValueError("managedFields entries must be objects")
        fields_type = item.get("fieldsType")
        if fields_type != FIELDS_V1:
            raise ValueError(f'invalid fieldsType "{fields_type}"')
        operation = item.get("operation")
        if operation not in (APPLY, UPDATE):
            raise ValueError(f'invalid operation "{operation}"')
        entry = Entry(
            manager=str(item.get("manager") or ""),
            operation=operation,
            api_version=str(item.get("apiVersion") or ""),
            fields=from_fields_v1(item.get("fieldsV1") or {}),
            time=item.get("time"),
            subresource=str(item.get("subresource") or ""),
        )
        if entry.identity in out:
            raise ValueError(f"duplicate manager entry {entry.describe()}")
        out[entry.identity] = entry
    return out


def decode_or_empty(raw: Any) -> Managers:
    try:
        return decode(raw)
    except ValueError:
        return {}


def encode(managers: Managers) -> list[dict[str, Any]]:
    """The ``managedFields`` list, sorted by operation, time, manager, version, subresource."""

    def order(e: Entry) -> tuple[str, str, str, str, str]:
        return (e.operation, e.time or "", e.manager, e.api_version, e.subresource)

    out = []
    for e in sorted(managers.values(), key=order):
        if e.fields.empty():
            continue
        item: dict[str, Any] = {
            "manager": e.manager,
            "operation": e.operation,
            "apiVersion": e.api_version,
        }
        if e.time is not None:
            item["time"] = e.time
        item["fieldsType"] = FIELDS_V1
        item["fieldsV1"] = to_fields_v1(e.fields)
        if e.subresource:
            item["subresource"] = e.subresource
        out.append(item)
    return out


def store(obj: dict[str, Any], managers: Managers) -> None:
    """Write ``managers`` into ``obj``'s metadata (absent when there are none)."""
    meta = obj.setdefault("metadata", {})
    encoded = encode(managers)
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)


def cap_update_managers(managers: Managers, limit: int = MAX_UPDATE_MANAGERS) -> None:
    """Fold the oldest update entries into ``ancient-changes`` until ``limit`` remain."""
    updaters = [e for e in managers.values() if e.operation == UPDATE]
    if len(updaters) <= limit:
        return
    updaters.sort(key=lambda e: (e.time or "", e.manager))
    count = len(updaters)
    for e in updaters:
        if count <= limit:
            break
        bucket_id: Identity = (ANCIENT_CHANGES, UPDATE, e.api_version, "")
        if e.identity == bucket_id:
            continue
        del managers[e.identity]
        bucket = managers.get(bucket_id)
        if bucket is None:
            managers[bucket_id] = Entry(ANCIENT_CHANGES, UPDATE, e.api_version, e.fields, e.time)
            continue
        bucket.fields = bucket.fields.union(e.fields)
        if e.time and (bucket.time is None or e.time > bucket.time):
            bucket.time = e.time
        count -= 1


def is_reset(raw: Any) -> bool:
    """Whether a sent ``managedFields`` asks to clear them: ``[]`` or ``[{}]``."""
    return isinstance(raw, list) and (raw == [] or raw == [{}])


def reconcile_sent_managed_fields(
    live: dict[str, Any] | None, new: dict[str, Any], *, subresource: str = ""
) -> Managers:
    """The entries a non-apply write starts from, as Kubernetes chooses them.

    A write to a subresource cannot change ownership records: the live
    object's entries stand. Otherwise entries the client sent are honoured
    (``[]`` or ``[{}]`` clears them all); when it sent none, or sent ones that
    do not decode, the live object's entries are kept so that clients unaware
    of managedFields cannot drop them by accident.
    """
    live_raw = ((live or {}).get("metadata") or {}).get("managedFields")
    if subresource:
        return decode_or_empty(live_raw)
    sent = (new.get("metadata") or {}).get("managedFields")
    if is_reset(sent):
        return {}
    try:
        managers = decode(sent)
    except ValueError:
        managers = {}
    if not managers:
        return decode_or_empty(live_raw)
    return managers


def default_manager(user_agent: str) -> str:
    """The manager name for a write without ``fieldManager``: the User-Agent's product.

    ``kubectl/v1.32.0 (linux/amd64) kubernetes/abc`` gives ``kubectl``;
    unprintable characters are dropped and the name stops at 128 bytes.
    """
    out: list[str] = []
    size = 0
    for ch in user_agent.split("/", 1)[0]:
        if not ch.isprintable():
            continue
        n = len(ch.encode("utf-8"))
        if size + n > MANAGER_MAX_LENGTH:
            break
        out.append(ch)
        size += n
    return "".join(out)
