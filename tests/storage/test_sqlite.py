"""What only the SQLite backend promises: one owner process per database file, URL forms,
and the periodic compactor driven without wall-clock time."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from kubeling.storage import StorageError, open_store
from kubeling.storage.compactor import run_compactor


async def test_second_open_of_the_same_file_is_refused(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'state.db'}"
    first = open_store(url)
    try:
        with pytest.raises(StorageError, match="in use"):
            open_store(url)
    finally:
        await first.close()
    again = open_store(url)
    await again.close()


async def test_relative_path_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite://data/state.db")
    await store.create("/k", b"v")
    await store.close()
    assert os.path.exists(tmp_path / "data" / "state.db")
    with pytest.raises(ValueError):
        open_store("sqlite://")


async def test_compactor_compacts_to_the_previous_tick(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path / 'state.db'}")
    ticks: asyncio.Queue[None] = asyncio.Queue()
    ticked: asyncio.Queue[None] = asyncio.Queue()

    async def fake_sleep(seconds: float) -> None:
        assert seconds == 300.0
        await ticked.put(None)
        await ticks.get()

    compactor = asyncio.create_task(run_compactor(store, sleep=fake_sleep))
    try:
        await ticked.get()
        await store.create("/a", b"1")
        first_tick = await store.current_revision()
        ticks.put_nowait(None)  # tick 1 records the revision, compacts nothing
        await ticked.get()
        assert await store.compacted_revision() < first_tick
        await store.create("/b", b"1")
        ticks.put_nowait(None)  # tick 2 compacts to the revision seen at tick 1
        await ticked.get()
        assert await store.compacted_revision() == first_tick
    finally:
        compactor.cancel()
        await store.close()
