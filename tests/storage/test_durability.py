"""Acknowledged writes survive a SIGKILL of the writing process (sqlite backend)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kubeling.storage import KeyValue, open_store

HARNESS = Path(__file__).with_name("durability_harness.py")
ROOT = Path(__file__).resolve().parents[2]


def write_until_killed(url: str) -> dict[str, int]:
    """Run the harness, SIGKILL it under load; return every write it acknowledged."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(HARNESS), url, "16"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    acked: dict[str, int] = {}
    deadline = time.monotonic() + 30
    try:
        assert proc.stdout.readline() == b"ready\n", proc.stderr.read() if proc.stderr else ""
        while len(acked) < 3000:
            assert time.monotonic() < deadline, f"only {len(acked)} writes acknowledged"
            line = proc.stdout.readline()
            assert line.endswith(b"\n"), "harness stopped writing"
            key, rev = line.decode().split()
            acked[key] = int(rev)
        os.kill(proc.pid, signal.SIGKILL)
        # Lines already flushed before the kill are acknowledged too.
        for line in proc.stdout.read().splitlines(keepends=True):
            if line.endswith(b"\n"):
                key, rev = line.decode().split()
                acked[key] = int(rev)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return acked


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'state.db'}"
    acked = write_until_killed(url)
    current, stored = asyncio.run(read_back(url))
    for key, rev in acked.items():
        assert key in stored, f"acknowledged write {key} at {rev} was lost"
        assert stored[key].mod_revision == rev
        assert stored[key].value == key.encode() * 4
    revisions = sorted(kv.mod_revision for kv in stored.values())
    assert revisions == list(range(revisions[0], revisions[0] + len(revisions)))
    assert revisions[-1] == current
    assert len(set(acked.values())) == len(acked)


async def read_back(url: str) -> tuple[int, dict[str, KeyValue]]:
    store = open_store(url)
    try:
        current = await store.current_revision()
        stored = {kv.key: kv for kv in (await store.list("/registry/durability/")).kvs}
    finally:
        await store.close()
    return current, stored
