"""Leader election on a fake clock: one leader at a time, takeover only after expiry by the
candidate's own clock, transitions counted, release on stop hands over at once."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kubeling.api import errors
from kubeling.api.jsoncopy import json_copy
from kubeling.api.kinds import Kind
from kubeling.client.interface import Obj
from kubeling.client.leader import LeaderElector
from kubeling.utils.clock import FakeClock, parse_rfc3339


class Leases:
    """Lease storage with resourceVersion compare-and-swap, shared by the fake clients."""

    def __init__(self) -> None:
        self.objects: dict[str, Obj] = {}
        self.revision = 0
        self.writes = 0


class FakeClient:
    """The three verbs leader election uses; ``cut`` makes this client unable to reach the API."""

    def __init__(self, store: Leases) -> None:
        self.store = store
        self.cut = False

    def _check(self) -> None:
        if self.cut:
            raise ConnectionError("unreachable")

    async def get(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        self._check()
        if name not in self.store.objects:
            raise errors.not_found("leases", name, "coordination.k8s.io")
        return json_copy(self.store.objects[name])

    async def create(self, kind: Kind, namespace: str | None, obj: Obj) -> Obj:
        self._check()
        name = obj["metadata"]["name"]
        if name in self.store.objects:
            raise errors.already_exists("leases", name, "coordination.k8s.io")
        return self._store(obj)

    async def update(self, kind: Kind, obj: Obj, *, subresource: str = "") -> Obj:
        self._check()
        name = obj["metadata"]["name"]
        current = self.store.objects.get(name)
        if current is None:
            raise errors.not_found("leases", name, "coordination.k8s.io")
        if obj["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise errors.stale_conflict("leases", name, "coordination.k8s.io")
        return self._store(obj)

    def _store(self, obj: Obj) -> Obj:
        self.store.revision += 1
        self.store.writes += 1
        new = json_copy(obj)
        new["metadata"]["resourceVersion"] = str(self.store.revision)
        self.store.objects[new["metadata"]["name"]] = new
        return json_copy(new)


async def settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0)


async def advance(clock: FakeClock, seconds: float, step: float = 0.1) -> None:
    for _ in range(round(seconds / step)):
        await clock.advance(step)
        await settle()


class Candidate:
    def __init__(self, store: Leases, clock: FakeClock, identity: str) -> None:
        self.client = FakeClient(store)
        self.elector = LeaderElector(self.client, name="lock", identity=identity,  # type: ignore[arg-type]
                                     clock=clock)
        self.led = 0
        self.cancelled = False
        self.task: asyncio.Task[None] | None = None

    async def lead(self) -> None:
        self.led += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    def start(self) -> None:
        self.task = asyncio.create_task(self.elector.run(self.lead))


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Leases, FakeClock, Candidate, Candidate]]:
    store, clock = Leases(), FakeClock()
    a, b = Candidate(store, clock, "a"), Candidate(store, clock, "b")
    a.start()
    await settle()
    b.start()
    await settle()
    yield store, clock, a, b
    for c in (a, b):
        assert c.task is not None
        c.task.cancel()
        await asyncio.gather(c.task, return_exceptions=True)


def spec(store: Leases) -> dict[str, Any]:
    return store.objects["lock"]["spec"]


async def test_exactly_one_leads_and_renews(pair: Any) -> None:
    store, clock, a, b = pair
    first = dict(spec(store))
    assert a.elector.is_leader and not b.elector.is_leader and a.led == 1 and b.led == 0
    assert first["holderIdentity"] == "a" and first["leaseDurationSeconds"] == 15
    assert first["leaseTransitions"] == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", first["renewTime"])
    for _ in range(30):
        await advance(clock, 1.0)
        assert a.elector.is_leader and not b.elector.is_leader
        assert spec(store)["holderIdentity"] == "a"
    now = spec(store)
    assert now["acquireTime"] == first["acquireTime"] and now["leaseTransitions"] == 0
    assert parse_rfc3339(now["renewTime"]) - parse_rfc3339(first["renewTime"]) >= 28
    assert b.led == 0 and b.elector.leader == "a"


async def test_takeover_only_after_the_lease_expires(pair: Any) -> None:
    store, clock, a, b = pair
    await advance(clock, 5.0)
    a.client.cut = True  # a can no longer renew
    last_renewal = parse_rfc3339(spec(store)["renewTime"])
    # a keeps leading until its renew deadline (10 s) has passed without a renewal.
    await advance(clock, 9.0)
    assert a.elector.is_leader and not a.cancelled
    await advance(clock, 3.5)
    assert not a.elector.is_leader and a.cancelled and a.task.done()
    assert a.task.exception() is None
    # b waits a full lease duration (15 s) after it last saw the lease change.
    # b notices a's last renewal at its next poll (at most 2 s + 120% jitter later) and
    # retries as often once the lease has expired.
    while not b.elector.is_leader:
        await advance(clock, 0.1)
        assert clock.now() - last_renewal < 15 + 2 * (2 * 2.2) + 0.5
    assert clock.now() - last_renewal >= 15
    assert b.led == 1
    assert spec(store)["holderIdentity"] == "b" and spec(store)["leaseTransitions"] == 1
    # a comes back: it sees b renewing and stays a follower.
    a.client.cut = False
    a.start()
    await advance(clock, 40.0)
    assert b.elector.is_leader and not a.elector.is_leader
    assert spec(store)["leaseTransitions"] == 1


async def test_release_on_stop_hands_over_at_once(pair: Any) -> None:
    store, clock, a, b = pair
    await advance(clock, 3.0)
    a.task.cancel()
    await asyncio.gather(a.task, return_exceptions=True)
    assert a.cancelled and not a.elector.is_leader
    assert spec(store)["holderIdentity"] == "" and spec(store)["leaseDurationSeconds"] == 1
    stopped = clock.monotonic()
    while not b.elector.is_leader:
        await advance(clock, 0.1)
    # One retry of b (at most 2 s + jitter), far sooner than the 15 s lease duration.
    assert clock.monotonic() - stopped <= 2 * 2.2 + 0.2
    assert spec(store)["holderIdentity"] == "b" and spec(store)["leaseTransitions"] == 1


async def test_lead_returning_ends_the_term_and_releases() -> None:
    store, clock = Leases(), FakeClock()
    client = FakeClient(store)
    elector = LeaderElector(client, name="lock", identity="a", clock=clock)  # type: ignore[arg-type]
    done: list[bool] = []

    async def lead() -> None:
        await clock.sleep(5)
        done.append(True)

    task = asyncio.create_task(elector.run(lead))
    await advance(clock, 6.0)
    assert task.done() and done == [True] and task.exception() is None
    assert spec(store)["holderIdentity"] == ""

    async def crash() -> None:
        raise RuntimeError("boom")

    again = asyncio.create_task(elector.run(crash))
    await advance(clock, 1.0)
    assert again.done() and isinstance(again.exception(), RuntimeError)
    assert spec(store)["holderIdentity"] == "" and spec(store)["leaseTransitions"] == 1


async def test_a_lost_conditional_write_does_not_make_two_leaders() -> None:
    store, clock = Leases(), FakeClock()
    a = Candidate(store, clock, "a")
    b = Candidate(store, clock, "b")
    # Both race for a lease that does not exist yet: one create wins, the other gets 409.
    a.start()
    b.start()
    await settle()
    await advance(clock, 20.0)
    assert [a.elector.is_leader, b.elector.is_leader].count(True) == 1
    for c in (a, b):
        assert c.task is not None
        c.task.cancel()
        await asyncio.gather(c.task, return_exceptions=True)


def test_durations_must_nest() -> None:
    with pytest.raises(ValueError):
        LeaderElector(FakeClient(Leases()), name="x", identity="a",  # type: ignore[arg-type]
                      lease_duration=10, renew_deadline=10)
