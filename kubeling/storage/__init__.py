"""Durable state of the cluster: the Store contract and its backends, chosen by URL.

``open_store("sqlite:///var/lib/kubeling/state.db")`` opens the embedded backend; every
backend implements :class:`Store` from :mod:`kubeling.storage.interface`.
"""

from kubeling.storage.interface import (
    CompactedError,
    Event,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    RevisionMismatchError,
    StorageError,
    Store,
    guaranteed_update,
    open_store,
    register_backend,
)

__all__ = [
    "CompactedError",
    "Event",
    "EventType",
    "FutureRevisionError",
    "KeyExistsError",
    "KeyNotFoundError",
    "KeyValue",
    "ListResult",
    "RevisionMismatchError",
    "StorageError",
    "Store",
    "guaranteed_update",
    "open_store",
    "register_backend",
]
