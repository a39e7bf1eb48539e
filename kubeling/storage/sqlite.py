"""The embedded storage backend: a revision log in one SQLite table.

Every write appends one row (key, value, previous value, create revision, deleted flag)
whose row id is the new global revision, so lists at a past revision, watches from a past
revision and compaction are plain range queries over one table. The database runs in WAL
mode with ``synchronous=FULL``: a write is acknowledged only after its commit is on disk.

Writes go through one writer thread doing group commit: it takes every pending request,
applies them in one transaction (each compare-and-swap sees the earlier writes of the
batch), commits once, then hands the results and the new events back to the event loop in
one callback, which resolves the callers' futures and fans the events out to watchers.
Reads use a small pool of separate connections on worker threads, never the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

from kubeling.storage.interface import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    RevisionMismatchError,
    StorageError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_READERS = 4
_REPLAY_CHUNK = 1000


_MAX_BATCH = 1000
_COMPACT_STEP = 2_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    value BLOB,
    prev_value BLOB,
    create_rev INTEGER NOT NULL,
    prev_rev INTEGER NOT NULL,
    deleted INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS log_key_rev ON log (key, rev);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_INSERT = (
    "INSERT INTO log (rev, key, value, prev_value, create_rev, prev_rev, deleted)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)

# Rows at or below :c that no longer matter for the state at :c: deletions, and values
# superseded by a later row at or below :c. Only keys written in (:old, :c] can have any.
_COMPACT = """
DELETE FROM log WHERE rev <= :c
  AND key IN (SELECT key FROM log WHERE rev > :old AND rev <= :c)
  AND (deleted = 1 OR EXISTS (
      SELECT 1 FROM log n WHERE n.key = log.key AND n.rev > log.rev AND n.rev <= :c))
"""


class Create(NamedTuple):
    key: str
    value: bytes


class Update(NamedTuple):
    key: str
    value: bytes
    expected: int


class Delete(NamedTuple):
    key: str
    expected: int | None


class Compact(NamedTuple):
    revision: int


Request = Create | Update | Delete | Compact
# The latest row of a key as the writer sees it: (mod revision, create revision, value).
_State = tuple[int, int, bytes] | None
_Events = list[Event]
_Row = tuple[int, str, bytes | None, bytes | None, int, int, int]
Done = list[tuple["asyncio.Future[Any]", Any, BaseException | None]]
OnCommit = Callable[[Done, list[Event], int, int], None]


def prefix_bounds(prefix: str) -> tuple[str, str | None]:
    """The key range [low, high) holding exactly the keys that start with ``prefix``."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = last + 1 if last + 1 != 0xD800 else 0xE000
            return prefix, "".join(chars) + chr(nxt)
    return prefix, None


