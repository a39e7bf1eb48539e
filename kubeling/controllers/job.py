"""The Job controller and the TTL-after-finished controller.

A Job runs pods until ``completions`` of them succeed (Indexed: one per
completion index), at most ``parallelism`` at a time, and fails once more than
``backoffLimit`` pods failed or it ran longer than ``activeDeadlineSeconds``.
Pods are tracked with the ``batch.kubernetes.io/job-tracking`` finalizer as
Kubernetes 1.26+ does: a finished pod's uid is first written to
``status.uncountedTerminatedPods``, then its finalizer is removed, then it is
moved into the ``succeeded``/``failed`` counters, so no pod is counted twice
or lost across restarts. A Job that met its goal gets ``SuccessCriteriaMet``
(or ``FailureTarget``) first and ``Complete`` (or ``Failed``) once none of its
pods is still terminating, as 1.32 does.

:class:`TTLAfterFinishedController` deletes finished Jobs whose
``ttlSecondsAfterFinished`` has passed (foreground propagation, as Kubernetes).
"""

from __future__ import annotations

import asyncio
import logging

from kubeling.api import errors, kinds
from kubeling.api.kinds import Kind
from kubeling.api.selectors import selector_from_object
from kubeling.client.events import NORMAL, WARNING
from kubeling.client.informer import OWNER_INDEX, key_of
from kubeling.client.interface import Obj
from kubeling.controllers import job_pods as jp
from kubeling.controllers.base import Controller, ControllerContext
from kubeling.controllers.job_sync import JobSync
from kubeling.controllers.podcontrol import (
    Expectations,
    OwnedPodEvents,
    PartialCreate,
    claim,
    create_batched,
)
from kubeling.utils.clock import parse_rfc3339

log = logging.getLogger("kubeling.controllers.job")


def _kind(group: str, resource: str) -> Kind:
    k = kinds.by_resource(group, resource)
    assert k is not None
    return k


JOBS = _kind("batch", "jobs")
PODS = _kind("", "pods")


