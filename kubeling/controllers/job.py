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
from kubeling.api.jsoncopy import json_copy
from kubeling.api.kinds import Kind
from kubeling.api.selectors import selector_from_object
from kubeling.client.events import NORMAL, WARNING
from kubeling.client.informer import OWNER_INDEX, key_of
from kubeling.client.interface import Obj
from kubeling.controllers import job_pods as jp
from kubeling.controllers.base import Controller, ControllerContext
from kubeling.controllers.podcontrol import (
    Expectations,
    PartialCreate,
    claim,
    controller_of,
    create_batched,
)
from kubeling.utils.clock import parse_rfc3339, rfc3339

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
        self.pods.add_handlers(add=self._pod_added, update=self._pod_updated,
                               delete=self._pod_deleted)

    def _job_deleted(self, job: Obj) -> None:
        self.expectations.forget(key_of(job))
        self.enqueue(job)

    def _owner_key(self, pod: Obj) -> str | None:
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "Job":
            return None
        return f"{pod['metadata']['namespace']}/{ref['name']}"

    def _pod_added(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = self._owner_key(new)
        if key is None:
            return
        if new["metadata"].get("deletionTimestamp") and not old["metadata"].get(
                "deletionTimestamp"):
            self.expectations.deletion_observed(key, new["metadata"]["uid"])
        self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, pod["metadata"]["uid"])
            self.queue.add(key)

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
        new["status"] = _wire(status)
        return await self.client.update(JOBS, new, subresource="status")


_OMIT_ZERO = ("active", "succeeded", "failed")


def _wire(status: Obj) -> Obj:
    """``status`` as Kubernetes writes it: zero counters and empty lists left out."""
    out = json_copy(status)
    for k in _OMIT_ZERO:
        if out.get(k) == 0:
            del out[k]
    if not out.get("conditions"):
        out.pop("conditions", None)
    if not out.get("completedIndexes"):
        out.pop("completedIndexes", None)
    unc = out.get("uncountedTerminatedPods")
    if isinstance(unc, dict):
        out["uncountedTerminatedPods"] = {k: v for k, v in unc.items() if v}
    return out


