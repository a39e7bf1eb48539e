"""The storage contract every backend honours, and the helpers built only on it.

The API server keeps all durable state behind :class:`Store`: a key/value space
with one global, monotonic revision (every successful write makes exactly one
new revision, which becomes the object's ``resourceVersion``), compare-and-swap
writes, lists at a past revision, watches from a past revision and compaction.
The shape follows etcd v3 as Kubernetes uses it, so an etcd backend and the
embedded SQLite backend are interchangeable and one conformance suite holds both.

Values are opaque bytes (the object's JSON without ``resourceVersion``). Errors
are plain exceptions; the API layer maps them to ``Status`` responses
(409 for :class:`KeyExistsError` and :class:`RevisionMismatchError`, 404 for
:class:`KeyNotFoundError`, 410 for :class:`CompactedError`, 504/"too large
resource version" for :class:`FutureRevisionError`).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One live key: its value, the revision that created it and the last one that changed it."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Event:
    """One change. ``revision`` is the revision the change made.

    ADDED: ``prev_value`` is None. MODIFIED: ``prev_value`` is the value it replaced.
    DELETED: ``value`` is None and ``prev_value`` is the last value; ``create_revision``
    is the create revision of the object that was deleted.
    """

    type: EventType
    key: str
    value: bytes | None
    prev_value: bytes | None
    revision: int
    create_revision: int


@dataclass(frozen=True, slots=True)
class ListResult:
    """A page of a list: ``revision`` is the revision the page was read at (reuse it for the
    next page); ``more`` says the page was truncated and ``remaining`` how many matching keys
    follow it."""

    kvs: list[KeyValue]
    revision: int
    more: bool
    remaining: int


class StorageError(Exception):
    """Base of every storage error; on its own it means the backend failed (retry later)."""


class KeyExistsError(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key exists: {key}")
        self.key = key


class KeyNotFoundError(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class RevisionMismatchError(StorageError):
    """A compare-and-swap lost: ``current`` is the key's value now (retry from it)."""

    def __init__(self, key: str, current: KeyValue) -> None:
        super().__init__(
            f"revision mismatch for {key}: current mod revision is {current.mod_revision}"
        )
        self.key = key
        self.current = current


