"""The CRI log writer and parser: entries, partial lines, timestamps, rotation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeling.runtime.crilog import (
    MAX_LINE,
    LogWriter,
    format_timestamp,
    parse_line,
    rotated_paths,
)


def entries(path: Path) -> list[tuple[str, str, bool, bytes]]:
    return [parse_line(line) for line in path.read_bytes().split(b"\n")[:-1]]


def reassemble(items: list[tuple[str, str, bool, bytes]], stream: str) -> bytes:
    out = b""
    for _, s, partial, content in items:
        if s == stream:
            out += content if partial else content + b"\n"
    return out


def test_timestamps_are_rfc3339_nano_in_utc() -> None:
    assert format_timestamp(1_700_000_000_123_456_789) == b"2023-11-14T22:13:20.123456789Z"
    assert format_timestamp(1_700_000_000_120_000_000) == b"2023-11-14T22:13:20.12Z"
    assert format_timestamp(1_700_000_000_000_000_000) == b"2023-11-14T22:13:20Z"


def test_lines_are_full_entries_per_stream(tmp_path: Path) -> None:
    log = LogWriter(str(tmp_path / "0.log"))
    log.write(1, b"one\ntw")
    log.write(2, b"err\n")
    log.write(1, b"o\n")
    log.close()
    got = [(s, p, c) for _, s, p, c in entries(tmp_path / "0.log")]
    assert got == [("stdout", False, b"one"), ("stderr", False, b"err"),
                   ("stdout", False, b"two")]


def test_a_tail_without_newline_is_written_at_close(tmp_path: Path) -> None:
    log = LogWriter(str(tmp_path / "0.log"))
    log.write(1, b"no newline")
    assert (tmp_path / "0.log").read_bytes() == b""
    log.close()
    assert [c for *_, c in entries(tmp_path / "0.log")] == [b"no newline"]


def test_long_lines_become_partial_entries(tmp_path: Path) -> None:
    log = LogWriter(str(tmp_path / "0.log"))
    log.write(1, b"a" * (MAX_LINE + 10) + b"\n")
    log.flush_partial(2)
    log.write(2, b"half")
    log.flush_partial(2)
    log.write(2, b" and the rest\n")
    log.close()
    got = [(s, p, len(c)) for _, s, p, c in entries(tmp_path / "0.log")]
    assert got == [("stdout", True, MAX_LINE), ("stdout", False, 10), ("stderr", True, 4),
                   ("stderr", False, 13)]


def test_timestamps_never_go_backwards(tmp_path: Path) -> None:
    times = iter([5_000_000_000, 4_000_000_000, 6_000_000_000])
    log = LogWriter(str(tmp_path / "0.log"), clock_ns=lambda: next(times))
    log.write(1, b"a\nb\nc\n")
    log.close()
    stamps = [t for t, *_ in entries(tmp_path / "0.log")]
    assert stamps == ["1970-01-01T00:00:05Z", "1970-01-01T00:00:05Z", "1970-01-01T00:00:06Z"]


def test_parse_rejects_what_is_not_a_log_line() -> None:
    with pytest.raises(ValueError):
        parse_line(b"hello")
    with pytest.raises(ValueError):
        parse_line(b"2023-11-14T22:13:20Z stdin F x")
    assert parse_line(b"2023-11-14T22:13:20Z stdout F \n") == (
        "2023-11-14T22:13:20Z", "stdout", False, b"")
    assert parse_line(b"2023-11-14T22:13:20Z stderr P a b  c\n")[3] == b"a b  c"


def test_rotation_keeps_the_newest_files_under_the_limit(tmp_path: Path) -> None:
    clock = iter(range(1_700_000_000 * 10**9, 1_800_000_000 * 10**9, 400_000_000))
    path = tmp_path / "0.log"
    log = LogWriter(str(path), max_bytes=300, max_files=3, clock_ns=lambda: next(clock))
    for i in range(40):
        log.write(1, f"line {i:02d} ".encode() + b"x" * 40 + b"\n")
    log.close()
    rotated = rotated_paths(str(path))
    assert len(rotated) == 2
    files = [Path(p) for p in rotated] + [path]
    assert all(os.path.getsize(f) <= 300 for f in files)
    numbers = [int(c.split()[1]) for f in files for *_, c in entries(f)]
    assert numbers == list(range(numbers[0], 40))  # in order, newest kept, nothing lost between
    assert numbers[0] > 0


def test_rotation_within_one_second_keeps_order(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    log = LogWriter(str(path), max_bytes=100, max_files=10,
                    clock_ns=lambda: 1_700_000_000 * 10**9)
    for i in range(12):
        log.write(1, f"{i:02d}".encode() + b"y" * 60 + b"\n")
    log.close()
    files = [*rotated_paths(str(path)), str(path)]
    assert len(files) == 10
    numbers = [int(c[:2]) for f in files for *_, c in entries(Path(f))]
    assert numbers == list(range(2, 12))


def test_reopen_follows_a_moved_file(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    log = LogWriter(str(path))
    log.write(1, b"before\n")
    path.rename(tmp_path / "moved")
    log.reopen()
    log.write(1, b"after\n")
    log.close()
    assert [c for *_, c in entries(path)] == [b"after"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, 2]), st.binary(max_size=MAX_LINE * 3)),
                max_size=8))
def test_entries_reassemble_each_stream(tmp_path_factory: pytest.TempPathFactory,
                                        chunks: list[tuple[int, bytes]]) -> None:
    path = tmp_path_factory.mktemp("log") / "0.log"
    log = LogWriter(str(path), max_bytes=1 << 30)
    for stream, data in chunks:
        log.write(stream, data)
    log.close()
    items = entries(path)
    for stream, name in ((1, "stdout"), (2, "stderr")):
        sent = b"".join(d for s, d in chunks if s == stream)
        expected = sent if sent.endswith(b"\n") or not sent else sent + b"\n"
        assert reassemble(items, name) == expected
    assert all(len(c) <= MAX_LINE for *_, c in items)