class JobSync:
    """One reconciliation of one Job (the state of a syncJob call)."""

    def __init__(self, ctrl: JobController, key: str, job: Obj, pods: list[Obj],
                 satisfied: bool) -> None:
        self.ctrl = ctrl
        self.key = key
        self.job = job
        self.pods = pods
        self.satisfied = satisfied
        self.spec: Obj = job.get("spec") or {}
        self.status: Obj = json_copy(job.get("status") or {})
        self.now = ctrl.clock.now()
        self.indexed = self.spec.get("completionMode") == "Indexed"
        self.completions: int | None = self.spec.get("completions")

    # ----- counting ---------------------------------------------------------------

    def _uncounted(self) -> tuple[list[str], list[str]]:
        unc = self.status.setdefault("uncountedTerminatedPods", {})
        return unc.setdefault("succeeded", []), unc.setdefault("failed", [])

    def _flush_uncounted(self) -> None:
        """Count the uncounted pods that have lost their finalizer."""
        with_finalizer = {p["metadata"]["uid"] for p in self.pods if jp.has_finalizer(p)}
        succ, fail = self._uncounted()
        done_s = [u for u in succ if u not in with_finalizer]
        done_f = [u for u in fail if u not in with_finalizer]
        if not self.indexed:
            self.status["succeeded"] = self.status.get("succeeded", 0) + len(done_s)
        self.status["failed"] = self.status.get("failed", 0) + len(done_f)
        succ[:] = [u for u in succ if u in with_finalizer]
        fail[:] = [u for u in fail if u in with_finalizer]

    def _succeeded_indexes(self) -> set[int]:
        limit = self.completions or 0
        done = jp.parse_indexes(self.status.get("completedIndexes"), limit)
        for p in self.pods:
            ix = jp.completion_index(p)
            if jp.phase(p) == "Succeeded" and ix is not None and ix < limit:
                done.add(ix)
        return done

    # ----- the reconciliation -------------------------------------------------------

    async def run(self) -> None:
        ctrl, spec, status = self.ctrl, self.spec, self.status
        self._flush_uncounted()
        succ_unc, fail_unc = self._uncounted()
        to_count = [p for p in self.pods if jp.has_finalizer(p)
                    and p["metadata"]["uid"] not in succ_unc
                    and p["metadata"]["uid"] not in fail_unc
                    and (jp.phase(p) == "Succeeded" or jp.is_failed(p, self.job))]
        new_succ = [p for p in to_count if jp.phase(p) == "Succeeded"]
        new_fail = [p for p in to_count if p not in new_succ]
        succeeded = status.get("succeeded", 0) + len(succ_unc) + len(new_succ)
        failed = status.get("failed", 0) + len(fail_unc) + len(new_fail)
        if self.indexed:
            succeeded = len(self._succeeded_indexes())
        active = [p for p in self.pods if jp.is_active(p)]
        suspended = bool(spec.get("suspend"))
        if not status.get("startTime") and not suspended:
            status["startTime"] = rfc3339(self.now)

        target = self._target_condition(failed)
        if target is None and spec.get("activeDeadlineSeconds") is not None \
                and not suspended and status.get("startTime"):
            left = parse_rfc3339(status["startTime"]) + spec["activeDeadlineSeconds"] - self.now
            ctrl.queue.add_after(self.key, max(left, 0.001))
        if target is None and self._complete(succeeded, active):
            target = jp.new_condition(jp.SUCCESS_CRITERIA_MET, *jp.COMPLETIONS_REACHED,
                                      self.now)
        deleting_all = target is not None
        just_deleted = 0
        if target is not None:
            if active:
                just_deleted = await ctrl.delete_pods(self.job, active, keep_finalizer=True)
            active = []
        elif self.satisfied and not self.job["metadata"].get("deletionTimestamp"):
            active = await self._manage(active, succeeded)
            if self._complete(succeeded, active):
                target = jp.new_condition(jp.SUCCESS_CRITERIA_MET, *jp.COMPLETIONS_REACHED,
                                          self.now)
            self._suspend_condition(suspended)

        status["active"] = len(active)
        status["ready"] = sum(1 for p in active if jp.is_ready(p))
        status["terminating"] = just_deleted + sum(1 for p in self.pods
                                                   if jp.is_terminating(p))
        failing = target is not None and target["type"] == jp.FAILURE_TARGET
        removable = [p for p in self.pods if jp.has_finalizer(p) and (
            jp.is_terminal(p) or p["metadata"].get("deletionTimestamp")
            or (deleting_all and failing))]
        for p in removable:
            uid = p["metadata"]["uid"]
            if uid in succ_unc or uid in fail_unc:
                continue
            if jp.phase(p) == "Succeeded":
                if not self.indexed:
                    succ_unc.append(uid)
            elif jp.is_failed(p, self.job) or failing:
                fail_unc.append(uid)
        if self.indexed:
            status["succeeded"] = succeeded
            status["completedIndexes"] = jp.format_indexes(self._succeeded_indexes())
        if target is not None:
            jp.ensure_condition(status.setdefault("conditions", []), target["type"], "True",
                                target["reason"], target["message"], self.now)
        if removable:
            self.job = await ctrl.write_status(self.job, status)
            removed = await ctrl._remove_finalizers(removable)
            self.pods = [p for p in self.pods if p["metadata"]["uid"] not in removed]
            self._flush_uncounted()
        self._finish(target)
        if _wire(status) != _wire(self.job.get("status") or {}):
            await ctrl.write_status(self.job, status)

    def _target_condition(self, failed: int) -> Obj | None:
        """An interim condition already set, or the failure this sync finds."""
        met = jp.condition(self.job, jp.SUCCESS_CRITERIA_MET)
        if met is not None:
            return met
        aimed = jp.condition(self.job, jp.FAILURE_TARGET)
        if aimed is not None:
            return aimed
        if failed > self.spec.get("backoffLimit", 6):
            return jp.new_condition(jp.FAILURE_TARGET, *jp.BACKOFF_LIMIT_EXCEEDED, self.now)
        deadline = self.spec.get("activeDeadlineSeconds")
        start = self.status.get("startTime")
        if deadline is not None and start and not self.spec.get("suspend") and \
                self.now - parse_rfc3339(start) >= deadline:
            return jp.new_condition(jp.FAILURE_TARGET, *jp.DEADLINE_EXCEEDED, self.now)
        return None

    def _complete(self, succeeded: int, active: list[Obj]) -> bool:
        if active:
            return False
        if self.completions is None:
            return succeeded > 0
        return succeeded >= self.completions

    def _finish(self, target: Obj | None) -> None:
        """Turn the interim condition into Complete/Failed once nothing is left to count."""
        status = self.status
        succ, fail = self._uncounted()
        if target is None or succ or fail or status.get("terminating") or status.get("active"):
            return
        conds = status.setdefault("conditions", [])
        final = jp.COMPLETE if target["type"] == jp.SUCCESS_CRITERIA_MET else jp.FAILED
        if not jp.ensure_condition(conds, final, "True", target["reason"], target["message"],
                                   self.now):
            return
        for c in conds:
            if c["type"] == jp.SUSPENDED and c.get("status") == "True":
                jp.ensure_condition(conds, jp.SUSPENDED, "False", "JobResumed", "Job resumed",
                                    self.now)
        if final == jp.COMPLETE:
            status["completionTime"] = rfc3339(self.now)
            self.ctrl.recorder.event(self.job, NORMAL, "Completed", "Job completed")
        else:
            self.ctrl.recorder.event(self.job, WARNING, target["reason"], target["message"])

    def _suspend_condition(self, suspended: bool) -> None:
        conds = self.status.get("conditions") or []
        rec = self.ctrl.recorder
        if suspended:
            if jp.ensure_condition(conds, jp.SUSPENDED, "True", "JobSuspended", "Job suspended",
                                   self.now):
                rec.event(self.job, NORMAL, "Suspended", "Job suspended")
        elif jp.ensure_condition(conds, jp.SUSPENDED, "False", "JobResumed", "Job resumed",
                                 self.now):
            rec.event(self.job, NORMAL, "Resumed", "Job resumed")
            self.status["startTime"] = rfc3339(self.now)
        if conds:
            self.status["conditions"] = conds

    async def _manage(self, active: list[Obj], succeeded: int) -> list[Obj]:
        """Create or delete pods towards ``parallelism``; the active pods afterwards."""
        ctrl, spec = self.ctrl, self.spec
        if spec.get("suspend"):
            if active:
                await ctrl.delete_pods(self.job, active, keep_finalizer=False)
            return []
        parallelism = spec.get("parallelism", 1)
        if self.completions is None:
            want = len(active) if succeeded > 0 else parallelism
        else:
            want = max(0, min(parallelism, self.completions - succeeded))
        excess: list[Obj] = []
        if self.indexed:
            excess, active = self._bad_indexes(active)
        extra = len(active) - want
        if extra > 0:
            ranked = sorted(active, key=jp.active_rank)
            excess += ranked[:extra]
            active = ranked[extra:]
        if excess:
            await ctrl.delete_pods(self.job, excess[:jp.MAX_CREATE_DELETE_PER_SYNC],
                                   keep_finalizer=False)
            return active
        missing = min(want - len(active), jp.MAX_CREATE_DELETE_PER_SYNC)
        if missing <= 0:
            return active
        if spec.get("podReplacementPolicy") == "Failed" and \
                any(jp.is_terminating(p) for p in self.pods):
            return active
        wait = jp.backoff_remaining(self.job, self.pods, self.now)
        if wait > 0:
            ctrl.queue.add_after(self.key, wait)
            return active
        indexes: list[int | None]
        if self.indexed:
            taken = self._succeeded_indexes() | {jp.completion_index(p) for p in active}
            free = [i for i in range(self.completions or 0) if i not in taken]
            indexes = [*free[:missing]]
        else:
            indexes = [None] * missing
        if indexes:
            await ctrl.create_pods(self.job, indexes)
        return active + [{"metadata": {}, "status": {}} for _ in indexes]

    def _bad_indexes(self, active: list[Obj]) -> tuple[list[Obj], list[Obj]]:
        """Active pods without a valid index, for a succeeded index, or duplicated."""
        done = self._succeeded_indexes()
        keep: list[Obj] = []
        bad: list[Obj] = []
        seen: set[int] = set()
        for p in sorted(active, key=jp.active_rank, reverse=True):
            ix = jp.completion_index(p)
            if ix is None or ix >= (self.completions or 0) or ix in done or ix in seen:
                bad.append(p)
            else:
                seen.add(ix)
                keep.append(p)
        return bad, keep


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
