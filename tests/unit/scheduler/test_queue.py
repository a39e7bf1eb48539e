"""The scheduling queue on a fake clock: priority order, back-off, events and the flush."""

from __future__ import annotations

from kubeling.scheduler.framework import Event
from kubeling.scheduler.nodeinfo import PodInfo
from kubeling.scheduler.queue import SchedulingQueue
from kubeling.utils.clock import FakeClock
from tests.unit.scheduler.util import pod

EVENTS = {"NodeResourcesFit": Event.NODE_ADD | Event.ASSIGNED_POD_DELETE,
          "NodeAffinity": Event.NODE_ADD | Event.NODE_LABEL}


def test_priority_then_age() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock=clock)
    q.add(PodInfo(pod("old")))
    clock._mono += 1
    q.add(PodInfo(pod("new")))
    q.add(PodInfo(pod("vip", priority=1000)))
    assert [q.pop_nowait().info.name for _ in range(3)] == ["vip", "old", "new"]  # type: ignore[union-attr]
    assert q.pop_nowait() is None


def test_backoff_doubles_to_ten_seconds() -> None:
    q = SchedulingQueue(clock=FakeClock())
    q.add(PodInfo(pod("p")))
    qp = q.pop_nowait()
    assert qp is not None
    durations = []
    for attempts in range(1, 7):
        qp.attempts = attempts
        durations.append(q.backoff_duration(qp))
    assert durations == [1, 2, 4, 8, 10, 10]


async def test_unschedulable_pod_moves_on_a_helpful_event_only() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock=clock, plugin_events=EVENTS)
    q.add(PodInfo(pod("p")))
    qp = q.pop_nowait()
    assert qp is not None
    q.requeue(qp, unschedulable_plugins={"NodeAffinity"})
    assert q.location("default/p") == "unschedulable"
    assert q.on_event(Event.ASSIGNED_POD_DELETE) == 0
    assert q.location("default/p") == "unschedulable"
    assert q.on_event(Event.NODE_LABEL) == 1
    assert q.location("default/p") == "backoff"  # still inside its 1 s back-off
    await clock.advance(1.1)
    q.flush_backoff_completed()
    assert q.location("default/p") == "active"


async def test_event_during_the_cycle_sends_the_pod_to_backoff() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock=clock, plugin_events=EVENTS)
    q.add(PodInfo(pod("p")))
    qp = q.pop_nowait()
    assert qp is not None
    q.on_event(Event.NODE_ADD)  # arrives while the pod is being scheduled
    q.requeue(qp, unschedulable_plugins={"NodeResourcesFit"})
    assert q.location("default/p") == "backoff"


async def test_flush_after_five_minutes_and_background_flushers() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock=clock, plugin_events=EVENTS)
    q.add(PodInfo(pod("p")))
    qp = q.pop_nowait()
    assert qp is not None
    q.requeue(qp, unschedulable_plugins={"NodeAffinity"})
    import asyncio
    tasks = [asyncio.ensure_future(q.run_unschedulable_flusher()),
             asyncio.ensure_future(q.run_backoff_flusher())]
    await asyncio.sleep(0)
    await clock.advance(290)
    assert q.location("default/p") == "unschedulable"
    await clock.advance(40)
    assert q.location("default/p") == "active"
    popped = await asyncio.wait_for(q.pop(), 1)
    assert popped.info.name == "p" and popped.attempts == 2
    q.close()
    for t in tasks:
        t.cancel()


def test_deleted_while_in_flight_is_not_requeued() -> None:
    q = SchedulingQueue(clock=FakeClock())
    q.add(PodInfo(pod("p")))
    qp = q.pop_nowait()
    assert qp is not None
    q.delete("default/p")
    q.requeue(qp, unschedulable_plugins=set())
    assert q.location("default/p") is None and len(q) == 0
