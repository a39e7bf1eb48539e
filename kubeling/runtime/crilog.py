"""The CRI container log format: the writer a runtime's shim appends with, and a parser.

Every runtime writes a container's output the same way, so that the agent can
serve ``kubectl logs`` from the files alone: one entry per line,
``<RFC 3339 nano timestamp> <stdout|stderr> <F|P> <content>\\n``, ``P`` marking
a piece of a line too long for one entry (the next entries continue it; the one
with ``F`` ends it). Output that ends without a newline is written as a full
line when the stream closes, as containerd does.

The file is rotated by size: when the next entry would take it past
``max_bytes`` it is renamed to ``<path>.<UTC yyyymmdd-hhmmss>`` (with a
``-N`` suffix, counting up, for more rotations within the same second) and a
new file is opened; only the newest ``max_files`` files, the live one
included, are kept (``rotated_paths`` lists the others oldest first).

Standard library only: the shim imports it, and a shim runs per container.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

MAX_LINE = 16 * 1024  # the longest content one entry carries (containerd's default)
STREAM_NAMES = {1: b"stdout", 2: b"stderr"}


def format_timestamp(ns: int) -> bytes:
    """RFC 3339 with nanoseconds in UTC, as Go's time.RFC3339Nano (trailing zeros dropped)."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        return f"{base}.{frac:09d}".rstrip("0").encode() + b"Z"
    return base.encode() + b"Z"


def parse_line(line: bytes) -> tuple[str, str, bool, bytes]:
    """One log entry as (timestamp, "stdout" | "stderr", partial, content without newline).

    Raises ValueError for a line that is not a CRI log entry."""
    if line.endswith(b"\n"):
        line = line[:-1]
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        raise ValueError(f"not a CRI log line: {line[:80]!r}")
    stamp, stream, tag = parts[0], parts[1], parts[2]
    if stream not in (b"stdout", b"stderr"):
        raise ValueError(f"unknown stream {stream!r} in a CRI log line")
    if tag not in (b"F", b"P"):
        raise ValueError(f"unknown tag {tag!r} in a CRI log line")
    content = parts[3] if len(parts) == 4 else b""
    return stamp.decode(), stream.decode(), tag == b"P", content


def rotated_paths(path: str) -> list[str]:
    """The rotated files of the log at ``path``, oldest first (the live file not included)."""
    directory, base = os.path.split(path)
    prefix = base + "."
    try:
        names = os.listdir(directory or ".")
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        if not name.startswith(prefix):
            continue
        pieces = name[len(prefix):].split("-")
        if not (len(pieces) in (2, 3) and all(p.isdigit() for p in pieces)
                and len(pieces[0]) == 8 and len(pieces[1]) == 6):
            continue
        seq = int(pieces[2]) if len(pieces) == 3 else 0
        found.append(((pieces[0], pieces[1], seq), name))
    return [os.path.join(directory, name) for _, name in sorted(found)]


class LogWriter:
    """Appends CRI log entries to one container's log file, rotating it by size."""

    def __init__(self, path: str, *, max_bytes: int = 10 * 1024 * 1024,
                 max_files: int = 5, clock_ns: Callable[[], int] | None = None) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_files = max(1, max_files)
        self._now = clock_ns or time.time_ns
        self._last_ns = 0
        self._pending: dict[int, bytes] = {}
        self._fd = -1
        self._size = 0
        self.reopen()

    def reopen(self) -> None:
        """Open (or reopen, after someone moved the file away) the log file for appending."""
        if self._fd >= 0:
            os.close(self._fd)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                           0o640)
        self._size = os.fstat(self._fd).st_size

    def write(self, stream: int, data: bytes) -> None:
        """Output read from ``stream`` (1 stdout, 2 stderr): complete lines are written as
        full entries; a tail without a newline waits for the rest of its line, or is written
        as partial entries once it reaches MAX_LINE."""
        buf = self._pending.pop(stream, b"") + data
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            while len(line) > MAX_LINE:
                self._entry(stream, True, line[:MAX_LINE])
                line = line[MAX_LINE:]
            self._entry(stream, False, line)
            start = nl + 1
        rest = buf[start:]
        while len(rest) >= MAX_LINE:
            self._entry(stream, True, rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        if rest:
            self._pending[stream] = rest

    def flush_partial(self, stream: int) -> None:
        """Write a waiting tail as a partial entry (output that paused mid-line)."""
        rest = self._pending.pop(stream, b"")
        if rest:
            self._entry(stream, True, rest)

    def close_stream(self, stream: int) -> None:
        """The stream ended: a waiting tail becomes a full line."""
        rest = self._pending.pop(stream, b"")
        if rest:
            self._entry(stream, False, rest)

    def close(self) -> None:
        for stream in list(self._pending):
            self.close_stream(stream)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _entry(self, stream: int, partial: bool, content: bytes) -> None:
        self._last_ns = max(self._now(), self._last_ns)
        entry = b"".join((format_timestamp(self._last_ns), b" ", STREAM_NAMES[stream],
                          b" P " if partial else b" F ", content, b"\n"))
        if self._size and self._size + len(entry) > self.max_bytes:
            self._rotate()
        os.write(self._fd, entry)
        self._size += len(entry)

    def _rotate(self) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(self._last_ns / 1e9))
        target = f"{self.path}.{stamp}"
        same = [p for p in rotated_paths(self.path) if p.startswith(target)]
        if same:  # later than every file of this second, even one since removed
            last = same[-1][len(target):]
            target = f"{target}-{int(last[1:]) + 1 if last else 1}"
        try:
            os.rename(self.path, target)
        except FileNotFoundError:
            pass
        self.reopen()
        rotated = rotated_paths(self.path)
        for old in rotated[: max(0, len(rotated) - (self.max_files - 1))]:
            try:
                os.unlink(old)
            except FileNotFoundError:
                pass
