"""The ReplicaSet and ReplicationController controllers: keep N copies of a pod running.

One implementation serves both kinds, as Kubernetes runs its ReplicaSet
controller over ReplicationControllers through an adapter: they differ only in
the kind they own and in the selector (set-based ``matchLabels`` /
``matchExpressions`` for apps/v1 ReplicaSets, an equality map for core/v1
ReplicationControllers).

Each sync reads the owner and its pods from the informers, claims pods
(adopting matching orphans, releasing owned pods that no longer match),
creates the missing pods in slow-start batches or deletes the surplus chosen
by :mod:`kubeling.controllers.replicaset_rank`, and writes the status counts
of :mod:`kubeling.controllers.replicaset_status`. Expectations keep a sync
from acting again on creations and deletions its informer has not seen yet.
"""

from __future__ import annotations

import asyncio
import logging

from kubeling.api import errors, kinds
from kubeling.api.kinds import Kind
from kubeling.api.selectors import LabelSelector, selector_from_map, selector_from_object
from kubeling.client.events import NORMAL, WARNING
from kubeling.client.informer import OWNER_INDEX, key_of
from kubeling.client.interface import Obj
from kubeling.controllers import podcontrol
from kubeling.controllers.base import Controller, ControllerContext
from kubeling.controllers.podcontrol import Expectations, PartialCreate, controller_of
from kubeling.controllers.replicaset_rank import is_active, is_ready, pods_to_delete
from kubeling.controllers.replicaset_status import (
    compute_status,
    desired_replicas,
    min_ready_seconds,
    next_available_in,
    status_changed,
    with_status,
)

log = logging.getLogger("kubeling.controllers")

BURST_REPLICAS = 500
AVAILABILITY_SLACK = 0.05


def _kind(group: str, resource: str) -> Kind:
    found = kinds.by_resource(group, resource)
    if found is None:
        raise LookupError(f"no resource {resource!r} in group {group!r}")
    return found


def _terminating_namespace(exc: errors.StatusError) -> bool:
    return any(c.get("reason") == "NamespaceTerminating" for c in exc.causes)


