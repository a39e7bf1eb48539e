"""Conformance: the CRI log (streams, partial lines, timestamps, rotation) and stopping."""

from __future__ import annotations

import os
import time

from kubeling.runtime.crilog import MAX_LINE, rotated_paths
from kubeling.runtime.protocol import ContainerState
from tests.runtime.conftest import (
    LOG_MAX_FILES,
    Harness,
    eventually,
    log_bytes,
    log_entries,
)


async def test_stdout_and_stderr_in_the_cri_log(rt: Harness) -> None:
    cid, config = await rt.run(
        "sh", "-c", "echo out1; echo err1 >&2; sleep 0.05; echo out2; printf tail")
    await rt.exited(cid)
    entries = log_entries(config.log_path)
    by_stream = {
        s: [c for _, st, _, c in entries if st == s] for s in ("stdout", "stderr")}
    assert by_stream == {"stdout": [b"out1", b"out2", b"tail"], "stderr": [b"err1"]}
    assert all(not partial for _, _, partial, _ in entries)
    stamps = [stamp for stamp, *_ in entries]
    assert stamps == sorted(stamps)
    assert all(s.endswith("Z") and "T" in s for s in stamps)


async def test_long_lines_are_split_into_partial_entries(rt: Harness) -> None:
    size = MAX_LINE * 2 + 100
    cid, config = await rt.run("sh", "-c", f"head -c {size} /dev/zero | tr '\\0' x; echo; "
                               "echo short")
    await rt.exited(cid)
    entries = [e for e in log_entries(config.log_path) if e[1] == "stdout"]
    assert [partial for _, _, partial, _ in entries] == [True, True, False, False]
    assert b"".join(c for *_, c in entries[:3]) == b"x" * size
    assert entries[3][3] == b"short"


async def test_log_rotates_at_the_size_limit(rt: Harness) -> None:
    limit = rt.options.log_max_bytes
    line = "y" * 1000
    cid, config = await rt.run(
        "sh", "-c", f"i=0; while [ $i -lt 300 ]; do echo {line}; i=$((i+1)); done")
    await rt.exited(cid)
    rotated = rotated_paths(config.log_path)
    assert len(rotated) == LOG_MAX_FILES - 1
    for path in [*rotated, config.log_path]:
        assert os.path.getsize(path) <= limit
        assert all(c == line.encode() for *_, c in log_entries(path))
    assert os.path.getsize(config.log_path) > 0


async def test_stop_honours_sigterm(rt: Harness) -> None:
    cid, config = await rt.run(
        "sh", "-c", "trap 'echo bye; exit 7' TERM; echo ready; while :; do sleep 0.05; done")
    await eventually("the container to be ready",
                     lambda: b"ready" in log_bytes(config.log_path))
    started = time.monotonic()
    await rt.runtime.stop_container(cid, 10)
    assert time.monotonic() - started < 5
    status = await rt.runtime.container_status(cid)
    assert status.state == ContainerState.EXITED and status.exit_code == 7
    assert b"bye" in log_bytes(config.log_path)


async def test_stop_kills_what_ignores_sigterm_after_the_timeout(rt: Harness) -> None:
    cid, config = await rt.run(
        "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done")
    await eventually("the container to be ready",
                     lambda: b"ready" in log_bytes(config.log_path))
    started = time.monotonic()
    await rt.runtime.stop_container(cid, 1)
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 5
    status = await rt.runtime.container_status(cid)
    assert status.state == ContainerState.EXITED and status.exit_code == 137
    await rt.runtime.stop_container(cid, 1)  # stopping an exited container succeeds


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] != b"Z"


async def test_stop_kills_a_daemonised_grandchild(rt: Harness) -> None:
    if rt.name != "process":
        return  # a PID namespace holds grandchildren where pids are not the host's
    cid, config = await rt.run(
        "sh", "-c", "(setsid sh -c 'trap \"\" TERM HUP; echo $$ > pidfile; "
        "exec sleep 300' &) ; sleep 300")
    root = (await rt.runtime.container_status(cid)).pid
    assert root > 0
    pidfile = await eventually("the grandchild's pid", lambda: _pidfile(rt, cid))
    grandchild = int(str(pidfile))
    assert _alive(grandchild)
    await rt.runtime.stop_container(cid, 0.5)
    await eventually("the grandchild to be gone", lambda: not _alive(grandchild), 5)
    assert not _alive(root)


def _pidfile(rt: Harness, cid: str) -> str:
    for dirpath, _, files in os.walk(rt.root):
        if cid in dirpath and "pidfile" in files:
            text = open(os.path.join(dirpath, "pidfile")).read().strip()
            return text
    return ""


async def test_main_exit_ends_the_whole_container(rt: Harness) -> None:
    if rt.name != "process":
        return
    cid, _ = await rt.run("sh", "-c", "(setsid sleep 300 &); echo $! ; sleep 0.2; exit 0")
    status = await rt.exited(cid)
    assert status.exit_code == 0
