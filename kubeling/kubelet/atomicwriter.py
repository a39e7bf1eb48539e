"""Atomic projection of a set of files into a directory, as the kubelet writes volumes.

ConfigMap, Secret, downwardAPI and projected volumes change while containers
read them. A reader must see either the old set of files or the new one, never
a mix, so the files never change in place: every version lives in its own
hidden ``..<UTC timestamp>.<random>`` directory, ``..data`` is a symlink to the
current one, and each user-visible top-level name is a symlink through
``..data`` (``key -> ..data/key``). Publishing a version is one ``rename`` of a
fresh ``..data_tmp`` symlink over ``..data``; the previous version directory is
removed afterwards. Names starting with ``..`` are the writer's own.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = "..data"
NEW_DATA_DIR = "..data_tmp"
MAX_FILE_NAME = 255
MAX_PATH = 4096


@dataclass(frozen=True)
class FileProjection:
    data: bytes
    mode: int = 0o644


class PayloadError(ValueError):
    """A payload path the writer refuses (absolute, ``..``, reserved or too long)."""


def validate_path(path: str) -> str:
    """The cleaned relative path, or PayloadError worded as the kubelet words it."""
    if not path:
        raise PayloadError(f'invalid path: must not be empty: "{path}"')
    if path.startswith("/"):
        raise PayloadError(f"invalid path: must be relative path: {path}")
    if len(path) > MAX_PATH:
        raise PayloadError(f"invalid path: must be less than or equal to {MAX_PATH} characters")
    items = path.split("/")
    for item in items:
        if item == "..":
            raise PayloadError(f"invalid path: must not contain '..': {path}")
        if len(item) > MAX_FILE_NAME:
            raise PayloadError(
                f"invalid path: filenames must be less than or equal to {MAX_FILE_NAME} characters")
    if items[0].startswith("..") and len(items[0]) > 2:
        raise PayloadError(f"invalid path: must not start with '..': {path}")
    clean = os.path.normpath(path)
    if clean in (".", "") or clean.startswith("../"):
        raise PayloadError(f"invalid path: {path}")
    return clean


class AtomicWriter:
    """Writes payloads into ``target_dir`` (which must exist). Not safe for concurrent
    writers on the same directory: the caller serialises."""

    def __init__(self, target_dir: Path | str) -> None:
        self.target = Path(target_dir)

    def current_dir(self) -> Path | None:
        """The version directory ``..data`` points to, if any."""
        try:
            name = os.readlink(self.target / DATA_DIR)
        except FileNotFoundError:
            return None
        return self.target / name

    def write(self, payload: Mapping[str, FileProjection]) -> bool:
        """Publish ``payload`` (relative path → content and mode); False when what is on
        disk is already exactly that (no new version made)."""
        clean = {validate_path(p): f for p, f in payload.items()}
        if not self.target.is_dir():
            raise FileNotFoundError(f"{self.target} does not exist")
        old = self.current_dir()
        old_paths = _walk(old) if old is not None and old.is_dir() else set()
        if old is not None and old.is_dir() and not _differs(clean, old, old_paths):
            return False
        new = self._new_version_dir()
        try:
            _write_payload(clean, new)
            self._link_visible(clean)
            tmp = self.target / NEW_DATA_DIR
            if tmp.is_symlink():
                tmp.unlink()
            os.symlink(new.name, tmp)
            os.rename(tmp, self.target / DATA_DIR)
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise
        self._unlink_stale(clean, old_paths)
        if old is not None and old != new:
            shutil.rmtree(old, ignore_errors=True)
        self._remove_orphan_versions(keep=new.name)
        return True

    def _new_version_dir(self) -> Path:
        prefix = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=self.target))
        os.chmod(path, 0o755)
        return path

    def _link_visible(self, payload: Mapping[str, FileProjection]) -> None:
        for top in {p.split("/", 1)[0] for p in payload}:
            link = self.target / top
            if not link.is_symlink():
                if link.exists():
                    _remove(link)
                os.symlink(f"{DATA_DIR}/{top}", link)

    def _unlink_stale(self, payload: Mapping[str, FileProjection], old_paths: set[str]) -> None:
        wanted = {p.split("/", 1)[0] for p in payload}
        for path in old_paths:
            if "/" in path or path in wanted:
                continue
            link = self.target / path
            if link.is_symlink():
                link.unlink()

    def _remove_orphan_versions(self, *, keep: str) -> None:
        """Version directories left by a writer that died between creating and publishing."""
        for entry in os.scandir(self.target):
            if (entry.name.startswith("..") and entry.name not in (DATA_DIR, NEW_DATA_DIR, keep)
                    and entry.is_dir(follow_symlinks=False)):
                shutil.rmtree(entry.path, ignore_errors=True)


def _walk(root: Path) -> set[str]:
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            found.add(name if rel == "." else f"{rel}/{name}")
    return found


def _differs(payload: Mapping[str, FileProjection], old: Path, old_paths: set[str]) -> bool:
    wanted: set[str] = set()
    for path in payload:
        parts = path.split("/")
        wanted.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    if old_paths - wanted:
        return True
    for path, proj in payload.items():
        file = old / path
        try:
            st = file.lstat()
            if (st.st_mode & 0o7777) != (proj.mode & 0o7777) or file.read_bytes() != proj.data:
                return True
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return True
    return False


def _write_payload(payload: Mapping[str, FileProjection], root: Path) -> None:
    for path, proj in payload.items():
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as out:
            out.write(proj.data)
        os.chmod(full, proj.mode & 0o7777)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
