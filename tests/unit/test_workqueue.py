"""The work queue's promises: de-duplication, one worker per key, back-off on a fake clock."""

from __future__ import annotations

import asyncio

from kubeling.client.workqueue import ShutDown, WorkQueue
from kubeling.utils.clock import FakeClock


async def test_a_waiting_key_is_queued_once() -> None:
    q = WorkQueue("t")
    for _ in range(3):
        q.add("a")
    q.add("b")
    assert len(q) == 2
    assert await q.get() == "a"
    assert await q.get() == "b"


async def test_a_key_being_processed_comes_back_after_done_not_before() -> None:
    q = WorkQueue("t")
    q.add("a")
    key = await q.get()
    q.add("a")  # changed while a worker holds it
    assert len(q) == 0
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not second.done()
    q.done(key)
    assert await asyncio.wait_for(second, 1) == "a"


async def test_rate_limited_back_off_doubles_and_forget_resets() -> None:
    clock = FakeClock()
    q = WorkQueue("t", clock=clock, base_delay=1.0, max_delay=4.0)
    delays = [q.when("k") for _ in range(5)]
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]
    q.forget("k")
    q.add_rate_limited("k")  # one second
    await clock.advance(0.5)
    assert len(q) == 0
    await clock.advance(0.6)
    assert len(q) == 1 and q.num_requeues("k") == 1


async def test_add_after_keeps_the_earliest_deadline() -> None:
    clock = FakeClock()
    q = WorkQueue("t", clock=clock)
    q.add_after("k", 10)
    q.add_after("k", 3)
    await clock.advance(3.5)
    assert await asyncio.wait_for(q.get(), 1) == "k"
    q.done("k")
    await clock.advance(10)
    assert len(q) == 0


async def test_shutdown_releases_waiting_workers() -> None:
    q = WorkQueue("t")
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shutdown()
    try:
        await asyncio.wait_for(waiter, 1)
    except ShutDown:
        pass
    else:
        raise AssertionError("get() returned after shutdown")