class JobController(Controller):
    name = "job-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.jobs = ctx.informers.informer(JOBS)
        self.pods = ctx.informers.informer(PODS)
        self.expectations = Expectations(ctx.clock)
        self.jobs.add_handlers(add=self.enqueue, update=lambda _o, n: self.enqueue(n),
                               delete=self._job_deleted)
        OwnedPodEvents("Job", self.queue, self.expectations).register(self.pods)

    def _job_deleted(self, job: Obj) -> None:
        self.expectations.forget(key_of(job))
        self.enqueue(job)

    # ----- sync -----------------------------------------------------------------------

    async def _job_pods(self, job: Obj) -> list[Obj]:
        meta = job["metadata"]
        selector = selector_from_object((job.get("spec") or {}).get("selector"))
        seen: dict[str, Obj] = {}
        for p in self.pods.by_index(OWNER_INDEX, meta["uid"]):
            seen[p["metadata"]["uid"]] = p
        for p in self.pods.list(meta["namespace"], selector):
            seen.setdefault(p["metadata"]["uid"], p)
        return await claim(self.client, PODS, job, JOBS, selector, list(seen.values()))

    async def sync(self, key: str) -> None:
        ns, name = key.split("/", 1)
        job = self.jobs.get(ns, name)
        if job is None:
            self.expectations.forget(key)
            return
        pods = await self._job_pods(job)
        if jp.finished(job):
            await self._remove_finalizers(
                [p for p in pods if jp.has_finalizer(p)])
            return
        satisfied = self.expectations.satisfied(key)
        await JobSync(self, key, job, pods, satisfied).run()

    async def _remove_finalizers(self, pods: list[Obj]) -> set[str]:
        """Remove the tracking finalizer; the uids it was removed from (or already gone)."""
        async def one(pod: Obj) -> str:
            meta = pod["metadata"]
            patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": [
                jp.TRACKING_FINALIZER]}}
            try:
                await self.client.patch(PODS, meta["namespace"], meta["name"], patch,
                                        patch_type="strategic")
            except errors.StatusError as exc:
                if exc.code != 404:
                    raise
            return str(meta["uid"])

        results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
        done = {r for r in results if isinstance(r, str)}
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures and not done:
            raise failures[0]
        return done

    async def delete_pods(self, job: Obj, pods: list[Obj], *, keep_finalizer: bool) -> int:
        """Delete ``pods`` of ``job`` (first removing their finalizer unless asked to keep it,
        so they are not counted as failures). Returns how many deletions went through."""
        key = key_of(job)
        self.expectations.expect_deletions(key, [p["metadata"]["uid"] for p in pods])
        if not keep_finalizer:
            await self._remove_finalizers([p for p in pods if jp.has_finalizer(p)])

        async def one(pod: Obj) -> bool:
            meta = pod["metadata"]
            try:
                await self.client.delete(PODS, meta["namespace"], meta["name"],
                                         options={"preconditions": {"uid": meta["uid"]}})
            except errors.StatusError as exc:
                self.expectations.deletion_observed(key, meta["uid"])
                if exc.code == 404:
                    return True
                raise
            self.recorder.event(job, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}")
            return True

        results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
        return len(pods)

    async def create_pods(self, job: Obj, indexes: list[int | None]) -> None:
        key = key_of(job)
        self.expectations.expect_creations(key, len(indexes))
        queue = list(indexes)

        async def create() -> None:
            pod = jp.new_pod(job, JOBS, queue.pop(0))
            try:
                created = await self.client.create(PODS, job["metadata"]["namespace"], pod)
            except errors.StatusError as exc:
                self.recorder.event(job, WARNING, "FailedCreate",
                                    f"Error creating: {exc.message}")
                raise
            self.recorder.event(job, NORMAL, "SuccessfulCreate",
                                f"Created pod: {created['metadata']['name']}")

        try:
            await create_batched(len(indexes), create)
        except PartialCreate as exc:
            self.expectations.creations_failed(key, len(indexes) - exc.done)
            raise exc.cause from None

    async def write_status(self, job: Obj, status: Obj) -> Obj:
        new = dict(job)
        new["status"] = jp.wire(status)
        return await self.client.update(JOBS, new, subresource="status")


class TTLAfterFinishedController(Controller):
    """Deletes a finished Job ``ttlSecondsAfterFinished`` after it finished."""

    name = "ttl-after-finished-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.jobs = ctx.informers.informer(JOBS)
        self.jobs.add_handlers(add=self._maybe, update=lambda _o, n: self._maybe(n))

    def _maybe(self, job: Obj) -> None:
        if (job.get("spec") or {}).get("ttlSecondsAfterFinished") is not None and \
                not job["metadata"].get("deletionTimestamp") and jp.finished(job):
            self.enqueue(job)

    def _expires_in(self, job: Obj) -> float | None:
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        cond = jp.finished(job)
        if ttl is None or cond is None or job["metadata"].get("deletionTimestamp"):
            return None
        at = cond.get("lastTransitionTime") or (job.get("status") or {}).get("completionTime")
        if not at:
            return None
        return parse_rfc3339(at) + ttl - self.clock.now()

    async def sync(self, key: str) -> None:
        ns, name = key.split("/", 1)
        job = self.jobs.get(ns, name)
        if job is None:
            return
        left = self._expires_in(job)
        if left is None:
            return
        if left > 0:
            self.queue.add_after(key, left)
            return
        try:
            fresh = await self.client.get(JOBS, ns, name)
        except errors.StatusError as exc:
            if exc.code == 404:
                return
            raise
        left = self._expires_in(fresh)
        if left is None or left > 0:
            if left is not None:
                self.queue.add_after(key, left)
            return
        log.info("deleting finished job %s (ttlSecondsAfterFinished)", key)
        try:
            await self.client.delete(JOBS, ns, name, options={
                "propagationPolicy": "Foreground",
                "preconditions": {"uid": fresh["metadata"]["uid"]}})
        except errors.StatusError as exc:
            if exc.code != 404:
                raise