class ReplicaController(Controller):
    """Shared logic; subclasses name the owner kind and how to read its selector."""

    owner_resource: tuple[str, str] = ("apps", "replicasets")

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.kind = _kind(*self.owner_resource)
        self.pod_kind = _kind("", "pods")
        self.burst = int(ctx.options.extra.get("burst_replicas", BURST_REPLICAS))
        self.expectations = Expectations(ctx.clock)
        self.owners = ctx.informers.informer(self.kind)
        self.pods = ctx.informers.informer(self.pod_kind)
        self.owners.add_handlers(add=self.enqueue, update=self._owner_updated,
                                 delete=self._owner_deleted)
        self.pods.add_handlers(add=self._pod_added, update=self._pod_updated,
                               delete=self._pod_deleted)

    def selector_of(self, owner: Obj) -> LabelSelector:
        """The owner's pod selector; ValueError when it cannot be parsed."""
        raise NotImplementedError

    # ----- informer handlers --------------------------------------------------------

    def _owner_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("uid") != cur["metadata"].get("uid"):
            self._owner_deleted(old)
        self.enqueue(cur)

    def _owner_deleted(self, owner: Obj) -> None:
        key = key_of(owner)
        self.expectations.forget(key)
        self.queue.add(key)

    def _resolve(self, namespace: str, ref: Obj) -> Obj | None:
        if ref.get("kind") != self.kind.kind:
            return None
        owner = self.owners.get(namespace, ref.get("name") or "")
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        return owner

    def _matching_owners(self, pod: Obj) -> list[Obj]:
        """Owners in the pod's namespace whose (non-empty) selector matches its labels."""
        labels = pod["metadata"].get("labels") or {}
        out = []
        for owner in self.owners.list(pod["metadata"].get("namespace")):
            try:
                selector = self.selector_of(owner)
            except ValueError:
                continue
            if not selector.empty and selector.matches(labels):
                out.append(owner)
        return out

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        ref = controller_of(pod)
        if ref is not None:
            owner = self._resolve(pod["metadata"]["namespace"], ref)
            if owner is not None:
                key = key_of(owner)
                self.expectations.creation_observed(key)
                self.queue.add(key)
            return
        for owner in self._matching_owners(pod):
            self.enqueue(owner)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        ometa, cmeta = old["metadata"], cur["metadata"]
        if ometa.get("resourceVersion") == cmeta.get("resourceVersion"):
            return
        labels_changed = (ometa.get("labels") or {}) != (cmeta.get("labels") or {})
        if cmeta.get("deletionTimestamp"):
            self._pod_deleted(cur)
            if labels_changed:
                self._pod_deleted(old)
            return
        cur_ref, old_ref = controller_of(cur), controller_of(old)
        ref_changed = cur_ref != old_ref
        if ref_changed and old_ref is not None:
            previous = self._resolve(ometa["namespace"], old_ref)
            if previous is not None:
                self.enqueue(previous)
        if cur_ref is not None:
            owner = self._resolve(cmeta["namespace"], cur_ref)
            if owner is None:
                return
            self.enqueue(owner)
            min_ready = min_ready_seconds(owner)
            if min_ready > 0 and not is_ready(old) and is_ready(cur):
                self.queue.add_after(key_of(owner), min_ready + 1.0)
            return
        if labels_changed or ref_changed:
            for owner in self._matching_owners(cur):
                self.enqueue(owner)

    def _pod_deleted(self, pod: Obj) -> None:
        ref = controller_of(pod)
        if ref is None:
            return
        owner = self._resolve(pod["metadata"]["namespace"], ref)
        if owner is None:
            return
        key = key_of(owner)
        self.expectations.deletion_observed(key, pod["metadata"].get("uid") or "")
        self.queue.add(key)

    # ----- sync -----------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        owner = self.owners.get(namespace, name)
        if owner is None:
            self.expectations.forget(key)
            return
        needs_sync = self.expectations.satisfied(key)
        try:
            selector = self.selector_of(owner)
        except ValueError as exc:
            log.warning("%s %s has an invalid selector: %s", self.kind.kind, key, exc)
            return
        pods = await self._claim(owner, selector)
        if pods is None:
            return
        failure: BaseException | None = None
        diff = len(pods) - desired_replicas(owner)
        if needs_sync and not owner["metadata"].get("deletionTimestamp"):
            failure = await self._manage(key, owner, pods, diff)
        now = self.clock.now()
        message = None
        if failure is not None:
            message = failure.message if isinstance(failure, errors.StatusError) else str(failure)
        status = compute_status(owner, pods, failure=message,
                                failure_reason="FailedCreate" if diff < 0 else "FailedDelete",
                                now=now)
        if status_changed(owner, status):
            await self.client.update(self.kind, with_status(owner, status), subresource="status")
        if failure is not None:
            raise failure
        wait = next_available_in(pods, min_ready_seconds(owner), now)
        if wait is not None:
            self.queue.add_after(key, wait + AVAILABILITY_SLACK)

    def _candidates(self, owner: Obj, selector: LabelSelector) -> list[Obj]:
        """Active pods of the namespace that match the selector or name the owner."""
        meta = owner["metadata"]
        namespace = meta["namespace"]
        found: dict[str, Obj] = {}
        if not selector.empty:
            for pod in self.pods.list(namespace, selector):
                if is_active(pod):
                    found[pod["metadata"]["name"]] = pod
        for pod in self.pods.by_index(OWNER_INDEX, meta["uid"]):
            if pod["metadata"].get("namespace") == namespace and is_active(pod):
                found[pod["metadata"]["name"]] = pod
        return list(found.values())

    async def _claim(self, owner: Obj, selector: LabelSelector) -> list[Obj] | None:
        """The pods ``owner`` controls after adoption and release; None when the owner is
        gone (a fresh read shows another object or none)."""
        candidates = self._candidates(owner, selector)
        meta = owner["metadata"]
        adopting = not meta.get("deletionTimestamp") and any(
            controller_of(p) is None and not selector.empty
            and selector.matches(p["metadata"].get("labels")) for p in candidates)
        if adopting:
            try:
                fresh = await self.client.get(self.kind, meta["namespace"], meta["name"])
            except errors.StatusError as exc:
                if exc.code == 404:
                    return None
                raise
            if fresh["metadata"].get("uid") != meta["uid"]:
                return None
            if fresh["metadata"].get("deletionTimestamp"):
                owner = fresh
        if selector.empty:
            selector = LabelSelector(nothing=True)
        return await podcontrol.claim(self.client, self.pod_kind, owner, self.kind, selector,
                                      candidates)

    async def _manage(self, key: str, owner: Obj, pods: list[Obj],
                      diff: int) -> BaseException | None:
        if diff < 0:
            return await self._create(key, owner, min(-diff, self.burst))
        if diff > 0:
            return await self._delete(key, owner, pods, min(diff, self.burst))
        return None

    async def _create(self, key: str, owner: Obj, count: int) -> BaseException | None:
        template = (owner.get("spec") or {}).get("template")
        if not template:
            return errors.invalid(self.kind.kind, owner["metadata"]["name"], [
                {"reason": "FieldValueRequired", "message": "Required value",
                 "field": "spec.template"}], self.kind.group)
        self.expectations.expect_creations(key, count)

        async def create_one() -> None:
            pod = podcontrol.from_template(template, owner, self.kind)
            try:
                made = await self.client.create(self.pod_kind, owner["metadata"]["namespace"],
                                                pod)
            except errors.StatusError as exc:
                if _terminating_namespace(exc):
                    return
                self.recorder.event(owner, WARNING, "FailedCreate",
                                    f"Error creating: {exc.message}")
                raise
            self.recorder.event(owner, NORMAL, "SuccessfulCreate",
                                f"Created pod: {made['metadata']['name']}")

        try:
            await podcontrol.create_batched(count, create_one)
        except PartialCreate as exc:
            self.expectations.creations_failed(key, count - exc.done)
            return exc.cause
        return None

    def _related_pods(self, owner: Obj) -> list[Obj]:
        """Pods of every owner with the same controller (a Deployment's ReplicaSets)."""
        ref = controller_of(owner)
        if ref is None:
            return []
        related: dict[str, Obj] = {}
        for sibling in self.owners.by_index(OWNER_INDEX, ref.get("uid") or ""):
            sib_ref = controller_of(sibling)
            if sib_ref is None or sib_ref.get("uid") != ref.get("uid"):
                continue
            if sibling["metadata"].get("namespace") != owner["metadata"].get("namespace"):
                continue
            try:
                selector = self.selector_of(sibling)
            except ValueError:
                continue
            for pod in self.pods.list(sibling["metadata"]["namespace"], selector):
                related.setdefault(pod["metadata"].get("uid") or "", pod)
        return list(related.values())

    async def _delete(self, key: str, owner: Obj, pods: list[Obj],
                      count: int) -> BaseException | None:
        victims = pods_to_delete(pods, self._related_pods(owner), count, self.clock.now())
        self.expectations.expect_deletions(key, [p["metadata"]["uid"] for p in victims])
        results = await asyncio.gather(*(self._delete_one(key, owner, p) for p in victims))
        return next((r for r in results if r is not None), None)

    async def _delete_one(self, key: str, owner: Obj, pod: Obj) -> BaseException | None:
        meta = pod["metadata"]
        try:
            await self.client.delete(self.pod_kind, meta["namespace"], meta["name"],
                                     options={"preconditions": {"uid": meta["uid"]}})
        except errors.StatusError as exc:
            self.expectations.deletion_observed(key, meta["uid"])
            if exc.code == 404 or (exc.code == 409 and "Precondition" in exc.message):
                return None
            self.recorder.event(owner, WARNING, "FailedDelete", f"Error deleting: {exc.message}")
            return exc
        self.recorder.event(owner, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}")
        return None


class ReplicaSetController(ReplicaController):
    name = "replicaset-controller"
    owner_resource = ("apps", "replicasets")

    def selector_of(self, owner: Obj) -> LabelSelector:
        return selector_from_object((owner.get("spec") or {}).get("selector"))


class ReplicationControllerController(ReplicaController):
    name = "replication-controller"
    owner_resource = ("", "replicationcontrollers")

    def selector_of(self, owner: Obj) -> LabelSelector:
        selector = (owner.get("spec") or {}).get("selector")
        if not selector:
            return LabelSelector(nothing=True)
        return selector_from_map(selector)
