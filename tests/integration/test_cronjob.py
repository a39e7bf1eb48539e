"""The CronJob controller (with the Job controller) over a real registry, on a FakeClock."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from kubeling.api.jsoncopy import json_copy
from kubeling.client.events import EventRecorder
from kubeling.client.informer import Informers
from kubeling.controllers.base import ControllerContext
from kubeling.controllers.cronjob import CronJobController, job_name, most_recent
from kubeling.controllers.cronschedule import parse
from kubeling.controllers.job import JobController
from kubeling.utils.clock import FakeClock
from kubeling.utils.tasks import spawn
from tests.apiharness import client, kind, running_registry
from tests.integration.test_job import Env

CRONJOBS = kind("batch", "cronjobs")
JOBS = kind("batch", "jobs")


class CronEnv(Env):
    cron: CronJobController

    async def cj(self) -> dict[str, Any]:
        return await self.c.get(CRONJOBS, "default", "tick")

    async def job_names(self) -> list[str]:
        return sorted(j["metadata"]["name"] for j in (await self.c.list(JOBS, "default")).items
                      if not j["metadata"].get("deletionTimestamp"))

    async def cron_events(self, reason: str) -> list[str]:
        await self.cron.recorder.flush()
        items = (await self.c.list(kind("", "events"), "default")).items
        return [e["message"] for e in items if e["reason"] == reason
                and e["involvedObject"]["kind"] == "CronJob"]

    async def next_minute(self) -> None:
        await self.clock.advance(60)

    async def finish_job(self, name: str, phase: str = "Succeeded") -> None:
        pods = await self.wait(f"a pod of {name}", lambda: self.pods(name))
        await self.kubelet(pods[0], phase)
        await self.wait(f"{name} finished", lambda: _finished(self, name))


async def _finished(e: CronEnv, name: str) -> bool:
    job = await e.c.get(JOBS, "default", name)
    return any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
               for c in (job.get("status") or {}).get("conditions") or ())


@asynccontextmanager
async def env(tmp_path: Path) -> AsyncIterator[CronEnv]:
    async with running_registry(tmp_path) as reg:
        c = client(reg, "cronjob-test")
        clock = FakeClock(start=(time.time() // 60) * 60 + 20)
        informers = Informers(c)
        ctx = ControllerContext(c, informers, clock)
        jobs = JobController(ctx)
        cron = CronJobController(ctx)
        jobs.recorder = EventRecorder(c, jobs.name)
        cron.recorder = EventRecorder(c, cron.name)
        informers.start()
        tasks = [spawn(jobs.run(2), name="test-job"), spawn(cron.run(1), name="test-cron")]
        e = CronEnv(c, clock, jobs)
        e.cron = cron
        try:
            yield e
        finally:
            for t in tasks:
                t.cancel()
            await informers.stop()


def cronjob(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "default"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {
                "metadata": {"labels": {"app": "tick"}},
                "spec": {"template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}]}}}}, **spec}}


async def test_a_job_each_minute_and_history_limits(tmp_path: Path) -> None:
    async with env(tmp_path) as e:
        await e.c.create(CRONJOBS, "default", cronjob(successfulJobsHistoryLimit=1))
        await e.clock.advance(1)
        assert await e.job_names() == []
        await e.next_minute()
        first = job_name("tick", e.clock.now() // 60 * 60)
        await e.wait("the first job", lambda: _has(e.job_names(), first))
        job = await e.c.get(JOBS, "default", first)
        assert job["metadata"]["labels"]["app"] == "tick"
        assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
        assert job["metadata"]["annotations"][
            "batch.kubernetes.io/cronjob-scheduled-timestamp"].endswith(":00Z")
        cj = await e.wait("active", lambda: _field(e, "active"))
        assert [r["name"] for r in cj["status"]["active"]] == [first]
        assert cj["status"]["lastScheduleTime"].endswith(":00Z")
        await e.finish_job(first)
        cj = await e.wait("lastSuccessfulTime", lambda: _field(e, "lastSuccessfulTime"))
        assert "active" not in cj["status"]
        await e.next_minute()
        second = job_name("tick", e.clock.now() // 60 * 60)
        await e.wait("the second job", lambda: _has(e.job_names(), second))
        await e.finish_job(second)
        await e.wait("the first job deleted (history limit 1)",
                     lambda: _equal(e.job_names(), [second]))
        assert await e.cron_events("SuccessfulCreate") == \
            [f"Created job {first}", f"Created job {second}"]
        assert f"Saw completed job: {first}, condition: Complete" in \
            await e.cron_events("SawCompletedJob")
        assert await e.cron_events("SuccessfulDelete") == [f"Deleted job {first}"]


async def test_forbid_skips_while_a_job_runs(tmp_path: Path) -> None:
    async with env(tmp_path) as e:
        await e.c.create(CRONJOBS, "default", cronjob(concurrencyPolicy="Forbid"))
        await e.next_minute()
        first = await e.wait("a job", lambda: e.job_names())
        await e.next_minute()
        await e.wait("a skipped run", lambda: e.cron_events("JobAlreadyActive"))
        assert await e.job_names() == first


async def test_replace_deletes_the_running_job(tmp_path: Path) -> None:
    async with env(tmp_path) as e:
        await e.c.create(CRONJOBS, "default", cronjob(concurrencyPolicy="Replace"))
        await e.next_minute()
        first = (await e.wait("a job", lambda: e.job_names()))[0]
        await e.next_minute()
        second = job_name("tick", e.clock.now() // 60 * 60)
        await e.wait("only the new job", lambda: _equal(e.job_names(), [second]))
        assert await e.cron_events("SuccessfulDelete") == [f"Deleted job {first}"]
        cj = await e.wait("active is the new job", lambda: _active(e, [second]))
        assert cj["status"]["lastScheduleTime"]


async def test_suspended_cronjob_creates_nothing_until_resumed(tmp_path: Path) -> None:
    async with env(tmp_path) as e:
        await e.c.create(CRONJOBS, "default", cronjob(suspend=True))
        await e.next_minute()
        await e.next_minute()
        assert await e.job_names() == []
        cj = json_copy(await e.cj())
        cj["spec"]["suspend"] = False
        await e.c.update(CRONJOBS, cj)
        names = await e.wait("a job after resuming", lambda: e.job_names())
        # only the most recent missed time runs
        assert names == [job_name("tick", e.clock.now() // 60 * 60)]


def test_most_recent_counts_missed_times() -> None:
    every_minute = parse("* * * * *")
    t0 = 1_700_000_000 // 60 * 60
    assert most_recent(every_minute, t0, t0 + 30) == (None, 0)
    assert most_recent(every_minute, t0, t0 + 60) == (t0 + 60, 1)
    assert most_recent(every_minute, t0 + 10, t0 + 185) == (t0 + 180, 3)
    at, missed = most_recent(every_minute, t0, t0 + 86400 * 30 + 5)
    assert (at, missed) == (t0 + 86400 * 30, 43200)


async def _has(coro: Any, name: str) -> bool:
    return name in await coro


async def _equal(coro: Any, value: Any) -> bool:
    return bool(await coro == value)


async def _field(e: CronEnv, field: str) -> Any:
    cj = await e.cj()
    return cj if (cj.get("status") or {}).get(field) else None


async def _active(e: CronEnv, names: list[str]) -> Any:
    cj = await e.cj()
    got = [r["name"] for r in (cj.get("status") or {}).get("active") or ()]
    return cj if got == names else None
