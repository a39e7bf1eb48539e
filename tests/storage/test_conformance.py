"""The storage conformance suite: what every backend must do, through the Store protocol.

Revisions are checked relative to the revision a test starts at, and keys live under a
prefix of their own, so a backend shared between tests (a real etcd) runs the suite too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from kubeling.storage import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RevisionMismatchError,
    Store,
    guaranteed_update,
    open_store,
)

P = "/registry/conformance/"


async def next_events(watch: AsyncIterator[Event], n: int, within: float = 10.0) -> list[Event]:
    events: list[Event] = []

    async def take() -> None:
        async for event in watch:
            events.append(event)
            if len(events) == n:
                return

    await asyncio.wait_for(take(), within)
    return events


async def nothing_more(watch: AsyncIterator[Event]) -> bool:
    try:
        await asyncio.wait_for(anext(watch), 0.2)
    except TimeoutError:
        return True
    return False


async def test_create_get(store: Store) -> None:
    r0 = await store.current_revision()
    assert r0 >= 1  # revision 0 always means "current", never a state of the store
    assert (await store.list(P)).revision == r0
    kv = await store.create(P + "a", b"1")
    assert kv == KeyValue(P + "a", b"1", r0 + 1, r0 + 1)
    assert await store.get(P + "a") == kv
    assert await store.get(P + "missing") is None
    assert await store.current_revision() == r0 + 1


async def test_create_existing_fails_without_using_a_revision(store: Store) -> None:
    await store.create(P + "a", b"1")
    r = await store.current_revision()
    with pytest.raises(KeyExistsError) as err:
        await store.create(P + "a", b"2")
    assert err.value.key == P + "a"
    assert await store.current_revision() == r
    assert (await store.get(P + "a")) == KeyValue(P + "a", b"1", r, r)
    assert (await store.create(P + "b", b"x")).mod_revision == r + 1


async def test_update_is_compare_and_swap(store: Store) -> None:
    created = await store.create(P + "a", b"1")
    updated = await store.update(P + "a", b"2", expected_mod_revision=created.mod_revision)
    assert updated == KeyValue(P + "a", b"2", created.create_revision, created.mod_revision + 1)
    with pytest.raises(RevisionMismatchError) as err:
        await store.update(P + "a", b"3", expected_mod_revision=created.mod_revision)
    assert err.value.current == updated
    assert await store.get(P + "a") == updated
    with pytest.raises(KeyNotFoundError):
        await store.update(P + "missing", b"1", expected_mod_revision=1)


async def test_delete(store: Store) -> None:
    created = await store.create(P + "a", b"1")
    with pytest.raises(RevisionMismatchError) as err:
        await store.delete(P + "a", expected_mod_revision=created.mod_revision + 100)
    assert err.value.current == created
    last, rev = await store.delete(P + "a", expected_mod_revision=created.mod_revision)
    assert last == created
    assert rev == created.mod_revision + 1 == await store.current_revision()
    assert await store.get(P + "a") is None
    with pytest.raises(KeyNotFoundError):
        await store.delete(P + "a")
    again = await store.create(P + "a", b"2")
    assert again.create_revision == rev + 1
    last, _ = await store.delete(P + "a")
    assert last == again


async def test_list_in_byte_order_within_prefix(store: Store) -> None:
    for key in ["b", "a", "a/x", "é", "Z", "~"]:
        await store.create(P + "items/" + key, key.encode())
    await store.create(P + "itemsX", b"sibling")
    await store.create(P + "item", b"shorter")
    result = await store.list(P + "items/")
    keys = [kv.key.removeprefix(P + "items/") for kv in result.kvs]
    assert keys == sorted(keys, key=lambda k: k.encode())
    assert set(keys) == {"b", "a", "a/x", "é", "Z", "~"}
    assert result.revision == await store.current_revision()
    assert (result.more, result.remaining) == (False, 0)


async def test_list_at_a_past_revision(store: Store) -> None:
    a = await store.create(P + "a", b"a1")
    b = await store.create(P + "b", b"b1")
    past = await store.current_revision()
    await store.update(P + "a", b"a2", expected_mod_revision=a.mod_revision)
    await store.delete(P + "b")
    await store.create(P + "c", b"c1")
    then = await store.list(P, revision=past)
    assert then.kvs == [a, b]
    assert then.revision == past
    now = await store.list(P)
    assert [(kv.key, kv.value) for kv in now.kvs] == [(P + "a", b"a2"), (P + "c", b"c1")]
    with pytest.raises(FutureRevisionError):
        await store.list(P, revision=now.revision + 1000)


async def test_list_paging_with_remaining(store: Store) -> None:
    for i in range(10):
        await store.create(f"{P}k{i:02d}", str(i).encode())
    first = await store.list(P, limit=3)
    assert [kv.key for kv in first.kvs] == [f"{P}k00", f"{P}k01", f"{P}k02"]
    assert (first.more, first.remaining) == (True, 7)
    await store.create(P + "k99", b"later")  # not visible at the first page's revision
    await store.delete(P + "k05")  # still visible at the first page's revision
    pages = [first]
    while pages[-1].more:
        pages.append(
            await store.list(
                P, revision=first.revision, limit=3, start_key=pages[-1].kvs[-1].key + "\x00"
            )
        )
    keys = [kv.key for page in pages for kv in page.kvs]
    assert keys == [f"{P}k{i:02d}" for i in range(10)]
    assert [p.remaining for p in pages] == [7, 4, 1, 0]
    assert pages[-1].more is False
    tail = await store.list(P, limit=100, start_key=P + "k08")
    assert [kv.key for kv in tail.kvs] == [P + "k08", P + "k09", P + "k99"]
    assert (tail.more, tail.remaining) == (False, 0)


async def test_concurrent_guaranteed_update_counts_exactly(store: Store) -> None:
    key = P + "counter"
    await store.create(key, b"0")
    r0 = await store.current_revision()
    n = 40

    async def increment(current: KeyValue | None) -> bytes:
        assert current is not None
        await asyncio.sleep(0)
        return str(int(current.value) + 1).encode()

    results = await asyncio.gather(*(guaranteed_update(store, key, increment) for _ in range(n)))
    final = await store.get(key)
    assert final is not None and final.value == str(n).encode()
    revisions = sorted(kv.mod_revision for kv in results if kv is not None)
    assert revisions == list(range(r0 + 1, r0 + n + 1))
    assert await store.current_revision() == r0 + n


async def test_guaranteed_update_choices(store: Store) -> None:
    key = P + "obj"

    async def make(current: KeyValue | None) -> bytes:
        return b"made" if current is None else current.value + b"+"

    with pytest.raises(KeyNotFoundError):
        await guaranteed_update(store, key, make)
    created = await guaranteed_update(store, key, make, create_if_missing=True)
    assert created is not None and created.value == b"made"
    r = await store.current_revision()

    async def unchanged(current: KeyValue | None) -> bytes | None:
        return None

    async def same(current: KeyValue | None) -> bytes:
        assert current is not None
        return current.value

    async def fail(current: KeyValue | None) -> bytes:
        raise ValueError("rejected")

    assert await guaranteed_update(store, key, unchanged) == created
    assert await guaranteed_update(store, key, same) == created
    with pytest.raises(ValueError, match="rejected"):
        await guaranteed_update(store, key, fail)
    assert await store.current_revision() == r
    changed = await guaranteed_update(store, key, make)
    assert changed is not None and changed.value == b"made+" and changed.mod_revision == r + 1


async def test_watch_events_carry_values_and_previous_values(store: Store) -> None:
    r0 = await store.current_revision()
    watch = store.watch(P, r0)
    a = await store.create(P + "a", b"1")
    await store.update(P + "a", b"2", expected_mod_revision=a.mod_revision)
    await store.delete(P + "a")
    await store.create(P + "a", b"3")
    events = await next_events(watch, 4)
    assert events == [
        Event("ADDED", P + "a", b"1", None, r0 + 1, r0 + 1),
        Event("MODIFIED", P + "a", b"2", b"1", r0 + 2, r0 + 1),
        Event("DELETED", P + "a", None, b"2", r0 + 3, r0 + 1),
        Event("ADDED", P + "a", b"3", None, r0 + 4, r0 + 4),
    ]
    await watch.aclose()  # type: ignore[attr-defined]


async def test_watch_only_sees_its_prefix_and_revision_zero_means_now(store: Store) -> None:
    await store.create(P + "pods/old", b"before")
    watch = store.watch(P + "pods/", 0)
    await store.create(P + "podsX", b"sibling")
    await store.create(P + "other/x", b"elsewhere")
    new = await store.create(P + "pods/new", b"after")
    [event] = await next_events(watch, 1)
    assert (event.key, event.revision) == (new.key, new.mod_revision)
    assert await nothing_more(watch)
    await watch.aclose()  # type: ignore[attr-defined]


async def test_watch_replay_then_live_exactly_once_in_order(store: Store) -> None:
    r0 = await store.current_revision()
    for i in range(300):
        await store.create(f"{P}pre{i:04d}", b"x")
    total = 600
    watch = store.watch(P, r0)

    async def writer() -> None:
        for i in range(total - 300):
            await store.create(f"{P}live{i:04d}", b"y")

    write = asyncio.create_task(writer())
    events = await next_events(watch, total, within=30)
    await write
    assert [e.revision for e in events] == list(range(r0 + 1, r0 + total + 1))
    assert len({e.key for e in events}) == total
    assert await nothing_more(watch)
    await watch.aclose()  # type: ignore[attr-defined]


async def test_watch_resumes_from_a_revision(store: Store) -> None:
    kvs = [await store.create(f"{P}k{i}", b"v") for i in range(5)]
    watch = store.watch(P, kvs[2].mod_revision)
    events = await next_events(watch, 2)
    assert [e.key for e in events] == [kvs[3].key, kvs[4].key]
    await watch.aclose()  # type: ignore[attr-defined]


async def test_watch_from_a_future_revision_waits_for_it(store: Store) -> None:
    r0 = await store.current_revision()
    watch = store.watch(P, r0 + 2)
    pending = asyncio.create_task(next_events(watch, 1))
    await asyncio.sleep(0)  # the watch is waiting before the writes happen
    for i in range(3):
        await store.create(f"{P}k{i}", b"v")
    [event] = await pending
    assert (event.key, event.revision) == (P + "k2", r0 + 3)
    await watch.aclose()  # type: ignore[attr-defined]


async def test_slow_watcher_loses_nothing(store: Store) -> None:
    r0 = await store.current_revision()
    watch = store.watch(P, r0)
    first = await asyncio.gather(store.create(P + "first", b"0"), next_events(watch, 1))
    assert first[1][0].revision == r0 + 1
    await asyncio.gather(*(store.create(f"{P}burst{i:04d}", b"z" * 100) for i in range(1000)))
    events = await next_events(watch, 1000)
    assert [e.revision for e in events] == list(range(r0 + 2, r0 + 1002))
    await watch.aclose()  # type: ignore[attr-defined]


async def test_closed_watch_stops(store: Store) -> None:
    watch = store.watch(P, 0)
    await store.create(P + "a", b"1")
    await next_events(watch, 1)
    await watch.aclose()  # type: ignore[attr-defined]
    await store.create(P + "b", b"2")
    with pytest.raises(StopAsyncIteration):
        await anext(watch)


async def test_compaction_answers_gone_for_older_revisions(store: Store) -> None:
    a = await store.create(P + "a", b"1")
    b = await store.create(P + "b", b"1")
    await store.update(P + "a", b"2", expected_mod_revision=a.mod_revision)
    await store.delete(P + "b")
    keep = await store.current_revision()
    c = await store.create(P + "c", b"1")
    with pytest.raises(FutureRevisionError):
        await store.compact(c.mod_revision + 100)
    await store.compact(keep)
    assert await store.compacted_revision() == keep
    with pytest.raises(CompactedError) as err:
        await store.list(P, revision=b.mod_revision)
    assert (err.value.requested, err.value.compacted) == (b.mod_revision, keep)
    at_keep = await store.list(P, revision=keep)
    assert [(kv.key, kv.value) for kv in at_keep.kvs] == [(P + "a", b"2")]
    with pytest.raises(CompactedError):
        await anext(store.watch(P, keep - 1))
    watch = store.watch(P, keep)
    [event] = await next_events(watch, 1)
    assert (event.type, event.key, event.revision) == ("ADDED", c.key, c.mod_revision)
    await watch.aclose()  # type: ignore[attr-defined]
    await store.compact(keep - 1)  # older than the compacted revision: nothing to do
    assert await store.compacted_revision() == keep
    updated = await store.update(P + "a", b"3", expected_mod_revision=a.mod_revision + 2)
    assert updated.create_revision == a.create_revision


async def test_revisions_survive_reopen(store_url: str) -> None:
    first = open_store(store_url)
    a = await first.create(P + "a", b"1")
    await first.update(P + "a", b"2", expected_mod_revision=a.mod_revision)
    deleted = await first.create(P + "gone", b"x")
    _, rev = await first.delete(deleted.key)
    await first.compact(rev)
    await first.close()

    second = open_store(store_url)
    try:
        assert await second.current_revision() == rev
        assert await second.compacted_revision() == rev
        kv = await second.get(P + "a")
        assert kv == KeyValue(P + "a", b"2", a.create_revision, a.mod_revision + 1)
        assert (await second.create(P + "b", b"1")).mod_revision == rev + 1
    finally:
        await second.close()


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported storage URL"):
        open_store("nosuch://somewhere")
    with pytest.raises(ValueError):
        open_store("no-scheme-at-all")
