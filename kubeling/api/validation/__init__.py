"""Validation of every served kind: object meta for all, then the kind's own rules.

Kind modules register their functions with :func:`on_create` and
:func:`on_update`; the registry calls :func:`validate_create` and
:func:`validate_update` with objects in their *storage* version, after
defaulting. Each returns causes (see :mod:`kubeling.api.field`); an empty
list means valid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeling.api.errors import Cause
from kubeling.api.kinds import Kind

Obj = dict[str, Any]
CreateFn = Callable[[Obj], list[Cause]]
UpdateFn = Callable[[Obj, Obj], list[Cause]]

_CREATE: dict[tuple[str, str], CreateFn] = {}
_UPDATE: dict[tuple[str, str], UpdateFn] = {}
_STATUS: dict[tuple[str, str], UpdateFn] = {}


def on_create(group: str, kind: str) -> Callable[[CreateFn], CreateFn]:
    def register(fn: CreateFn) -> CreateFn:
        _CREATE[(group, kind)] = fn
        return fn

    return register


def on_update(group: str, kind: str) -> Callable[[UpdateFn], UpdateFn]:
    def register(fn: UpdateFn) -> UpdateFn:
        _UPDATE[(group, kind)] = fn
        return fn

    return register


def on_status_update(group: str, kind: str) -> Callable[[UpdateFn], UpdateFn]:
    def register(fn: UpdateFn) -> UpdateFn:
        _STATUS[(group, kind)] = fn
        return fn

    return register


def validate_create(kind: Kind, obj: Obj) -> list[Cause]:
    from kubeling.api.validation import meta

    causes = meta.validate_object_meta(obj.get("metadata") or {}, kind)
    fn = _CREATE.get((kind.group, kind.kind))
    if fn is not None:
        causes.extend(fn(obj))
    return causes


def validate_update(kind: Kind, new: Obj, old: Obj) -> list[Cause]:
    from kubeling.api.validation import meta

    causes = meta.validate_object_meta_update(new.get("metadata") or {},
                                              old.get("metadata") or {}, kind)
    fn = _UPDATE.get((kind.group, kind.kind))
    if fn is not None:
        causes.extend(fn(new, old))
    else:
        create = _CREATE.get((kind.group, kind.kind))
        if create is not None:
            causes.extend(create(new))
    return causes


def validate_status_update(kind: Kind, new: Obj, old: Obj) -> list[Cause]:
    from kubeling.api.validation import meta

    causes = meta.validate_object_meta_update(new.get("metadata") or {},
                                              old.get("metadata") or {}, kind)
    fn = _STATUS.get((kind.group, kind.kind))
    if fn is not None:
        causes.extend(fn(new, old))
    return causes


def _load() -> None:
    # Kind modules register themselves on import.
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if info.name != "meta":
            importlib.import_module(f"{__name__}.{info.name}")


_load()
