"""Image garbage collection: free the image filesystem before it fills, as the kubelet does.

Every ``image_gc_interval`` the disk holding the image store is measured; above
``image_gc_high_percent`` used, images no container uses (running or not) are
removed — those never seen in use first, then the least recently used — until
usage is back under ``image_gc_low_percent``. The times an image was last seen
in use are kept in memory only, as the kubelet's are: after a restart every
image starts "just used". One log line and one Node event per collection.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from kubeling.client.events import NORMAL, WARNING
from kubeling.kubelet.context import KubeletContext
from kubeling.runtime.protocol import RuntimeFailure
from kubeling.utils import tasks
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.kubelet.imagegc")


@dataclass(frozen=True)
class DiskUsage:
    total: int
    used: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.total if self.total else 0.0


def disk_usage(path: str) -> DiskUsage:
    usage = shutil.disk_usage(path)
    return DiskUsage(total=usage.total, used=usage.total - usage.free)


class ImageGC:
    def __init__(self, ctx: KubeletContext, *,
                 measure: Callable[[], DiskUsage] | None = None) -> None:
        self.ctx = ctx
        # The agent's root holds the image store (which a process runtime never creates).
        self.measure = measure or (lambda: disk_usage(str(ctx.options.root_dir)))
        self.last_used: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def _in_use(self) -> set[str]:
        used = {c.image_ref for c in await self.ctx.runtime.list_containers()}
        now = self.ctx.clock.now()
        for ref in used:
            self.last_used[ref] = now
        return used

    async def collect(self) -> int:
        """One pass; the number of images removed."""
        opts = self.ctx.options
        usage = self.measure()
        in_use = await self._in_use()
        if usage.percent < opts.image_gc_high_percent:
            return 0
        target = usage.total * opts.image_gc_low_percent / 100
        to_free = usage.used - target
        images = [i for i in await self.ctx.runtime.list_images() if i.id not in in_use]
        images.sort(key=lambda i: (self.last_used.get(i.id, 0.0), -i.size))
        removed, freed = 0, 0
        for image in images:
            if freed >= to_free:
                break
            try:
                await self.ctx.runtime.remove_image(image.id)
            except RuntimeFailure as exc:
                log.warning("image %s not removed: %s", image.id, exc.message)
                continue
            name = image.repo_tags[0] if image.repo_tags else image.id
            log.info("image %s removed (%d bytes) to free disk space", name, image.size)
            freed += image.size
            removed += 1
            self.last_used.pop(image.id, None)
        node = {"kind": "Node", "apiVersion": "v1",
                "metadata": {"name": opts.node_name, "uid": opts.node_name}}
        if freed < to_free:
            self.ctx.recorder.event(
                node, WARNING, "FreeDiskSpaceFailed",
                f"Failed to garbage collect required amount of images. Attempted to free "
                f"{int(to_free)} bytes, but only found {freed} bytes eligible to free.")
        elif removed:
            self.ctx.recorder.event(node, NORMAL, "ImageGCed",
                                    f"Removed {removed} unused images ({freed} bytes)")
        return removed

    async def _run(self) -> None:
        while True:
            await self.ctx.clock.sleep(self.ctx.options.image_gc_interval)
            try:
                await self.collect()
            except Exception:
                log.exception("image garbage collection failed")

    def start(self) -> None:
        self._task = spawn(self._run(), name="image-gc")

    async def stop(self) -> None:
        await tasks.stop(self._task)
        self._task = None
