"""Turning desired endpoints into EndpointSlice writes with as little churn as possible.

Shared by the EndpointSlice controller (slices from pods) and the mirroring
controller (slices from selectorless Endpoints). The desired state is a set of
*groups*: endpoints sharing an address type and a port list. Existing slices
of a group keep the endpoints still wanted (refreshed in place), lose the
stale ones, and take new ones while they have room (at most 100 endpoints a
slice, Kubernetes' default ``maxEndpointsPerSlice``); only what does not fit
makes new slices, and a slice left over from a group that disappeared is
reused for a new one before any is created. So a pod turning unready rewrites
one slice, never the whole set, and the proxy reprograms only that.

:class:`Expectations` remembers our own writes until the informer has seen
them: slices get random names, so a sync run on a cache that lags behind our
last create would create a second copy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kubeling.api.jsoncopy import json_copy
from kubeling.client.informer import Informer
from kubeling.client.interface import Obj
from kubeling.controllers.servicepods import canon
from kubeling.utils.clock import Clock

MAX_ENDPOINTS_PER_SLICE = 100
EXPECTATION_TIMEOUT = 5.0


@dataclass
class Group:
    address_type: str
    ports: list[Obj]
    endpoints: dict[tuple[str, str], Obj] = field(default_factory=dict)


@dataclass
class Plan:
    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)


def endpoint_key(ep: Obj) -> tuple[str, str]:
    addresses = ep.get("addresses") or [""]
    return (addresses[0], (ep.get("targetRef") or {}).get("uid") or "")


def group_key(address_type: str, ports: Iterable[Obj]) -> str:
    norm = sorted((p.get("name") or "", int(p.get("port") or 0), p.get("protocol") or "TCP",
                   p.get("appProtocol") or "") for p in ports)
    return json.dumps([address_type, norm])


def slice_key(s: Obj) -> str:
    return group_key(s.get("addressType") or "IPv4", s.get("ports") or [])


def _ip_order(ep: Obj) -> tuple[Any, ...]:
    ip = endpoint_key(ep)[0]
    parts = ip.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return (0, tuple(int(p) for p in parts), endpoint_key(ep)[1])
    return (1, ip, endpoint_key(ep)[1])


def _meta_differs(s: Obj, meta: Obj) -> bool:
    have = s["metadata"]
    return (have.get("labels") or {}) != meta["labels"] or \
        canon(have.get("ownerReferences") or []) != canon(meta["ownerReferences"])


def _fill(base: Obj, group: Group, endpoints: list[Obj], meta: Obj) -> Obj:
    base["metadata"]["labels"] = dict(meta["labels"])
    base["metadata"]["ownerReferences"] = json_copy(meta["ownerReferences"])
    ann = dict(base["metadata"].get("annotations") or {})
    ann.update(meta.get("annotations") or {})
    for k in meta.get("drop_annotations") or ():
        ann.pop(k, None)
    base["metadata"]["annotations"] = ann
    base["addressType"] = group.address_type
    base["ports"] = json_copy(group.ports)
    base["endpoints"] = endpoints
    return base


def _new(group: Group, endpoints: list[Obj], meta: Obj) -> Obj:
    base: Obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"generateName": meta["generateName"],
                              "namespace": meta["namespace"]}}
    return _fill(base, group, endpoints, meta)


def plan(desired: dict[str, Group], existing: list[Obj], meta: Obj, *,
         max_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> Plan:
    """The creates, updates and deletes that turn ``existing`` into ``desired``.

    ``meta`` holds the slices' ``labels``, ``ownerReferences``, ``generateName``,
    ``namespace``, and ``annotations`` to set on the slices written. A group with no
    endpoints (a placeholder) keeps exactly one empty slice."""
    by_key: dict[str, list[Obj]] = {}
    for s in sorted(existing, key=lambda s: s["metadata"]["name"]):
        by_key.setdefault(slice_key(s), []).append(s)
    out = Plan()
    pending: list[tuple[Group, list[Obj]]] = []
    for gk, group in desired.items():
        remaining = dict(group.endpoints)
        recs: list[list[Any]] = []
        for s in by_key.pop(gk, []):
            kept: list[Obj] = []
            changed = False
            for ep in s.get("endpoints") or []:
                want = remaining.pop(endpoint_key(ep), None)
                if want is None:
                    changed = True
                    continue
                if canon(want) != canon(ep):
                    changed = True
                kept.append(want)
            recs.append([s, kept, changed])
        left = sorted(remaining.values(), key=_ip_order)
        # Fill the slices already being rewritten first, then the fullest ones.
        for rec in sorted(recs, key=lambda r: (not r[2], -len(r[1]))):
            room = max_per_slice - len(rec[1])
            if room > 0 and left:
                rec[1].extend(left[:room])
                left = left[room:]
                rec[2] = True
        kept_any = False
        for s, kept, changed in recs:
            if not kept and (group.endpoints or kept_any):
                out.delete.append(s)
                continue
            kept_any = True
            if changed or _meta_differs(s, meta):
                out.update.append(_fill(json_copy(s), group, kept, meta))
        while left:
            pending.append((group, left[:max_per_slice]))
            left = left[max_per_slice:]
        if not group.endpoints and not kept_any:
            pending.append((group, []))
    leftovers = [s for ss in by_key.values() for s in ss]
    for group, chunk in pending:
        reuse = next((s for s in leftovers if s.get("addressType") == group.address_type), None)
        if reuse is not None:
            leftovers.remove(reuse)
            out.update.append(_fill(json_copy(reuse), group, chunk, meta))
        else:
            out.create.append(_new(group, chunk, meta))
    out.delete.extend(leftovers)
    return out


class Expectations:
    """Our slice writes per owner key, until the slice informer shows them."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._want: dict[str, tuple[float, dict[str, int]]] = {}

    def wrote(self, key: str, written: Obj | None, deleted: Obj | None = None) -> None:
        since, names = self._want.get(key, (self.clock.monotonic(), {}))
        if written is not None:
            names[written["metadata"]["name"]] = int(written["metadata"]["resourceVersion"])
        if deleted is not None:
            names[deleted["metadata"]["name"]] = -1
        self._want[key] = (since, names)

    def satisfied(self, key: str, namespace: str | None, slices: Informer) -> bool:
        entry = self._want.get(key)
        if entry is None:
            return True
        since, names = entry
        if self.clock.monotonic() - since > EXPECTATION_TIMEOUT:
            self._want.pop(key, None)
            return True
        for name, rv in names.items():
            got = slices.get(namespace, name)
            if rv < 0:
                if got is not None:
                    return False
            elif got is None or int(got["metadata"].get("resourceVersion") or 0) < rv:
                return False
        self._want.pop(key, None)
        return True

    def forget(self, key: str) -> None:
        self._want.pop(key, None)
