"""The atomic writer: versions behind ``..data``, swapped in one rename."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from kubeling.kubelet.atomicwriter import AtomicWriter, FileProjection, PayloadError


def versions(target: Path) -> list[str]:
    return sorted(p.name for p in target.iterdir()
                  if p.name.startswith("..") and p.name not in ("..data", "..data_tmp"))


def test_layout_symlinks_contents_and_modes(tmp_path: Path) -> None:
    w = AtomicWriter(tmp_path)
    assert w.write({"a": FileProjection(b"one", 0o644), "dir/b": FileProjection(b"two", 0o400)})
    data = os.readlink(tmp_path / "..data")
    assert data.startswith("..") and (tmp_path / data).is_dir()
    assert os.stat(tmp_path / data).st_mode & 0o777 == 0o755
    assert os.readlink(tmp_path / "a") == "..data/a"
    assert os.readlink(tmp_path / "dir") == "..data/dir"
    assert (tmp_path / "a").read_bytes() == b"one"
    assert (tmp_path / "dir" / "b").read_bytes() == b"two"
    assert os.stat(tmp_path / "a").st_mode & 0o7777 == 0o644
    assert os.stat(tmp_path / "dir" / "b").st_mode & 0o7777 == 0o400
    assert versions(tmp_path) == [data]


def test_same_payload_makes_no_new_version(tmp_path: Path) -> None:
    w = AtomicWriter(tmp_path)
    payload = {"a": FileProjection(b"x")}
    assert w.write(payload)
    before = os.readlink(tmp_path / "..data")
    assert not w.write(payload)
    assert os.readlink(tmp_path / "..data") == before


def test_mode_change_alone_makes_a_new_version(tmp_path: Path) -> None:
    w = AtomicWriter(tmp_path)
    w.write({"a": FileProjection(b"x", 0o644)})
    assert w.write({"a": FileProjection(b"x", 0o600)})
    assert os.stat(tmp_path / "a").st_mode & 0o777 == 0o600


def test_update_replaces_version_and_removes_stale_names(tmp_path: Path) -> None:
    w = AtomicWriter(tmp_path)
    w.write({"a": FileProjection(b"1"), "gone": FileProjection(b"g")})
    first = os.readlink(tmp_path / "..data")
    assert w.write({"a": FileProjection(b"2"), "new/x": FileProjection(b"n")})
    second = os.readlink(tmp_path / "..data")
    assert second != first
    assert versions(tmp_path) == [second]
    assert (tmp_path / "a").read_bytes() == b"2"
    assert not os.path.lexists(tmp_path / "gone")
    assert (tmp_path / "new" / "x").read_bytes() == b"n"


def test_empty_payload_clears_the_files(tmp_path: Path) -> None:
    w = AtomicWriter(tmp_path)
    w.write({"a": FileProjection(b"1")})
    assert w.write({})
    assert set(os.listdir(tmp_path)) == {"..data", os.readlink(tmp_path / "..data")}


@pytest.mark.parametrize("path", ["/abs", "../up", "a/../b", "..hidden", "", "x" * 256])
def test_bad_paths_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(PayloadError):
        AtomicWriter(tmp_path).write({path: FileProjection(b"")})
    assert not os.path.lexists(tmp_path / "..data")


def read_at(dir_fd: int, name: str) -> bytes:
    fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    with open(fd, "rb") as f:
        return f.read()


def test_a_reader_never_sees_a_mix_of_versions(tmp_path: Path) -> None:
    w = AtomicWriter(tmp_path)
    w.write({"a": FileProjection(b"0"), "b": FileProjection(b"0")})
    stop = threading.Event()
    seen: set[bytes] = set()
    mixes: list[tuple[bytes, bytes]] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                fd = os.open(tmp_path / "..data", os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                continue
            try:
                a = read_at(fd, "a")
                b = read_at(fd, "b")
            except FileNotFoundError:
                continue  # that version was retired while being read
            finally:
                os.close(fd)
            seen.add(a)
            if a != b:
                mixes.append((a, b))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(1, 300):
            v = str(i).encode()
            w.write({"a": FileProjection(v), "b": FileProjection(v)})
    finally:
        stop.set()
        thread.join()
    assert mixes == []
    assert len(seen) > 1
    assert len(versions(tmp_path)) == 1


def test_leftover_version_of_a_dead_writer_is_removed(tmp_path: Path) -> None:
    w = AtomicWriter(tmp_path)
    w.write({"a": FileProjection(b"1")})
    (tmp_path / "..2020_01_01_00_00_00.abc").mkdir()
    w.write({"a": FileProjection(b"2")})
    assert versions(tmp_path) == [os.readlink(tmp_path / "..data")]
