"""The CronJob controller: a Job at each scheduled time.

Each sync looks at the CronJob's Jobs (those it controls), records finished
ones (``SawCompletedJob``, ``lastSuccessfulTime``) and forgets vanished ones,
then finds the most recent scheduled time not yet run (from
``lastScheduleTime``, or creation, bounded by ``startingDeadlineSeconds``) and,
unless suspended, too late, or forbidden by ``concurrencyPolicy``, creates the
Job ``<cronjob>-<scheduled time in minutes since the epoch>`` — the name makes
a second creation for the same time fail with AlreadyExists instead of running
twice. Finished Jobs beyond the history limits are deleted, oldest first. The
key is re-queued for the next scheduled time on the controller's clock.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from kubeling.api import errors, kinds
from kubeling.api.jsoncopy import json_copy
from kubeling.api.kinds import Kind
from kubeling.client.events import NORMAL, WARNING
from kubeling.client.informer import OWNER_INDEX
from kubeling.client.interface import Obj
from kubeling.controllers import cronschedule
from kubeling.controllers.base import Controller, ControllerContext
from kubeling.controllers.job_pods import COMPLETE, finished
from kubeling.controllers.podcontrol import controller_of, controller_ref
from kubeling.utils.clock import parse_rfc3339, rfc3339

log = logging.getLogger("kubeling.controllers.cronjob")

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
TOO_MANY_MISSED = 100
REQUEUE_SLACK = 0.1


def _kind(group: str, resource: str) -> Kind:
    k = kinds.by_resource(group, resource)
    assert k is not None
    return k


CRONJOBS = _kind("batch", "cronjobs")
JOBS = _kind("batch", "jobs")


def job_name(cronjob: str, scheduled: float) -> str:
    return f"{cronjob}-{int(scheduled) // 60}"


def most_recent(schedule: cronschedule.Schedule, earliest: float,
                now: float) -> tuple[float | None, int]:
    """The latest firing in (earliest, now] and how many firings that range holds."""
    t = schedule.next(earliest)
    if t is None or t > now:
        return None, 0
    missed = 1
    while True:
        nxt = schedule.next(t)
        if nxt is None or nxt > now:
            return t, missed
        if missed > 1000:
            step = nxt - t
            jump = int((now - nxt) // step)
            t, missed = nxt + jump * step, missed + jump + 1
            while (after := schedule.next(t)) is not None and after <= now:
                t, missed = after, missed + 1
            return t, missed
        t, missed = nxt, missed + 1


def _ref(job: Obj) -> Obj:
    meta = job["metadata"]
    return {"kind": "Job", "namespace": meta["namespace"], "name": meta["name"],
            "uid": meta["uid"], "apiVersion": "batch/v1",
            "resourceVersion": meta.get("resourceVersion", "")}


def _start_key(job: Obj) -> tuple[int, float, str]:
    start = (job.get("status") or {}).get("startTime")
    return (0, parse_rfc3339(start), job["metadata"]["name"]) if start else \
        (1, 0.0, job["metadata"]["name"])


class CronJobController(Controller):
    name = "cronjob-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.cronjobs = ctx.informers.informer(CRONJOBS)
        self.jobs = ctx.informers.informer(JOBS)
        self.cronjobs.add_handlers(add=self.enqueue, update=lambda _o, n: self.enqueue(n),
                                   delete=self.enqueue)
        self.jobs.add_handlers(add=self._job_changed, update=lambda _o, n: self._job_changed(n),
                               delete=self._job_changed)

    def _job_changed(self, job: Obj) -> None:
        ref = controller_of(job)
        if ref is not None and ref.get("kind") == "CronJob":
            self.queue.add(f"{job['metadata']['namespace']}/{ref['name']}")

    async def sync(self, key: str) -> None:
        ns, name = key.split("/", 1)
        cj = self.cronjobs.get(ns, name)
        if cj is None:
            return
        uid = cj["metadata"]["uid"]
        jobs = [j for j in self.jobs.by_index(OWNER_INDEX, uid)
                if (controller_of(j) or {}).get("uid") == uid]
        status = json_copy(cj.get("status") or {})
        await self._reconcile_active(cj, jobs, status)
        next_at = await self._schedule(key, cj, status)
        await self._cleanup(cj, jobs, status)
        if status != (cj.get("status") or {}):
            new = dict(cj)
            new["status"] = status
            await self.client.update(CRONJOBS, new, subresource="status")
        if next_at is not None:
            self.queue.add_after(key, max(next_at - self.clock.now(), 0.0) + REQUEUE_SLACK)

    async def _reconcile_active(self, cj: Obj, jobs: list[Obj], status: Obj) -> None:
        active: list[Obj] = list(status.get("active") or [])
        by_uid = {r.get("uid"): r for r in active}
        live = {j["metadata"]["uid"] for j in jobs}
        for job in jobs:
            juid = job["metadata"]["uid"]
            done = finished(job)
            if juid not in by_uid and done is None and \
                    not job["metadata"].get("deletionTimestamp"):
                active.append(_ref(job))
            elif juid in by_uid and done is not None:
                active = [r for r in active if r.get("uid") != juid]
                self.recorder.event(cj, NORMAL, "SawCompletedJob",
                                    f"Saw completed job: {job['metadata']['name']}, "
                                    f"condition: {done['type']}")
                completed = (job.get("status") or {}).get("completionTime")
                if done["type"] == COMPLETE and completed:
                    last = status.get("lastSuccessfulTime")
                    if not last or parse_rfc3339(completed) > parse_rfc3339(last):
                        status["lastSuccessfulTime"] = completed
        for ref in list(active):
            if ref.get("uid") not in live and not await self._exists(ref):
                active.remove(ref)
                self.recorder.event(cj, NORMAL, "MissingJob",
                                    f"Active job went missing: {ref.get('name')}")
        if active:
            status["active"] = active
        else:
            status.pop("active", None)

    async def _exists(self, ref: Obj) -> bool:
        """Whether an active Job the informer does not show yet is really there."""
        try:
            job = await self.client.get(JOBS, ref.get("namespace"), ref.get("name", ""))
        except errors.StatusError as exc:
            if exc.code == 404:
                return False
            raise
        return bool(job["metadata"].get("uid") == ref.get("uid"))

    async def _schedule(self, key: str, cj: Obj, status: Obj) -> float | None:
        """Start the Job that is due, if any; the next scheduled time to wake up at."""
        spec = cj.get("spec") or {}
        if cj["metadata"].get("deletionTimestamp"):
            return None
        try:
            schedule = cronschedule.parse(spec.get("schedule") or "",
                                          time_zone=spec.get("timeZone"))
        except cronschedule.CronError as exc:
            self.recorder.event(cj, WARNING, "UnparseableSchedule",
                                f"unparseable schedule: {spec.get('schedule')!r} : {exc}")
            return None
        if spec.get("suspend"):
            return None
        now = self.clock.now()
        next_at = schedule.next(now)
        last = status.get("lastScheduleTime") or cj["metadata"].get("creationTimestamp")
        earliest = parse_rfc3339(last) if last else now
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, now - deadline)
        scheduled, missed = most_recent(schedule, earliest, now)
        if scheduled is None:
            return next_at
        if missed > TOO_MANY_MISSED:
            self.recorder.event(cj, WARNING, "TooManyMissedTimes",
                                f"too many missed start times: {missed}. Set or decrease "
                                ".spec.startingDeadlineSeconds or check clock skew")
        if deadline is not None and scheduled + deadline < now:
            when = datetime.fromtimestamp(scheduled, UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
            self.recorder.event(cj, WARNING, "MissSchedule",
                                f"Missed scheduled time to start a job: {when}")
            return next_at
        name = job_name(cj["metadata"]["name"], scheduled)
        active = status.get("active") or []
        if any(r.get("name") == name for r in active) or \
                status.get("lastScheduleTime") == rfc3339(scheduled):
            return next_at
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and active:
            self.recorder.event(cj, NORMAL, "JobAlreadyActive",
                                "Not starting job because prior execution is running and "
                                "concurrency policy is Forbid")
            return next_at
        if policy == "Replace":
            for ref in list(active):
                await self._delete_job(cj, ref["namespace"], ref["name"], ref.get("uid"))
                active.remove(ref)
            if not active:
                status.pop("active", None)
        job = self._new_job(cj, name, scheduled, schedule)
        try:
            created = await self.client.create(JOBS, cj["metadata"]["namespace"], job)
        except errors.StatusError as exc:
            if exc.code != 409:
                self.recorder.event(cj, WARNING, "FailedCreate",
                                    f"Error creating job: {exc.message}")
                raise
            created = await self.client.get(JOBS, cj["metadata"]["namespace"], name)
            if (controller_of(created) or {}).get("uid") != cj["metadata"]["uid"]:
                return next_at
            if finished(created) is None:
                status["active"] = [*(status.get("active") or ()), _ref(created)]
            status["lastScheduleTime"] = rfc3339(scheduled)
            return next_at
        self.recorder.event(cj, NORMAL, "SuccessfulCreate", f"Created job {name}")
        log.info("cronjob %s: created job %s", key, name)
        status["active"] = [*(status.get("active") or ()), _ref(created)]
        status["lastScheduleTime"] = rfc3339(scheduled)
        return next_at

    def _new_job(self, cj: Obj, name: str, scheduled: float,
                 schedule: cronschedule.Schedule) -> Obj:
        template = (cj.get("spec") or {}).get("jobTemplate") or {}
        tmeta = template.get("metadata") or {}
        stamp = datetime.fromtimestamp(scheduled, schedule.zone).isoformat()
        meta: Obj = {"name": name, "namespace": cj["metadata"]["namespace"],
                     "labels": dict(tmeta.get("labels") or {}),
                     "annotations": {**(tmeta.get("annotations") or {}),
                                     SCHEDULED_TIMESTAMP: stamp.replace("+00:00", "Z")},
                     "ownerReferences": [controller_ref(cj, CRONJOBS)]}
        if not meta["labels"]:
            del meta["labels"]
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
                "spec": json_copy(template.get("spec") or {})}

    async def _delete_job(self, cj: Obj, namespace: str, name: str, uid: str | None) -> bool:
        options: Obj = {"propagationPolicy": "Background"}
        if uid:
            options["preconditions"] = {"uid": uid}
        try:
            await self.client.delete(JOBS, namespace, name, options=options)
        except errors.StatusError as exc:
            if exc.code not in (404, 409):
                self.recorder.event(cj, WARNING, "FailedDelete",
                                    f"Deleted job: {exc.message}")
                raise
            return False
        self.recorder.event(cj, NORMAL, "SuccessfulDelete", f"Deleted job {name}")
        return True

    async def _cleanup(self, cj: Obj, jobs: list[Obj], status: Obj) -> None:
        """Delete the oldest finished Jobs beyond the history limits."""
        spec = cj.get("spec") or {}
        if cj["metadata"].get("deletionTimestamp"):
            return
        done = [(j, c) for j in jobs if not j["metadata"].get("deletionTimestamp")
                and (c := finished(j)) is not None]
        for wanted, limit in ((True, spec.get("successfulJobsHistoryLimit")),
                              (False, spec.get("failedJobsHistoryLimit"))):
            if limit is None:
                continue
            group = sorted((j for j, c in done if (c["type"] == COMPLETE) == wanted),
                           key=_start_key)
            for job in group[:max(0, len(group) - limit)]:
                meta = job["metadata"]
                await self._delete_job(cj, meta["namespace"], meta["name"], meta["uid"])
                if status.get("active"):
                    status["active"] = [r for r in status["active"]
                                        if r.get("uid") != meta["uid"]] or None
                    if status["active"] is None:
                        del status["active"]
