"""Conformance: exec_sync, exec with stdin and a TTY, attach to a container's own stdio."""

from __future__ import annotations

import asyncio
import time

import pytest

from kubeling.runtime.protocol import ContainerState, RuntimeFailure
from tests.runtime.conftest import Harness, log_bytes, read_all, read_until


async def test_exec_sync_output_and_exit_code(rt: Harness) -> None:
    cid, _ = await rt.run("sleep", "30", env=(("WHO", "container"),),
                          working_dir="/tmp/kubeling-rt-exec")
    result = await rt.runtime.exec_sync(
        cid, ["sh", "-c", 'echo "$WHO $(pwd)"; echo oops >&2; exit 5'], timeout=10)
    assert result.exit_code == 5 and not result.timed_out
    assert result.stdout == b"container /tmp/kubeling-rt-exec\n"
    assert result.stderr == b"oops\n"


async def test_exec_sync_times_out(rt: Harness) -> None:
    cid, _ = await rt.run("sleep", "30")
    started = time.monotonic()
    result = await rt.runtime.exec_sync(cid, ["sleep", "20"], timeout=0.5)
    assert result.timed_out
    assert time.monotonic() - started < 5
    assert (await rt.runtime.container_status(cid)).state == ContainerState.RUNNING


async def test_exec_into_a_stopped_container_fails(rt: Harness) -> None:
    cid, _ = await rt.run("true")
    await rt.exited(cid)
    with pytest.raises(RuntimeFailure):
        await rt.runtime.exec_sync(cid, ["true"], timeout=5)


async def test_exec_with_stdin(rt: Harness) -> None:
    cid, _ = await rt.run("sleep", "30")
    session = await rt.runtime.exec(cid, ["sh", "-c", "cat; echo done >&2; exit 3"],
                                    tty=False, stdin=True)
    try:
        await session.write(b"hello\n")
        assert await read_until(session, b"hello\n", stream=1) == b"hello\n"
        await session.close_stdin()
        out = await read_all(session)
        assert out[2] == b"done\n"
        assert await session.read() == (0, b"")
        assert await session.wait() == 3
    finally:
        await session.close()


async def test_exec_with_a_tty_and_resize(rt: Harness) -> None:
    cid, _ = await rt.run("sleep", "30")
    session = await rt.runtime.exec(cid, ["sh"], tty=True, stdin=True)
    try:
        assert session.tty
        await session.resize(101, 33)
        await session.write(b"tty && echo IS-A-TTY\n")
        await read_until(session, b"IS-A-TTY\r\n")
        await session.write(b"stty size\n")
        await read_until(session, b"33 101")
        await session.resize(120, 40)
        await session.write(b"stty size\n")
        await read_until(session, b"40 120")
        await session.write(b"exit 4\n")
        await read_all(session)
        assert await session.wait() == 4
    finally:
        await session.close()


async def test_closing_an_exec_kills_it(rt: Harness) -> None:
    cid, _ = await rt.run("sleep", "30")
    session = await rt.runtime.exec(cid, ["sleep", "60"], tty=False, stdin=False)
    await session.close()
    assert await asyncio.wait_for(session.wait(), 5) != 0


async def test_attach_to_cat_with_stdin(rt: Harness) -> None:
    cid, config = await rt.run("cat", stdin=True)
    await rt.wait_state(cid, ContainerState.RUNNING)
    session = await rt.runtime.attach(cid, tty=False, stdin=True)
    try:
        await session.write(b"ping\n")
        assert b"ping\n" in await read_until(session, b"ping\n", stream=1)
        # a second attachment sees output too
        other = await rt.runtime.attach(cid, tty=False, stdin=False)
        await session.write(b"pong\n")
        assert b"pong\n" in await read_until(other, b"pong\n")
        await other.close()
    finally:
        await session.close()
    assert (await rt.runtime.container_status(cid)).state == ContainerState.RUNNING
    assert b"stdout F ping" in log_bytes(config.log_path)
    await rt.runtime.stop_container(cid, 2)


async def test_attach_with_stdin_once_ends_the_container(rt: Harness) -> None:
    cid, _ = await rt.run("sh", "-c", "cat; exit 9", stdin=True, stdin_once=True)
    await rt.wait_state(cid, ContainerState.RUNNING)
    session = await rt.runtime.attach(cid, tty=False, stdin=True)
    try:
        await session.write(b"once\n")
        await read_until(session, b"once\n")
        await session.close_stdin()
        assert await asyncio.wait_for(session.wait(), 10) == 9
    finally:
        await session.close()
    assert (await rt.exited(cid)).exit_code == 9


async def test_attach_with_a_tty(rt: Harness) -> None:
    cid, _ = await rt.run("sh", stdin=True, tty=True)
    await rt.wait_state(cid, ContainerState.RUNNING)
    session = await rt.runtime.attach(cid, tty=True, stdin=True)
    try:
        await session.resize(90, 20)
        await session.write(b"stty size\n")
        await read_until(session, b"20 90")
        await session.write(b"exit 2\n")
        assert await asyncio.wait_for(session.wait(), 10) == 2
    finally:
        await session.close()


async def test_attach_to_an_exited_container_fails(rt: Harness) -> None:
    cid, _ = await rt.run("true")
    await rt.exited(cid)
    with pytest.raises(RuntimeFailure):
        await rt.runtime.attach(cid, tty=False, stdin=False)
