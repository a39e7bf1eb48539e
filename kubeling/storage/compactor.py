"""Periodic compaction, as kube-apiserver runs it against etcd.

History is kept long enough for watchers to resume (one interval at least), then dropped:
each tick compacts to the revision seen at the previous tick, so a client that listed or
watched within the last interval can still resume without a 410.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from kubeling.storage.interface import StorageError, Store

log = logging.getLogger(__name__)


async def run_compactor(
    store: Store,
    *,
    interval: float = 300.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Compact ``store`` every ``interval`` seconds to the revision of the previous tick.

    Runs until cancelled. A failed compaction is logged and retried at the next tick.
    """
    previous: int | None = None
    while True:
        await sleep(interval)
        current = await store.current_revision()
        if previous is not None and previous > await store.compacted_revision():
            try:
                await store.compact(previous)
            except StorageError as err:
                log.warning("storage: compaction to revision %d failed: %s", previous, err)
            else:
                log.info("storage: compacted to revision %d (current %d)", previous, current)
        previous = current
