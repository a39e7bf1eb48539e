"""The client contract every component programs against.

Two implementations keep it: :mod:`kubeling.client.inprocess` (calls into the
registry of the all-in-one server; same admission, validation and
concurrency, no HTTP) and :mod:`kubeling.client.http` (HTTPS to any API
server). The scheduler, controllers, node agent and proxy take a ``Client``
and never know which one they have.

Rules of the contract:

- Objects are plain JSON dicts in the kind's *storage* version
  (``kind.stored_version``), so both clients see the same shapes.
- Objects a client returns, and objects held in informer caches, are shared
  and read-only: copy (:func:`kubeling.api.jsoncopy.json_copy`) before editing.
- Every API failure is a :class:`kubeling.api.errors.StatusError` carrying the
  server's code and reason (404 NotFound, 409 Conflict/AlreadyExists, 410
  Expired, 422 Invalid...). Writes are conditional on the
  ``metadata.resourceVersion`` they carry, as the API makes them.
- ``watch`` yields events until the server ends the stream (then the
  iterator just stops) and raises ``StatusError`` (410) when the requested
  revision is compacted away; informers relist then.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal, NamedTuple, Protocol

from kubeling.api.kinds import Kind

Obj = dict[str, Any]
PatchType = Literal["json", "merge", "strategic", "apply"]
EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]


class WatchEvent(NamedTuple):
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK
    object: Obj


class ListResult(NamedTuple):
    items: list[Obj]
    resource_version: str
    continue_: str = ""


class Client(Protocol):
    """The API's verbs. ``namespace`` is None for cluster-scoped kinds (and for "all
    namespaces" in list and watch)."""

    async def get(self, kind: Kind, namespace: str | None, name: str) -> Obj: ...

    async def list(self, kind: Kind, namespace: str | None = None, *,
                   label_selector: str = "", field_selector: str = "",
                   limit: int = 0, continue_: str = "",
                   resource_version: str = "") -> ListResult: ...

    def watch(self, kind: Kind, namespace: str | None = None, *,
              resource_version: str = "", label_selector: str = "",
              field_selector: str = "", allow_bookmarks: bool = True,
              timeout_seconds: int = 0) -> AsyncIterator[WatchEvent]: ...

    async def create(self, kind: Kind, namespace: str | None, obj: Obj) -> Obj: ...

    async def update(self, kind: Kind, obj: Obj, *, subresource: str = "") -> Obj:
        """Replace the object (or its ``status``/``finalize`` subresource); conditional on
        ``obj.metadata.resourceVersion`` when it is set."""
        ...

    async def patch(self, kind: Kind, namespace: str | None, name: str, patch: Any, *,
                    patch_type: PatchType = "merge", subresource: str = "",
                    field_manager: str = "", force: bool = False) -> Obj: ...

    async def delete(self, kind: Kind, namespace: str | None, name: str, *,
                     options: Obj | None = None) -> Obj:
        """Delete with DeleteOptions (``propagationPolicy``, ``preconditions``,
        ``gracePeriodSeconds``); returns the object as the API last had it."""
        ...

    async def bind(self, namespace: str, name: str, node: str, *, uid: str = "") -> None:
        """``POST pods/{name}/binding``: assign a pending pod to a node."""
        ...


    async def close(self) -> None: ...
