"""events.k8s.io/v1 Events are core/v1 Events stored once and shown two ways.

Kubernetes keeps one events resource; the events.k8s.io API renames its
fields (note for message, regarding for involvedObject, deprecated* for the
old counters). These two functions are that renaming, lossless both ways.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

# (events.k8s.io/v1 field, core/v1 field)
_RENAMES = (
    ("note", "message"),
    ("regarding", "involvedObject"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
)
_SAME = ("metadata", "eventTime", "series", "reportingInstance", "action", "reason", "related",
         "type")


def events_to_core(obj: Obj) -> Obj:
    out: Obj = {"apiVersion": "v1", "kind": "Event"}
    for f in _SAME:
        if f in obj:
            out[f] = obj[f]
    for new, old in _RENAMES:
        if new in obj:
            out[old] = obj[new]
    return out


def core_to_events(obj: Obj) -> Obj:
    out: Obj = {"apiVersion": "events.k8s.io/v1", "kind": "Event"}
    for f in _SAME:
        if f in obj:
            out[f] = obj[f]
    for new, old in _RENAMES:
        if old in obj:
            out[new] = obj[old]
    return out
