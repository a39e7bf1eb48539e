"""One reconciliation of one Job: count, decide, create or delete, write status.

Split from :mod:`kubeling.controllers.job` (which owns the informers, the
queue and the API writes); this is the body of Kubernetes' ``syncJob``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubeling.api.jsoncopy import json_copy
from kubeling.client.events import NORMAL, WARNING
from kubeling.client.interface import Obj
from kubeling.controllers import job_pods as jp
from kubeling.utils.clock import parse_rfc3339, rfc3339

if TYPE_CHECKING:
    from kubeling.controllers.job import JobController


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
        if jp.wire(status) != jp.wire(self.job.get("status") or {}):
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
