"""The pod lifecycle event generator: notice container state changes by relisting.

Every ``relist_interval`` the runtime is listed; a pod whose containers
appeared, vanished or changed state (a container exited) gets its worker woken,
so a crash is acted on within a second instead of at the next periodic sync.
"""

from __future__ import annotations

import asyncio
import logging

from kubeling.kubelet.context import POD_UID
from kubeling.kubelet.interfaces import Wake
from kubeling.runtime.protocol import Runtime
from kubeling.utils import tasks
from kubeling.utils.clock import Clock
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.kubelet.pleg")


class PLEG:
    def __init__(self, runtime: Runtime, clock: Clock, *, interval: float, wake: Wake) -> None:
        self.runtime = runtime
        self.clock = clock
        self.interval = interval
        self.wake = wake
        self._seen: dict[str, tuple[str, str]] = {}  # container id -> (pod uid, state)
        self._task: asyncio.Task[None] | None = None
        self.relists = 0

    async def relist(self) -> set[str]:
        """List the runtime once; the uids of pods whose containers changed."""
        now: dict[str, tuple[str, str]] = {}
        for c in await self.runtime.list_containers():
            uid = c.labels.get(POD_UID, "")
            if uid:
                now[c.id] = (uid, c.state.value)
        changed = {uid for cid, (uid, st) in now.items() if self._seen.get(cid) != (uid, st)}
        changed |= {uid for cid, (uid, _) in self._seen.items() if cid not in now}
        self._seen = now
        self.relists += 1
        return changed

    async def run(self) -> None:
        first = True
        while True:
            try:
                changed = await self.relist()
                if not first:
                    for uid in changed:
                        self.wake(uid)
                first = False
            except Exception as exc:  # the next relist tries again
                log.warning("relist failed: %s", exc)
            await self.clock.sleep(self.interval)

    def start(self) -> None:
        self._task = spawn(self.run(), name="kubelet-pleg")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await tasks.stop(task)
