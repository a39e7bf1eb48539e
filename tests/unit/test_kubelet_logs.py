"""Reading CRI log files as ``kubectl logs`` shows them, with every option."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kubeling.kubelet.logs import LogOptions, go_nano, parse_line, parse_time, read_logs

T0 = "2024-05-01T10:00:00.000000000Z"


def stamp(second: int, nanos: int = 0) -> str:
    return f"2024-05-01T10:00:{second:02d}.{nanos:09d}Z"


def write(path: Path, entries: list[tuple[int, str, str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for second, stream, tag, text in entries:
            f.write(f"{stamp(second)} {stream} {tag} {text}\n")


async def read(path: Path, **kw: object) -> bytes:
    out = b""
    async for chunk in read_logs(path, LogOptions(**kw)):  # type: ignore[arg-type]
        out += chunk
    return out


def test_parse_line_and_times() -> None:
    e = parse_line(b"2024-05-01T10:00:01.500000000Z stderr P half a line\n")
    assert e is not None
    assert e.stream == b"stderr" and e.partial and e.text == b"half a line"
    assert e.time == pytest.approx(parse_time(b"2024-05-01T10:00:00Z") + 1.5)  # type: ignore[operator]
    assert parse_line(b"garbage") is None
    assert parse_time(b"2024-05-01T12:00:00+02:00") == parse_time(b"2024-05-01T10:00:00Z")
    assert go_nano(b"2024-05-01T10:00:01.500000000Z") == b"2024-05-01T10:00:01.5Z"
    assert go_nano(b"2024-05-01T10:00:01.000000000Z") == b"2024-05-01T10:00:01Z"
    assert go_nano(b"2024-05-01T10:00:01.123456789Z") == b"2024-05-01T10:00:01.123456789Z"


async def test_all_lines_rotated_files_first_and_partials_joined(tmp_path: Path) -> None:
    log = tmp_path / "c" / "0.log"
    write(Path(f"{log}.20240501-100001"), [(0, "stdout", "F", "one"), (1, "stdout", "P", "tw")])
    write(Path(f"{log}.20240501-100002"), [(2, "stdout", "F", "o")])
    write(log, [(3, "stderr", "F", "three"), (4, "stdout", "F", "")])
    assert await read(log) == b"one\ntwo\nthree\n\n"


async def test_tail_since_timestamps_limit(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    write(log, [(i, "stdout", "F", f"line {i}") for i in range(10)])
    assert await read(log, tail_lines=3) == b"line 7\nline 8\nline 9\n"
    assert await read(log, tail_lines=0) == b""
    since = parse_time(stamp(8).encode())
    assert await read(log, since=since) == b"line 8\nline 9\n"
    assert await read(log, tail_lines=1, timestamps=True) == \
        b"2024-05-01T10:00:09Z line 9\n"
    assert await read(log, limit_bytes=10) == b"line 0\nlin"
    assert await read(log, tail_lines=2, limit_bytes=100) == b"line 8\nline 9\n"


async def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert await read(tmp_path / "nothing.log") == b""


async def test_follow_reads_new_output_across_rotation_until_the_container_ends(
        tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    write(log, [(0, "stdout", "F", "before")])
    alive = True

    async def running() -> bool:
        return alive

    got: list[bytes] = []

    async def follow() -> None:
        async for chunk in read_logs(log, LogOptions(follow=True), running=running,
                                     poll=0.01):
            got.append(chunk)

    task = asyncio.create_task(follow())

    async def until(text: bytes) -> None:
        for _ in range(500):
            if text in b"".join(got):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"never saw {text!r} in {b''.join(got)!r}")

    await until(b"before\n")
    write(log, [(1, "stdout", "P", "split ")])
    write(log, [(1, "stdout", "F", "line")])
    await until(b"split line\n")
    log.rename(Path(f"{log}.20240501-100002"))
    write(Path(f"{log}.20240501-100002"), [(2, "stdout", "F", "late in old file")])
    write(log, [(3, "stdout", "F", "in the new file")])
    await until(b"in the new file\n")
    assert not task.done()
    write(log, [(4, "stdout", "F", "last words")])
    alive = False
    await asyncio.wait_for(task, 5)
    assert b"".join(got) == (b"before\nsplit line\nlate in old file\nin the new file\n"
                             b"last words\n")


async def test_follow_with_limit_stops_at_the_limit(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    write(log, [(0, "stdout", "F", "abcdef")])

    async def running() -> bool:
        return True

    out = b""
    async for chunk in read_logs(log, LogOptions(follow=True, limit_bytes=4),
                                 running=running, poll=0.01):
        out += chunk
    assert out == b"abcd"


def test_options_from_query() -> None:
    opts = LogOptions.from_query({"follow": ["true"], "tailLines": ["5"], "sinceSeconds": ["10"],
                                  "timestamps": ["true"], "limitBytes": ["7"]}, now=1000.0)
    assert opts == LogOptions(follow=True, tail_lines=5, since=990.0, timestamps=True,
                              limit_bytes=7)
    opts = LogOptions.from_query({"sinceTime": ["2024-05-01T10:00:00Z"]}, now=0)
    assert opts.since == parse_time(T0.encode())
    with pytest.raises(ValueError):
        LogOptions.from_query({"tailLines": ["x"]}, now=0)