def read_meta(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else 0


class _Writer:
    """The single writer thread: group commit of every pending request."""

    def __init__(self, path: str, on_commit: OnCommit) -> None:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.executescript(_SCHEMA)
            seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'log'").fetchone()
            top = conn.execute("SELECT MAX(rev) FROM log").fetchone()[0]
            # As in etcd, an empty store is at revision 1: 0 always means "current".
            self.revision = max(seq[0] if seq else 0, top or 0, 1)
            self.compacted = read_meta(conn, "compacted")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[tuple[Request, asyncio.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._compactions: deque[tuple[Compact, asyncio.Future[Any]]] = deque()
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, request: Request, future: asyncio.Future[Any]) -> None:
        self._queue.put((request, future))

    def stop(self) -> None:
        """Apply everything submitted so far, then end the thread and close the connection."""
        self._queue.put(None)
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        stopping = False
        while True:
            batch: list[tuple[Request, asyncio.Future[Any]]] = []
            block = not self._compactions
            while not stopping and len(batch) < _MAX_BATCH:
                try:
                    item = self._queue.get(block=block and not batch)
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
            if batch:
                self._guarded(self._apply_batch, batch)
            if self._compactions:
                self._guarded(self._compact_step)
            elif stopping:
                return

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        try:
            step(*args)
        except Exception as err:
            log.exception("storage: sqlite write failed")
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            failure = StorageError(f"sqlite write failed: {err}")
            futures = [f for _, f in args[0]] if args else []
            if not args and self._compactions:
                futures.append(self._compactions.popleft()[1])
            self._on_commit(
                [(f, None, failure) for f in futures], [], self.revision, self.compacted
            )

    def _lookup(self, key: str) -> _State:
        row = self._conn.execute(
            "SELECT rev, create_rev, value, deleted FROM log WHERE key = ?"
            " ORDER BY rev DESC LIMIT 1",
            (key,),
        ).fetchone()
        if row is None or row[3]:
            return None
        return row[0], row[1], row[2]

    def _apply_batch(self, batch: list[tuple[Request, asyncio.Future[Any]]]) -> None:
        overlay: dict[str, _State] = {}
        rows: list[_Row] = []
        events: list[Event] = []
        done: Done = []
        rev = self.revision
        self._conn.execute("BEGIN IMMEDIATE")
        for request, future in batch:
            if isinstance(request, Compact):
                self._compactions.append((request, future))
                continue
            key = request.key
            state = overlay[key] if key in overlay else self._lookup(key)
            try:
                result, row, event = self._apply(request, state, rev + 1)
            except StorageError as err:
                done.append((future, None, err))
                continue
            rev += 1
            value = event.value
            overlay[key] = None if value is None else (rev, event.create_revision, value)
            rows.append(row)
            events.append(event)
            done.append((future, result, None))
        if rows:
            self._conn.executemany(_INSERT, rows)
        self._conn.execute("COMMIT")
        self.revision = rev
        self._on_commit(done, events, rev, self.compacted)

    @staticmethod
    def _apply(request: Request, state: _State, rev: int) -> tuple[Any, _Row, Event]:
        key = request.key  # type: ignore[union-attr]
        if isinstance(request, Create):
            if state is not None:
                raise KeyExistsError(key)
            row: _Row = (rev, key, request.value, None, rev, 0, 0)
            event = Event("ADDED", key, request.value, None, rev, rev)
            return KeyValue(key, request.value, rev, rev), row, event
        if state is None:
            raise KeyNotFoundError(key)
        mod, created, old = state
        if isinstance(request, Update):
            if request.expected != mod:
                raise RevisionMismatchError(key, KeyValue(key, old, created, mod))
            row = (rev, key, request.value, old, created, mod, 0)
            event = Event("MODIFIED", key, request.value, old, rev, created)
            return KeyValue(key, request.value, created, rev), row, event
        assert isinstance(request, Delete)
        if request.expected is not None and request.expected != mod:
            raise RevisionMismatchError(key, KeyValue(key, old, created, mod))
        row = (rev, key, None, old, created, mod, 1)
        event = Event("DELETED", key, None, old, rev, created)
        return (KeyValue(key, old, created, mod), rev), row, event

    def _compact_step(self) -> None:
        request, future = self._compactions[0]
        target = request.revision
        if target > self.revision or target <= self.compacted:
            self._compactions.popleft()
            error = FutureRevisionError(target, self.revision) if target > self.revision else None
            self._on_commit([(future, None, error)], [], self.revision, self.compacted)
            return
        step = min(target, self.compacted + _COMPACT_STEP)
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute(_COMPACT, {"c": step, "old": self.compacted})
        self._conn.execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES ('compacted', ?)", (step,)
        )
        self._conn.execute("COMMIT")
        self.compacted = step
        done: Done = []
        if step == target:
            self._compactions.popleft()
            done.append((future, None, None))
        self._on_commit(done, [], self.revision, self.compacted)


def open_sqlite(url: str) -> SqliteStore:
    """Open ``sqlite:///abs/path.db`` or ``sqlite://relative/path.db``."""
    prefix = "sqlite://"
    if not url.startswith(prefix) or not url[len(prefix) :]:
        raise ValueError(f"not a sqlite storage URL with a path: {url!r}")
    return SqliteStore(url[len(prefix) :])


class _Watcher:
    __slots__ = ("buffer", "closed", "prefix", "wakeup")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.buffer: deque[Event] = deque()
        self.wakeup = asyncio.Event()
        self.closed = False


class SqliteStore:
    """The :class:`~kubeling.storage.interface.Store` over one SQLite database file."""

    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        # One process owns the database: the revision counter lives in the writer's memory.
        self._lock_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise StorageError(f"database {path} is in use by another process") from None
        try:
            self._writer = _Writer(path, self._on_commit)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._revision = self._writer.revision
        self._compacted = self._writer.compacted
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: set[_Watcher] = set()
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all_readers: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(_READERS, thread_name_prefix="sqlite-read")
        self._closed = False
        log.info(
            "storage: opened sqlite %s at revision %d (compacted revision %d)",
            path,
            self._revision,
            self._compacted,
        )

    # -- plumbing ---------------------------------------------------------------------------

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise StorageError("a store is used from one event loop only")
        if self._closed:
            raise StorageError("store is closed")
        return loop

    async def _write(self, request: Request) -> Any:
        loop = self._bind_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._writer.submit(request, future)
        return await future

    def _on_commit(self, done: Done, events: list[Event], revision: int, compacted: int) -> None:
        """Called from the writer thread after every commit (or failed batch)."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has gone away
            loop.call_soon_threadsafe(self._deliver, done, events, revision, compacted)

    def _deliver(self, done: Done, events: list[Event], revision: int, compacted: int) -> None:
        self._revision = revision
        self._compacted = compacted
        if events:
            for watcher in self._watchers:
                prefix = watcher.prefix
                matched = [e for e in events if e.key.startswith(prefix)]
                if matched:
                    watcher.buffer.extend(matched)
                    watcher.wakeup.set()
        for future, result, error in done:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    def _connect_reader(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA query_only = ON")
        with self._reader_lock:
            self._all_readers.append(conn)
        return conn

    def _with_reader(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            conn = self._connect_reader()
        try:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")
        finally:
            self._readers.put(conn)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = self._bind_loop()
        return await loop.run_in_executor(self._executor, self._with_reader, fn)

    # -- reads ------------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        def run(conn: sqlite3.Connection) -> KeyValue | None:
            row = conn.execute(
                "SELECT value, create_rev, rev, deleted FROM log WHERE key = ?"
                " ORDER BY rev DESC LIMIT 1",
                (key,),
            ).fetchone()
            if row is None or row[3]:
                return None
            return KeyValue(key, row[0], row[1], row[2])

        return await self._read(run)

    async def list(
        self, prefix: str, *, revision: int = 0, limit: int = 0, start_key: str = ""
    ) -> ListResult:
        self._bind_loop()
        current = self._revision
        at = current if revision == 0 else revision
        if at > current:
            raise FutureRevisionError(at, current)
        low, high = prefix_bounds(prefix)
        low = max(low, start_key)
        upper = "" if high is None else "AND key < :high"
        winners = (
            f"SELECT MAX(rev) AS mr FROM log WHERE key >= :low {upper} AND rev <= :at GROUP BY key"
        )

        def run(conn: sqlite3.Connection) -> ListResult:
            compacted = read_meta(conn, "compacted")
            if at < compacted:
                raise CompactedError(at, compacted)
            params: dict[str, Any] = {"low": low, "high": high, "at": at}
            sql = (
                "SELECT l.key, l.value, l.create_rev, l.rev FROM log l"
                f" JOIN ({winners}) w ON l.rev = w.mr WHERE l.deleted = 0 ORDER BY l.key"
            )
            if limit > 0:
                sql += " LIMIT :limit"
                params["limit"] = limit
            kvs = [KeyValue(*row) for row in conn.execute(sql, params)]
            remaining = 0
            if limit > 0 and len(kvs) == limit:
                params["low"] = kvs[-1].key
                count_sql = (
                    "SELECT COUNT(*) FROM log l"
                    f" JOIN ({winners}) w ON l.rev = w.mr WHERE l.deleted = 0 AND l.key > :low"
                )
                remaining = conn.execute(count_sql, params).fetchone()[0]
            return ListResult(kvs, at, remaining > 0, remaining)

        return await self._read(run)

    async def current_revision(self) -> int:
        return self._revision

    async def compacted_revision(self) -> int:
        return self._compacted

    # -- writes -----------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        result: KeyValue = await self._write(Create(key, value))
        return result

    async def update(self, key: str, value: bytes, *, expected_mod_revision: int) -> KeyValue:
        result: KeyValue = await self._write(Update(key, value, expected_mod_revision))
        return result

    async def delete(
        self, key: str, *, expected_mod_revision: int | None = None
    ) -> tuple[KeyValue, int]:
        result: tuple[KeyValue, int] = await self._write(Delete(key, expected_mod_revision))
        return result

    async def compact(self, revision: int) -> None:
        await self._write(Compact(revision))

    # -- watch ------------------------------------------------------------------------------

    def watch(self, prefix: str, revision: int) -> AsyncIterator[Event]:
        start = revision if revision > 0 else self._revision
        return self._watch(prefix, start)

    async def _watch(self, prefix: str, start: int) -> AsyncIterator[Event]:
        self._bind_loop()
        if start < self._compacted:
            raise CompactedError(start, self._compacted)
        watcher = _Watcher(prefix)
        self._watchers.add(watcher)
        try:
            # Live events from here on have revisions above `registered`; replay the log up
            # to it first, then drain the live buffer, skipping anything already yielded.
            registered = self._revision
            last = start
            while last < registered:
                chunk = await self._read(self._replay_reader(prefix, last, registered))
                for event in chunk:
                    yield event
                last = chunk[-1].revision if len(chunk) == _REPLAY_CHUNK else registered
            while True:
                while watcher.buffer:
                    event = watcher.buffer.popleft()
                    if event.revision > last:
                        last = event.revision
                        yield event
                if watcher.closed:
                    return
                watcher.wakeup.clear()
                await watcher.wakeup.wait()
        finally:
            self._watchers.discard(watcher)

    @staticmethod
    def _replay_reader(
        prefix: str, after: int, until: int
    ) -> Callable[[sqlite3.Connection], _Events]:
        low, high = prefix_bounds(prefix)
        upper = "" if high is None else "AND key < :high"

        def run(conn: sqlite3.Connection) -> _Events:
            compacted = read_meta(conn, "compacted")
            if after < compacted:
                raise CompactedError(after, compacted)
            rows = conn.execute(
                "SELECT rev, key, value, prev_value, create_rev, deleted FROM log"
                f" WHERE rev > :after AND rev <= :until AND key >= :low {upper}"
                " ORDER BY rev LIMIT :chunk",
                {"after": after, "until": until, "low": low, "high": high, "chunk": _REPLAY_CHUNK},
            )
            events = []
            for rev, key, value, prev, create_rev, deleted in rows:
                if deleted:
                    events.append(Event("DELETED", key, None, prev, rev, create_rev))
                elif create_rev == rev:
                    events.append(Event("ADDED", key, value, None, rev, create_rev))
                else:
                    events.append(Event("MODIFIED", key, value, prev, rev, create_rev))
            return events

        return run

    # -- lifecycle --------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        await asyncio.to_thread(self._writer.stop)
        self._closed = True
        for watcher in self._watchers:
            watcher.closed = True
            watcher.wakeup.set()
        await asyncio.to_thread(self._executor.shutdown, True)
        with self._reader_lock:
            for conn in self._all_readers:
                conn.close()
            self._all_readers.clear()
        os.close(self._lock_fd)
        log.info("storage: closed sqlite %s at revision %d", self.path, self._revision)
