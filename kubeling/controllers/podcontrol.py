"""Creating, deleting, adopting and releasing the objects a controller owns.

Shared by the ReplicaSet/ReplicationController, Deployment, DaemonSet, Job and
StatefulSet controllers, as Kubernetes shares controller_utils.go:

- :func:`from_template` builds a pod from a pod template with the owner's
  controller reference (``controller: true``, ``blockOwnerDeletion: true``);
- :class:`Expectations` remembers creations and deletions a controller has
  asked for but not yet seen in its informer, so it does not act twice on a
  stale cache (ControllerExpectations);
- :func:`create_batched` creates in slow-start batches (1, 2, 4, ...) and stops
  at the first failure, so a quota or a bad template costs one error, not N;
- :func:`claim` adopts orphans that match the selector and releases owned
  objects that no longer match (ControllerRefManager).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kubeling.api import errors
from kubeling.api.jsoncopy import json_copy
from kubeling.api.kinds import Kind
from kubeling.api.selectors import LabelSelector
from kubeling.client.informer import Informer
from kubeling.client.interface import Client, Obj
from kubeling.client.workqueue import WorkQueue
from kubeling.utils.clock import REAL, Clock

log = logging.getLogger("kubeling.controllers")

EXPECTATIONS_TTL = 300.0
SLOW_START_INITIAL_BATCH = 1


def controller_ref(owner: Obj, owner_kind: Kind) -> Obj:
    return {"apiVersion": owner_kind.group_version, "kind": owner_kind.kind,
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def controller_of(obj: Obj) -> Obj | None:
    """The ownerReference with ``controller: true``, if any."""
    for ref in obj["metadata"].get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


def from_template(template: Obj, owner: Obj, owner_kind: Kind, *, name: str = "",
                  generate_name: str = "") -> Obj:
    """A pod for ``owner`` from its ``spec.template`` (labels, annotations, spec copied)."""
    tmeta = template.get("metadata") or {}
    meta: Obj = {"namespace": owner["metadata"]["namespace"],
                 "labels": dict(tmeta.get("labels") or {}),
                 "ownerReferences": [controller_ref(owner, owner_kind)]}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = generate_name or f"{owner['metadata']['name']}-"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": json_copy(template.get("spec") or {})}


@dataclass
class _Expected:
    adds: int
    deletes: set[str]
    at: float


class Expectations:
    """Per-controller-key counts of creations and deletions in flight."""

    def __init__(self, clock: Clock = REAL) -> None:
        self.clock = clock
        self._by_key: dict[str, _Expected] = {}

    def satisfied(self, key: str) -> bool:
        e = self._by_key.get(key)
        if e is None:
            return True
        if e.adds <= 0 and not e.deletes:
            return True
        return self.clock.monotonic() - e.at > EXPECTATIONS_TTL

    def expect_creations(self, key: str, n: int) -> None:
        self._by_key[key] = _Expected(n, set(), self.clock.monotonic())

    def expect_deletions(self, key: str, uids: list[str]) -> None:
        self._by_key[key] = _Expected(0, set(uids), self.clock.monotonic())

    def creation_observed(self, key: str) -> None:
        e = self._by_key.get(key)
        if e is not None:
            e.adds -= 1

    def creations_failed(self, key: str, n: int) -> None:
        """``n`` expected creations will never be observed (their requests failed)."""
        e = self._by_key.get(key)
        if e is not None:
            e.adds -= n

    def deletion_observed(self, key: str, uid: str) -> None:
        e = self._by_key.get(key)
        if e is not None:
            e.deletes.discard(uid)

    def forget(self, key: str) -> None:
        self._by_key.pop(key, None)


class PartialCreate(Exception):
    """A batch failed: ``done`` creations succeeded before it; ``cause`` is the first error."""

    def __init__(self, done: int, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.done = done
        self.cause = cause


async def create_batched(count: int, create: Callable[[], Awaitable[None]]) -> int:
    """Call ``create`` ``count`` times in slow-start batches; return how many succeeded.

    Stops after the first batch with a failure (the first error is raised after the
    batch, so the caller records it) — Kubernetes' slowStartBatch.
    """
    done = 0
    batch = min(count, SLOW_START_INITIAL_BATCH)
    while batch > 0:
        results = await asyncio.gather(*(create() for _ in range(batch)),
                                       return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        done += batch - len(failures)
        if failures:
            err = failures[0]
            if isinstance(err, asyncio.CancelledError):
                raise err
            raise PartialCreate(done, err)
        remaining = count - done
        batch = min(2 * batch, remaining)
    return done


async def claim(client: Client, child_kind: Kind, owner: Obj, owner_kind: Kind,
                selector: LabelSelector, candidates: list[Obj]) -> list[Obj]:
    """The children ``owner`` controls after adopting matching orphans and releasing owned
    children that no longer match. Adoption is skipped while the owner is being deleted."""
    uid = owner["metadata"]["uid"]
    deleting = bool(owner["metadata"].get("deletionTimestamp"))
    owned: list[Obj] = []
    for child in candidates:
        meta = child["metadata"]
        ref = controller_of(child)
        matches = selector.matches(meta.get("labels"))
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if matches:
                owned.append(child)
                continue
            if deleting:
                continue
            await _set_refs(client, child_kind, child,
                            [r for r in meta.get("ownerReferences") or () if r.get("uid") != uid])
            log.info("%s %s/%s released by %s", child_kind.kind, meta.get("namespace"),
                     meta["name"], owner["metadata"]["name"])
            continue
        if not matches or deleting or meta.get("deletionTimestamp"):
            continue
        try:
            adopted = await _set_refs(client, child_kind, child,
                                      [*(meta.get("ownerReferences") or ()),
                                       controller_ref(owner, owner_kind)])
        except errors.StatusError as exc:
            if exc.code in (404, 409):
                continue
            raise
        owned.append(adopted)
    return owned


async def _set_refs(client: Client, kind: Kind, child: Obj, refs: list[Obj]) -> Obj:
    meta = child["metadata"]
    patch = {"metadata": {"ownerReferences": refs or None, "uid": meta["uid"],
                          "resourceVersion": meta["resourceVersion"]}}
    return await client.patch(kind, meta.get("namespace"), meta["name"], patch)


class OwnedPodEvents:
    """Informer handlers that route a pod's events to its controlling owner's queue key
    and tell the owner's expectations what was observed (created, deleted)."""

    def __init__(self, owner_kind: str, queue: WorkQueue, expectations: Expectations) -> None:
        self.owner_kind = owner_kind
        self.queue = queue
        self.expectations = expectations

    def register(self, pods: Informer) -> None:
        pods.add_handlers(add=self.added, update=self.updated, delete=self.deleted)

    def owner_key(self, pod: Obj) -> str | None:
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != self.owner_kind:
            return None
        return f"{pod['metadata']['namespace']}/{ref['name']}"

    def added(self, pod: Obj) -> None:
        key = self.owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.queue.add(key)

    def updated(self, old: Obj, new: Obj) -> None:
        key = self.owner_key(new)
        if key is None:
            return
        if new["metadata"].get("deletionTimestamp") and not old["metadata"].get(
                "deletionTimestamp"):
            self.expectations.deletion_observed(key, new["metadata"]["uid"])
        self.queue.add(key)

    def deleted(self, pod: Obj) -> None:
        key = self.owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, pod["metadata"]["uid"])
            self.queue.add(key)
