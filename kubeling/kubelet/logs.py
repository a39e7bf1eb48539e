"""Reading containers' CRI log files for ``kubectl logs``, with every option it has.

The runtime writes each container attempt's output to its own file, one CRI
entry per line (``<RFC 3339 nano time> <stream> <F|P> <text>``), and rotates
a full file to ``<path>.<UTC stamp>``. This module turns those files back
into the text the container wrote: rotated files first, in order, then the
live one; partial (``P``) entries joined into their line; ``sinceTime`` /
``sinceSeconds``, ``tailLines``, ``timestamps`` (each line prefixed with its
time, RFC 3339 with nanoseconds, trailing zeros trimmed as Go prints it) and
``limitBytes`` applied; ``follow`` keeps reading, across rotation to the new
file, until the container has exited and its log is drained.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from kubeling.utils.clock import REAL, Clock

CHUNK = 64 * 1024
_TRUE = ("1", "true", "True")


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    tail_lines: int | None = None  # the last N lines only
    since: float | None = None  # epoch seconds: lines written at or after this time only
    timestamps: bool = False
    limit_bytes: int | None = None  # stop after this many bytes of output

    @classmethod
    def from_query(cls, query: dict[str, list[str]], *, now: float) -> LogOptions:
        """The kubelet's query parameters; ValueError for one that does not parse."""

        def q(name: str) -> str:
            v = query.get(name)
            return v[-1] if v else ""

        def number(name: str) -> int | None:
            raw = q(name)
            if raw == "":
                return None
            try:
                return int(raw)
            except ValueError:
                raise ValueError(f"invalid value for {name}: {raw!r}") from None

        since: float | None = None
        seconds = number("sinceSeconds")
        if seconds is not None:
            since = now - seconds
        elif q("sinceTime"):
            since = parse_time(q("sinceTime").encode())
            if since is None:
                raise ValueError(f"invalid value for sinceTime: {q('sinceTime')!r}")
        tail = number("tailLines")
        limit = number("limitBytes")
        return cls(follow=q("follow") in _TRUE, tail_lines=tail if tail is None or tail >= 0
                   else None, since=since, timestamps=q("timestamps") in _TRUE,
                   limit_bytes=limit if limit is None or limit > 0 else None)


@dataclass(frozen=True)
class Entry:
    """One CRI log line as written."""

    stamp: bytes  # the timestamp as written
    time: float
    stream: bytes  # b"stdout" | b"stderr"
    partial: bool
    text: bytes  # without the line's newline


@dataclass(frozen=True)
class Line:
    """A whole line of output: the partial entries before it joined."""

    stamp: bytes
    time: float
    data: bytes  # ends with b"\n" unless the container's last output had none

    def render(self, timestamps: bool) -> bytes:
        if not timestamps:
            return self.data
        return go_nano(self.stamp) + b" " + self.data


def parse_time(raw: bytes) -> float | None:
    """RFC 3339 with up to nanoseconds (and a Z or an offset) → epoch seconds."""
    text = raw.decode("ascii", "replace")
    frac = ""
    main, dot, rest = text.partition(".")
    if dot:
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        frac, zone = rest[:i], rest[i:]
    else:
        zone = ""
        for sep in ("Z", "z", "+"):
            if sep in main[10:]:
                idx = main.index(sep, 10)
                main, zone = main[:idx], main[idx:]
                break
        else:
            idx = main.rfind("-")
            if idx > 10:
                main, zone = main[:idx], main[idx:]
    if zone in ("Z", "z"):
        zone = "+00:00"
    try:
        whole = datetime.fromisoformat(main + zone).timestamp()
    except ValueError:
        return None
    return whole + (int(frac) / 10 ** len(frac) if frac else 0.0)


def go_nano(stamp: bytes) -> bytes:
    """A timestamp as Go's RFC3339Nano prints it: fractional trailing zeros trimmed."""
    main, dot, rest = stamp.partition(b".")
    if not dot:
        return stamp
    i = 0
    while i < len(rest) and 48 <= rest[i] <= 57:
        i += 1
    digits = rest[:i].rstrip(b"0")
    return main + (b"." + digits if digits else b"") + rest[i:]


def parse_line(line: bytes) -> Entry | None:
    """One CRI log line (its trailing newline optional); None if it is not one."""
    if line.endswith(b"\n"):
        line = line[:-1]
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    stamp, stream, tags = parts[0], parts[1], parts[2]
    when = parse_time(stamp)
    if when is None:
        return None
    return Entry(stamp, when, stream, b"P" in tags.split(b":"),
                 parts[3] if len(parts) > 3 else b"")


class _Joiner:
    """Joins partial entries into lines, per stream."""

    def __init__(self) -> None:
        self.pending: dict[bytes, tuple[bytes, float, bytearray]] = {}

    def add(self, entry: Entry) -> Line | None:
        head = self.pending.get(entry.stream)
        if entry.partial:
            if head is None:
                self.pending[entry.stream] = (entry.stamp, entry.time, bytearray(entry.text))
            else:
                head[2].extend(entry.text)
            return None
        if head is None:
            return Line(entry.stamp, entry.time, entry.text + b"\n")
        del self.pending[entry.stream]
        return Line(head[0], head[1], bytes(head[2]) + entry.text + b"\n")

    def flush(self) -> list[Line]:
        out = [Line(s, t, bytes(d)) for s, t, d in self.pending.values()]
        self.pending.clear()
        return out


