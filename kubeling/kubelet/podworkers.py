"""Pod workers: one task per pod, the only place a pod's containers are changed.

``update`` hands a worker the latest desired pod (from the API or a static
manifest), ``wake`` asks it to re-sync soon (a probe result, a container exit
seen by the PLEG), ``remove`` says the pod is gone from its source. Each worker
syncs its pod at least every ``sync_interval`` and whenever a back-off ends.
A pod the API is deleting is terminated gracefully (preStop, SIGTERM, the grace
period, SIGKILL), its volumes torn down, its final status written, and then it
is deleted for good. Housekeeping removes whatever the runtime runs that no
source wants any more, with its volumes, pod directory and logs.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass, field
from typing import Any

from kubeling.client.interface import Obj
from kubeling.kubelet import containers as cspec
from kubeling.kubelet.context import KubeletContext
from kubeling.kubelet.interfaces import Probes, Volumes
from kubeling.kubelet.pleg import PLEG
from kubeling.kubelet.podruntime import PodRuntime, observe_all
from kubeling.kubelet.podstatus import TERMINAL
from kubeling.kubelet.status import StatusManager
from kubeling.kubelet.sync import PodSyncer
from kubeling.runtime.protocol import NotFound
from kubeling.utils import tasks
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.kubelet.podworkers")

RETRY_AFTER_ERROR = 2.0


def _significant(pod: Obj) -> Any:
    meta = pod["metadata"]
    return (meta.get("generation"), meta.get("deletionTimestamp"),
            meta.get("deletionGracePeriodSeconds"), meta.get("labels"),
            meta.get("annotations"), pod.get("spec"))


@dataclass
class _Worker:
    uid: str
    pod: Obj
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    removed: bool = False
    terminal: bool = False  # Succeeded/Failed: nothing more is started
    cleaned: bool = False  # a terminal pod's sandbox stopped and volumes torn down
    task: asyncio.Task[None] | None = None


class PodWorkers:
    def __init__(self, ctx: KubeletContext, *, volumes: Volumes, probes: Probes,
                 status: StatusManager) -> None:
        self.ctx = ctx
        self.volumes = volumes
        self.probes = probes
        self.status = status
        self.syncer = PodSyncer(ctx, volumes=volumes, probes=probes, status=status)
        self.pleg = PLEG(ctx.runtime, ctx.clock, interval=ctx.options.relist_interval,
                         wake=self.wake)
        self._workers: dict[str, _Worker] = {}
        self._finished: set[str] = set()  # terminated; ignored until housekeeping forgets
        self._started = False
        self.adopted: dict[str, PodRuntime] = {}
        self.syncs = 0

    # ----- the sources' side ------------------------------------------------------------

    def update(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        if uid in self._finished:
            return
        worker = self._workers.get(uid)
        if worker is None:
            worker = self._workers[uid] = _Worker(uid, pod)
            if self._started:
                self._spawn(worker)
            return
        if worker.removed:
            return
        changed = _significant(worker.pod) != _significant(pod)
        worker.pod = pod
        if changed:
            worker.wakeup.set()

    def remove(self, uid: str) -> None:
        worker = self._workers.get(uid)
        if worker is not None:
            worker.removed = True
            worker.wakeup.set()

    def wake(self, uid: str) -> None:
        worker = self._workers.get(uid)
        if worker is not None:
            worker.wakeup.set()

    def known(self) -> set[str]:
        return set(self._workers)

    # ----- lifecycle -------------------------------------------------------------------

    async def adopt(self) -> None:
        """Learn what the runtime already runs: every later sync finds these containers by
        their labels and carries on with them and their restart counts."""
        self.adopted = await observe_all(self.ctx.runtime)
        if self.adopted:
            log.info("adopting %d pods from the runtime", len(self.adopted))

    def start(self) -> None:
        self._started = True
        for worker in self._workers.values():
            if worker.task is None:
                self._spawn(worker)
        self.pleg.start()

    async def stop(self) -> None:
        """Stop the workers; containers keep running (the agent may be restarting)."""
        self._started = False
        await self.pleg.stop()
        await tasks.stop(*(w.task for w in self._workers.values()))
        for worker in self._workers.values():
            worker.task = None

    def _spawn(self, worker: _Worker) -> None:
        meta = worker.pod["metadata"]
        worker.task = spawn(self._run(worker),
                            name=f"pod-worker-{meta.get('namespace')}/{meta['name']}")

    # ----- one pod -----------------------------------------------------------------------

    async def _run(self, worker: _Worker) -> None:
        while True:
            pod = worker.pod
            if worker.removed or pod["metadata"].get("deletionTimestamp"):
                try:
                    await self._terminate(worker)
                    return
                except Exception:
                    log.exception("terminating pod %s failed; retrying", worker.uid)
                    await self._wait(worker, RETRY_AFTER_ERROR)
                    continue
            retry_in: float | None
            try:
                outcome = await self.syncer.sync(pod, terminal=worker.terminal)
                self.syncs += 1
                retry_in = outcome.retry_in
                if outcome.phase in TERMINAL:
                    worker.terminal = True
                if worker.terminal and not worker.cleaned:
                    await self._stop_terminal(worker)
            except Exception:
                log.exception("sync of pod %s failed", worker.uid)
                retry_in = RETRY_AFTER_ERROR
            interval = self.ctx.options.sync_interval
            await self._wait(worker, interval if retry_in is None else min(retry_in, interval))

    async def _wait(self, worker: _Worker, timeout: float) -> None:
        if not worker.wakeup.is_set():
            sleeper = asyncio.ensure_future(self.ctx.clock.sleep(max(timeout, 0.05)))
            waiter = asyncio.ensure_future(worker.wakeup.wait())
            try:
                await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waiter.cancel()
        worker.wakeup.clear()

    async def _stop_terminal(self, worker: _Worker) -> None:
        """A pod that has finished for good: stop its sandbox and release its volumes; its
        exited containers stay for their logs until the pod is deleted."""
        await self.syncer.terminate(worker.pod, 0)
        await self.volumes.teardown(worker.uid)
        worker.cleaned = True

    async def _terminate(self, worker: _Worker) -> None:
        pod = worker.pod
        meta = pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = cspec.grace_period(pod)
        state = await self.syncer.terminate(pod, float(grace))
        await self.volumes.teardown(worker.uid)
        if not worker.removed:
            self.syncer.report(pod, state, terminal=True)
            await self.status.finish(pod)
        else:
            await self._remove_runtime_pod(state)
            self._remove_dirs(pod)
            self.status.forget(worker.uid)
        self.syncer.forget(worker.uid)
        self._finished.add(worker.uid)
        self._workers.pop(worker.uid, None)

    # ----- housekeeping -------------------------------------------------------------------

    async def _remove_runtime_pod(self, state: PodRuntime) -> None:
        for sb in state.sandboxes:
            try:
                await self.ctx.runtime.stop_pod_sandbox(sb.id)
                await self.ctx.runtime.remove_pod_sandbox(sb.id)
            except NotFound:
                pass
        for c in state.containers:
            try:
                await self.ctx.runtime.remove_container(c.id)
            except NotFound:
                pass

    def _remove_dirs(self, pod: Obj) -> None:
        meta = pod["metadata"]
        shutil.rmtree(self.ctx.options.pod_dir(meta["uid"]), ignore_errors=True)
        shutil.rmtree(self.ctx.options.pod_log_dir(meta.get("namespace", ""), meta["name"],
                                                   meta["uid"]), ignore_errors=True)

    async def housekeeping(self, desired: set[str]) -> None:
        """Remove what runs here but no source wants: runtime pods, volumes, dirs, logs."""
        for uid, worker in list(self._workers.items()):
            if uid not in desired and not worker.removed:
                self.remove(uid)
        self._finished &= desired
        active = desired | set(self._workers)
        for uid, state in (await observe_all(self.ctx.runtime)).items():
            if uid in active:
                continue
            running = state.running()
            if running:
                log.info("killing %d containers of pod %s, which is no longer wanted",
                         len(running), uid)
                await asyncio.gather(*(self._stop_orphan(c.id, c.annotations)
                                       for c in running))
            await self._remove_runtime_pod(state)
        await self.volumes.cleanup_orphans(active)
        self._remove_orphan_dirs(active)
        self.syncer.backoff.gc()

    async def _stop_orphan(self, cid: str, annotations: Any) -> None:
        from kubeling.kubelet.context import TERMINATION_GRACE_PERIOD

        try:
            grace = float(annotations.get(TERMINATION_GRACE_PERIOD, 30))
        except ValueError:
            grace = 30.0
        try:
            await self.ctx.runtime.stop_container(cid, max(grace, 2.0))
        except NotFound:
            pass

    def _remove_orphan_dirs(self, active: set[str]) -> None:
        opts = self.ctx.options
        if opts.pods_dir.is_dir():
            for path in opts.pods_dir.iterdir():
                if path.name not in active and path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
        if opts.logs_dir.is_dir():
            for path in opts.logs_dir.iterdir():
                uid = path.name.rsplit("_", 1)[-1]
                if uid not in active and path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
