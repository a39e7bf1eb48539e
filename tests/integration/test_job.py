"""The Job and TTL-after-finished controllers over a real registry.

A stand-in kubelet (the test) moves pods to Running, Succeeded or Failed
through the status subresource; time that the controllers wait on (back-off,
deadlines, TTL) is a FakeClock the test advances.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeling.api.jsoncopy import json_copy
from kubeling.client.events import EventRecorder
from kubeling.client.informer import Informers
from kubeling.client.inprocess import InProcessClient
from kubeling.controllers.base import ControllerContext
from kubeling.controllers.job import JobController, TTLAfterFinishedController
from kubeling.utils.clock import FakeClock, rfc3339
from kubeling.utils.tasks import spawn
from tests.apiharness import client, kind, running_registry
from tests.cluster import wait_for_async

JOBS = kind("batch", "jobs")
PODS = kind("", "pods")
EVENTS = kind("", "events")
FINALIZER = "batch.kubernetes.io/job-tracking"


@dataclass
class Env:
    c: InProcessClient
    clock: FakeClock
    jobs: JobController

    async def wait(self, what: str, fn: Any, timeout: float = 10.0) -> Any:
        async def probe() -> Any:
            await self.clock.advance(0.01)  # lets rate-limited retries run
            return await fn()
        return await wait_for_async(what, probe, timeout=timeout)

    async def pods(self, job: str = "pi", *, active_only: bool = False) -> list[dict[str, Any]]:
        items = (await self.c.list(PODS, "default",
                                   label_selector=f"batch.kubernetes.io/job-name={job}")).items
        if active_only:
            items = [p for p in items if not p["metadata"].get("deletionTimestamp")
                     and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        return sorted(items, key=lambda p: p["metadata"]["name"])

    async def job(self, name: str = "pi") -> dict[str, Any]:
        return await self.c.get(JOBS, "default", name)

    async def kubelet(self, pod: dict[str, Any], phase: str) -> None:
        """What a node agent reports for ``pod``: Running and Ready, or terminated."""
        p = json_copy(await self.c.get(PODS, "default", pod["metadata"]["name"]))
        now = rfc3339(self.clock.now())
        status: dict[str, Any] = {"phase": phase}
        if phase == "Running":
            status["conditions"] = [{"type": "Ready", "status": "True",
                                     "lastTransitionTime": now}]
        else:
            status["conditions"] = [{"type": "Ready", "status": "False",
                                     "lastTransitionTime": now}]
            status["containerStatuses"] = [{
                "name": "c", "image": "busybox", "imageID": "", "ready": False,
                "restartCount": 0, "state": {"terminated": {
                    "exitCode": 0 if phase == "Succeeded" else 1, "finishedAt": now}}}]
        p["status"] = status
        await self.c.update(PODS, p, subresource="status")

    async def events(self, reason: str) -> list[str]:
        await self.jobs.recorder.flush()
        items = (await self.c.list(EVENTS, "default")).items
        return [e["message"] for e in items if e["reason"] == reason]


@asynccontextmanager
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with running_registry(tmp_path) as reg:
        c = client(reg, "job-test")
        clock = FakeClock(start=time.time())
        informers = Informers(c)
        ctx = ControllerContext(c, informers, clock)
        jobs = JobController(ctx)
        # event names are made from the recorder's clock; a frozen one would repeat them
        jobs.recorder = EventRecorder(c, jobs.name)
        ttl = TTLAfterFinishedController(ctx)
        informers.start()
        tasks = [spawn(jobs.run(2), name="test-job"), spawn(ttl.run(1), name="test-ttl")]
        try:
            yield Env(c, clock, jobs)
        finally:
            for t in tasks:
                t.cancel()
            await informers.stop()


def job_obj(name: str = "pi", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}, **spec}}


def cond(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (job.get("status") or {}).get("conditions") or ():
        if c["type"] == type_:
            return c
    return None


async def test_completions_with_parallelism(tmp_path: Path) -> None:
    async with env(tmp_path) as e:
        await e.c.create(JOBS, "default", job_obj(completions=3, parallelism=2))
        pods = await e.wait("two pods", lambda: _n(e.pods(), 2))
        assert all(p["metadata"]["finalizers"] == [FINALIZER] for p in pods)
        assert all(p["metadata"]["ownerReferences"][0]["kind"] == "Job" for p in pods)
        await e.wait("active 2", lambda: _status(e, "active", 2))
        for p in pods:
            await e.kubelet(p, "Succeeded")
        third = await e.wait("a third pod", lambda: _n(e.pods(active_only=True), 1))
        job = await e.wait("succeeded 2", lambda: _status(e, "succeeded", 2))
        assert job["status"]["active"] == 1
        await e.kubelet(third[0], "Succeeded")
        job = await e.wait("Complete", lambda: _cond(e, "Complete"))
        assert cond(job, "SuccessCriteriaMet")["reason"] == "CompletionsReached"  # type: ignore
        assert cond(job, "Complete")["message"] == "Reached expected number of succeeded pods"  # type: ignore
        status = job["status"]
        assert status["succeeded"] == 3 and "active" not in status and status["ready"] == 0
        assert status["startTime"] and status["completionTime"]
        assert status.get("uncountedTerminatedPods") == {}
        assert all(not p["metadata"].get("finalizers") for p in await e.pods())
        created = await e.wait("events", lambda: _n(e.events("SuccessfulCreate"), 3))
        assert all(m.startswith("Created pod: pi-") for m in created)
        assert await e.events("Completed") == ["Job completed"]


async def test_backoff_limit_with_back_off_between_retries(tmp_path: Path) -> None:
    async with env(tmp_path) as e:
        await e.c.create(JOBS, "default", job_obj(backoffLimit=1))
        first = await e.wait("a pod", lambda: _n(e.pods(), 1))
        await e.kubelet(first[0], "Failed")
        await e.wait("failed 1", lambda: _status(e, "failed", 1))
        await e.clock.advance(5)
        assert len(await e.pods()) == 1, "the replacement waits out the 10 s back-off"
        await e.clock.advance(6)
        pods = await e.wait("the replacement", lambda: _n(e.pods(active_only=True), 1))
        await e.kubelet(pods[0], "Failed")
        job = await e.wait("Failed", lambda: _cond(e, "Failed"))
        assert cond(job, "FailureTarget")["reason"] == "BackoffLimitExceeded"  # type: ignore
        assert cond(job, "Failed")["message"] == "Job has reached the specified backoff limit"  # type: ignore
        assert job["status"]["failed"] == 2
        assert "completionTime" not in job["status"]
        assert await e.wait("event", lambda: e.events("BackoffLimitExceeded")) == \
            ["Job has reached the specified backoff limit"]


async def test_indexed_job(tmp_path: Path) -> None:
    async with env(tmp_path) as e:
        await e.c.create(JOBS, "default", job_obj(completions=3, parallelism=3,
                                                  completionMode="Indexed"))
        pods = await e.wait("three pods", lambda: _n(e.pods(), 3))
        index = "batch.kubernetes.io/job-completion-index"
        by_index = {p["metadata"]["annotations"][index]: p for p in pods}
        assert sorted(by_index) == ["0", "1", "2"]
        assert by_index["1"]["metadata"]["labels"][index] == "1"
        assert by_index["1"]["spec"]["hostname"] == "pi-1"
        assert by_index["1"]["spec"]["containers"][0]["env"][0]["name"] == "JOB_COMPLETION_INDEX"
        await e.kubelet(by_index["1"], "Succeeded")
        job = await e.wait("index 1 done", lambda: _status(e, "completedIndexes", "1"))
        assert job["status"]["succeeded"] == 1
        await e.kubelet(by_index["0"], "Failed")
        await e.clock.advance(11)
        again = await e.wait("index 0 again", lambda: _n(e.pods(active_only=True), 2))
        assert sorted(p["metadata"]["annotations"][index] for p in again) == ["0", "2"]
        for p in again:
            await e.kubelet(p, "Succeeded")
        job = await e.wait("Complete", lambda: _cond(e, "Complete"))
        assert job["status"]["completedIndexes"] == "0-2"
        assert job["status"]["succeeded"] == 3 and job["status"]["failed"] == 1


async def test_active_deadline(tmp_path: Path) -> None:
    async with env(tmp_path) as e:
        await e.c.create(JOBS, "default", job_obj(parallelism=2, completions=4,
                                                  activeDeadlineSeconds=30))
        pods = await e.wait("two pods", lambda: _n(e.pods(), 2))
        await e.kubelet(pods[0], "Running")
        await e.clock.advance(31)
        job = await e.wait("Failed", lambda: _cond(e, "Failed"))
        assert cond(job, "Failed")["reason"] == "DeadlineExceeded"  # type: ignore
        assert cond(job, "Failed")["message"] == \
            "Job was active longer than specified deadline"  # type: ignore
        assert job["status"]["failed"] == 2
        await e.wait("pods deleted", lambda: _n(e.pods(), 0))


async def test_suspend_and_resume(tmp_path: Path) -> None:
    async with env(tmp_path) as e:
        await e.c.create(JOBS, "default", job_obj(suspend=True))
        job = await e.wait("Suspended", lambda: _cond(e, "Suspended"))
        assert "startTime" not in job["status"]
        assert await e.pods() == []
        j = json_copy(job)
        j["spec"]["suspend"] = False
        await e.c.update(JOBS, j)
        await e.wait("a pod", lambda: _n(e.pods(), 1))
        job = await e.wait("resumed", lambda: _status_cond(e, "Suspended", "False"))
        assert cond(job, "Suspended")["reason"] == "JobResumed"  # type: ignore
        assert job["status"]["startTime"]
        assert await e.events("Suspended") == ["Job suspended"]


async def test_ttl_after_finished_deletes_the_job(tmp_path: Path) -> None:
    async with env(tmp_path) as e:
        await e.c.create(JOBS, "default", job_obj(ttlSecondsAfterFinished=60))
        pods = await e.wait("a pod", lambda: _n(e.pods(), 1))
        await e.kubelet(pods[0], "Succeeded")
        await e.wait("Complete", lambda: _cond(e, "Complete"))
        await e.clock.advance(30)
        assert not (await e.job())["metadata"].get("deletionTimestamp")
        await e.clock.advance(31)

        async def deleting() -> bool:
            try:
                job = await e.job()
            except Exception:
                return True  # gone: the garbage collector finished the foreground deletion
            return "foregroundDeletion" in (job["metadata"].get("finalizers") or ())
        await e.wait("the job deleted in the foreground", deleting)


async def _n(coro: Any, n: int) -> Any:
    items = await coro
    return (items or True) if len(items) == n else None


async def _status(e: Env, field: str, value: Any) -> Any:
    job = await e.job()
    return job if (job.get("status") or {}).get(field) == value else None


async def _cond(e: Env, type_: str) -> Any:
    return await _status_cond(e, type_, "True")


async def _status_cond(e: Env, type_: str, status: str) -> Any:
    job = await e.job()
    c = cond(job, type_)
    return job if c is not None and c["status"] == status else None