def log_files(path: Path) -> list[Path]:
    """The rotated files of ``path``, oldest first, then ``path`` itself."""
    rotated = sorted(p for p in path.parent.glob(path.name + ".*")
                     if p.suffix not in (".tmp", ".gz"))
    return [*rotated, path]


class _Reader:
    """Reads one file handle as CRI lines, keeping an unfinished line for later."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.rest = b""

    def read(self) -> tuple[list[bytes], bool]:
        """Complete lines read now, and whether anything at all was read."""
        data = self.fh.read(CHUNK)
        if not data:
            return [], False
        data = self.rest + data
        lines = data.split(b"\n")
        self.rest = lines.pop()
        return lines, True

    def tail(self) -> list[bytes]:
        rest, self.rest = self.rest, b""
        return [rest] if rest else []


Running = Callable[[], Awaitable[bool]]


async def read_logs(path: Path, opts: LogOptions, *, running: Running | None = None,
                    clock: Clock = REAL, poll: float = 0.1) -> AsyncIterator[bytes]:
    """The container's output per ``opts``, in chunks. ``running`` says whether the
    container may still write (follow stops once it says no and the file is drained)."""
    emitter = _Emitter(opts)
    joiner = _Joiner()
    tail: deque[Line] | None = (deque(maxlen=opts.tail_lines)
                                if opts.tail_lines is not None else None)

    def take(raw_lines: list[bytes]) -> None:
        for raw in raw_lines:
            entry = parse_line(raw)
            if entry is None:
                continue
            line = joiner.add(entry)
            if line is not None:
                keep(line)

    def keep(line: Line) -> None:
        if opts.since is not None and line.time < opts.since:
            return
        if tail is not None:
            tail.append(line)
        else:
            emitter.add(line)

    files = log_files(path)
    current: _Reader | None = None
    for i, name in enumerate(files):
        try:
            fh = _open(name)
        except FileNotFoundError:
            continue
        reader = _Reader(fh)
        while True:
            lines, more = reader.read()
            take(lines)
            for chunk in emitter.drain(CHUNK):
                yield chunk
            if emitter.done:
                fh.close()
                return
            if not more:
                break
        if i == len(files) - 1 and opts.follow:
            current = reader
        else:
            take(reader.tail())
            fh.close()
    if tail is not None:
        for line in tail:
            emitter.add(line)
        tail = None
    if not opts.follow:
        for line in joiner.flush():
            keep(line)
        for chunk in emitter.drain(0):
            yield chunk
        return
    try:
        async for chunk in _follow(path, current, take, emitter, running, clock, poll):
            yield chunk
        for line in joiner.flush():
            keep(line)
        for chunk in emitter.drain(0):
            yield chunk
    finally:
        if current is not None:
            current.fh.close()


async def _follow(path: Path, reader: _Reader | None, take: Callable[[list[bytes]], None],
                  emitter: _Emitter, running: Running | None, clock: Clock,
                  poll: float) -> AsyncIterator[bytes]:
    """Keep reading the live file; on rotation drain the old one and open the new one."""
    last_check = False
    try:
        while not emitter.done:
            if reader is None:
                try:
                    reader = _Reader(_open(path))
                except FileNotFoundError:
                    reader = None
            progressed = False
            if reader is not None:
                lines, progressed = reader.read()
                take(lines)
                if not progressed and _rotated(path, reader.fh):
                    while True:
                        lines, more = reader.read()
                        take(lines)
                        if not more:
                            break
                    take(reader.tail())
                    reader.fh.close()
                    reader = None
                    progressed = True
            for chunk in emitter.drain(0):
                yield chunk
            if progressed:
                last_check = False
                continue
            if last_check:
                return
            if running is not None and not await running():
                last_check = True  # one more read: what it wrote before exiting
                continue
            await clock.sleep(poll)
    finally:
        if reader is not None:
            take(reader.tail())
            reader.fh.close()


def _open(path: Path) -> BinaryIO:
    """Log files are local and read in bounded chunks: plain blocking reads are fine."""
    return open(path, "rb")


def _rotated(path: Path, fh: BinaryIO) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return True
    mine = os.fstat(fh.fileno())
    return (now.st_ino, now.st_dev) != (mine.st_ino, mine.st_dev)


class _Emitter:
    """Renders lines and applies limitBytes; hands out output in chunks."""

    def __init__(self, opts: LogOptions) -> None:
        self.timestamps = opts.timestamps
        self.left = opts.limit_bytes
        self.buf = bytearray()
        self.done = False

    def add(self, line: Line) -> None:
        if self.done:
            return
        data = line.render(self.timestamps)
        if self.left is not None:
            if len(data) >= self.left:
                data = data[:self.left]
                self.done = True
            self.left -= len(data)
        self.buf.extend(data)

    def drain(self, at_least: int) -> list[bytes]:
        """The buffered output if there is more than ``at_least`` bytes (or we are done)."""
        if not self.buf or (len(self.buf) < at_least and not self.done):
            return []
        out = bytes(self.buf)
        self.buf.clear()
        return [out]
