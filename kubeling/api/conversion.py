"""Conversion between the versions a kind is served in and the one it is stored in.

A kind served in one version needs nothing. HorizontalPodAutoscaler is stored
as autoscaling/v2 and served as v1 too; its converters are registered here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeling.api.kinds import Kind, api_version

Obj = dict[str, Any]
Converter = Callable[[Obj], Obj]

# (group, kind, from_version, to_version) -> converter
_CONVERTERS: dict[tuple[str, str, str, str], Converter] = {}


def converter(group: str, kind: str, src: str, dst: str) -> Callable[[Converter], Converter]:
    def register(fn: Converter) -> Converter:
        _CONVERTERS[(group, kind, src, dst)] = fn
        return fn

    return register


def convert(kind: Kind, obj: Obj, src: str, dst: str) -> Obj:
    """Return ``obj`` (in version ``src``) in version ``dst``; the input is not changed."""
    if src == dst:
        return obj
    fn = _CONVERTERS.get((kind.group, kind.kind, src, dst))
    if fn is None:
        out = dict(obj)
    else:
        out = fn(obj)
    out["apiVersion"] = api_version(kind.group, dst)
    return out


def to_storage(kind: Kind, obj: Obj, version: str) -> Obj:
    if kind.storage_of:
        from kubeling.api.event_conversion import events_to_core

        return events_to_core(obj)
    return convert(kind, obj, version, kind.stored_version)


def from_storage(kind: Kind, obj: Obj, version: str) -> Obj:
    if kind.storage_of:
        from kubeling.api.event_conversion import core_to_events

        return core_to_events(obj)
    return convert(kind, obj, kind.stored_version, version)


from kubeling.api import hpa_conversion  # noqa: E402,F401  (registers its converters)