class CompactedError(StorageError):
    """The requested revision is older than the compacted revision (HTTP 410 Gone)."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(
            f"required revision {requested} has been compacted (compacted revision {compacted})"
        )
        self.requested = requested
        self.compacted = compacted


class FutureRevisionError(StorageError):
    """The requested revision is newer than the current revision."""

    def __init__(self, requested: int, current: int) -> None:
        super().__init__(
            f"required revision {requested} is a future revision (current revision {current})"
        )
        self.requested = requested
        self.current = current


class Store(Protocol):
    """A revisioned key/value store. A store is used from one event loop.

    Keys are strings such as ``/registry/core/pods/ns/name``; prefixes select key ranges by
    plain string prefix; key order is byte order of the UTF-8 encoding.
    """

    async def create(self, key: str, value: bytes) -> KeyValue:
        """Create ``key``; raise :class:`KeyExistsError` if it exists."""
        ...

    async def get(self, key: str) -> KeyValue | None:
        """The current value of ``key``, or None."""
        ...

    async def list(
        self, prefix: str, *, revision: int = 0, limit: int = 0, start_key: str = ""
    ) -> ListResult:
        """Keys under ``prefix`` as of ``revision`` (0 = current), in byte order, from
        ``start_key`` on (inclusive), at most ``limit`` of them (0 = all).

        Raises :class:`CompactedError` if ``revision`` is older than the compacted revision
        and :class:`FutureRevisionError` if it is newer than the current revision.
        """
        ...

    async def update(self, key: str, value: bytes, *, expected_mod_revision: int) -> KeyValue:
        """Replace the value if the key's mod revision is ``expected_mod_revision``.

        Raises :class:`KeyNotFoundError`, or :class:`RevisionMismatchError` carrying the
        current value.
        """
        ...

    async def delete(
        self, key: str, *, expected_mod_revision: int | None = None
    ) -> tuple[KeyValue, int]:
        """Delete ``key`` (only at ``expected_mod_revision`` if given); return its last value
        and the revision of the delete. Raises :class:`KeyNotFoundError` or
        :class:`RevisionMismatchError`."""
        ...

    def watch(self, prefix: str, revision: int) -> AsyncIterator[Event]:
        """Every event under ``prefix`` with a revision greater than ``revision``, each exactly
        once and in revision order, then live events until closed (``aclose()``).

        ``revision`` 0 means "from the current revision when watch() is called". The first
        iteration raises :class:`CompactedError` if ``revision`` is older than the compacted
        revision. The iterator ends when the store closes.
        """
        ...

    async def current_revision(self) -> int:
        """The revision of the last acknowledged write. An empty store is at revision 1, as
        etcd is, so that revision 0 never names a real state and always means "current"."""
        ...

    async def compacted_revision(self) -> int:
        """The oldest revision lists and watches can still start from."""
        ...

    async def compact(self, revision: int) -> None:
        """Forget history older than ``revision``: the state at ``revision`` and every event
        after it stay readable. A revision at or below the compacted one is a no-op; one
        above the current revision raises :class:`FutureRevisionError`."""
        ...

    async def close(self) -> None:
        """Finish pending writes, end watches and release the backend."""
        ...


TryUpdate = Callable[[KeyValue | None], Awaitable[bytes | None]]


async def guaranteed_update(
    store: Store,
    key: str,
    try_update: TryUpdate,
    *,
    create_if_missing: bool = False,
    max_attempts: int = 1000,
) -> KeyValue | None:
    """Read-modify-write ``key`` until the compare-and-swap wins.

    ``try_update`` gets the current value (None if the key is missing, which only happens
    with ``create_if_missing``) and returns the new bytes, or None to write nothing. On a
    conflict it is called again with the fresh value; an exception from it aborts. Returns
    the written value; when nothing is written (None, or identical bytes) the current value
    is returned unchanged. Raises :class:`KeyNotFoundError` if the key is missing and
    ``create_if_missing`` is false, and :class:`StorageError` after ``max_attempts`` lost
    races.
    """
    current = await store.get(key)
    for _ in range(max_attempts):
        if current is None and not create_if_missing:
            raise KeyNotFoundError(key)
        new = await try_update(current)
        if new is None:
            return current
        if current is None:
            try:
                return await store.create(key, new)
            except KeyExistsError:
                current = await store.get(key)
                continue
        if new == current.value:
            return current
        try:
            return await store.update(key, new, expected_mod_revision=current.mod_revision)
        except RevisionMismatchError as err:
            current = err.current
        except KeyNotFoundError:
            current = None
    raise StorageError(f"gave up updating {key} after {max_attempts} conflicting attempts")


StoreFactory = Callable[[str], Store]

# Backends by URL scheme: a factory, or "module:function" imported on first use so that a
# backend's dependencies load only when it is chosen.
_BACKENDS: dict[str, StoreFactory | str] = {
    "sqlite": "kubeling.storage.sqlite:open_sqlite",
    "etcd": "kubeling.storage.etcd:open_etcd",
}


def register_backend(scheme: str, factory: StoreFactory | str) -> None:
    """Make ``open_store`` open URLs with ``scheme`` through ``factory``."""
    _BACKENDS[scheme] = factory


def open_store(url: str) -> Store:
    """Open the store a URL names, e.g. ``sqlite:///var/lib/kubeling/state.db``."""
    scheme, sep, _ = url.partition("://")
    if not sep or scheme not in _BACKENDS:
        known = ", ".join(sorted(_BACKENDS))
        raise ValueError(f"unsupported storage URL {url!r} (schemes: {known})")
    entry = _BACKENDS[scheme]
    if isinstance(entry, str):
        module_name, _, attr = entry.partition(":")
        factory: StoreFactory = getattr(importlib.import_module(module_name), attr)
        _BACKENDS[scheme] = factory
    else:
        factory = entry
    return factory(url)
