"""Guarded background tasks: named, crash-logged, and cancelled on shutdown.

No component creates a bare ``asyncio.create_task``: a task that dies
silently is a component that stopped working without a word.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("kubeling.tasks")

_TASKS: set[asyncio.Task[Any]] = set()


def spawn(coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
    """Start ``coro`` as a task called ``name``; log it if it crashes."""
    task = asyncio.create_task(coro, name=name)
    _TASKS.add(task)
    task.add_done_callback(_done)
    return task


def _done(task: asyncio.Task[Any]) -> None:
    _TASKS.discard(task)
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("task %s crashed: %r", task.get_name(), exc, exc_info=exc)


async def cancel_all(timeout: float = 5.0) -> None:
    """Cancel every guarded task still running and wait for them to finish."""
    loop = asyncio.get_running_loop()
    for t in [t for t in _TASKS if t.get_loop() is not loop]:
        _TASKS.discard(t)  # left over from a loop that has ended (tests run many loops)
    tasks = [t for t in _TASKS if not t.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)


async def stop(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel ``tasks`` (None is skipped) and wait until they have ended; what they raise
    on the way out is theirs to log, not the caller's to handle."""
    live = [t for t in tasks if t is not None]
    for t in live:
        t.cancel()
    for t in live:
        try:
            await t
        except (asyncio.CancelledError, Exception):
            pass
