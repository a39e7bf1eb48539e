"""Defaulting of every served kind, applied in place before validation.

Kind modules register a function per (group, kind) with :func:`defaulter`;
:func:`apply_defaults` runs it on an object in its storage version, as the
API server's decoder does on every create and update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeling.api.kinds import Kind

Obj = dict[str, Any]
DefaultFn = Callable[[Obj], None]

_DEFAULTERS: dict[tuple[str, str], DefaultFn] = {}


def defaulter(group: str, kind: str) -> Callable[[DefaultFn], DefaultFn]:
    def register(fn: DefaultFn) -> DefaultFn:
        _DEFAULTERS[(group, kind)] = fn
        return fn

    return register


def apply_defaults(kind: Kind, obj: Obj) -> None:
    fn = _DEFAULTERS.get((kind.group, kind.kind))
    if fn is not None:
        fn(obj)


def _load() -> None:
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_load()
