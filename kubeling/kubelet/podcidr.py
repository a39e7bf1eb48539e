"""The node's pod CIDR handed to the runtime, as the kubelet's UpdateRuntimeConfig call does.

The controller manager's node IPAM gives the Node a ``spec.podCIDR`` shortly
after it registers; a runtime with a pod network (the OCI runtime and its CNI
bridge) cannot give pods IPs before it knows it. This part follows the Node in
the agent's cache and passes every new value on; ``wait`` lets the agent hold
new pods back for a moment at start so the first ones do not fail for nothing.
"""

from __future__ import annotations

import asyncio
import logging

from kubeling.kubelet.context import KubeletContext
from kubeling.runtime.protocol import RuntimeFailure
from kubeling.utils import tasks
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.kubelet.podcidr")

POLL = 0.5  # seconds between looks at the cached Node


class PodCidr:
    def __init__(self, ctx: KubeletContext) -> None:
        self.ctx = ctx
        self.applied = ""
        self._applied = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def current(self) -> str:
        node = self.ctx.objects.node() or {}
        return str((node.get("spec") or {}).get("podCIDR") or "")

    async def sync(self) -> None:
        cidr = self.current()
        if not cidr or cidr == self.applied:
            return
        try:
            await self.ctx.runtime.update_runtime_config(cidr)
        except RuntimeFailure as exc:
            log.error("runtime refused pod CIDR %s: %s", cidr, exc.message)
            return
        log.info("pod CIDR %s given to the runtime", cidr)
        self.applied = cidr
        self._applied.set()

    async def wait(self, timeout: float) -> bool:
        """True once a pod CIDR was applied; False when none came within ``timeout``."""
        if self._applied.is_set():
            return True
        try:
            await asyncio.wait_for(self._applied.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _run(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception:
                log.exception("pod CIDR sync failed")
            await asyncio.sleep(POLL)

    def start(self) -> None:
        self._task = spawn(self._run(), name="pod-cidr")

    async def stop(self) -> None:
        if self._task is not None:
            await tasks.stop(self._task)
            self._task = None
