"""One layer tarball unpacked into a directory that overlayfs takes as a lower dir.

Layers are untrusted input: every member's path is cleaned (absolute paths made
relative, ``..`` refused), no member is written through a symlink, hardlinks
must point inside the layer, and files are created with ``O_NOFOLLOW``. The
layer's whiteouts become overlayfs's own form (``.wh.name`` → a 0:0 character
device ``name``; ``.wh..wh..opq`` → ``trusted.overlay.opaque=y`` on the
directory), so the stack of layers needs no merging: the kernel does it. Owners,
modes, times, xattrs, symlinks, hardlinks and device nodes are kept (as root).
The uncompressed stream is hashed on the way and must equal the config's diff
id. Compression is recognised by magic bytes, not media type.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
from pathlib import Path
from typing import IO, BinaryIO, cast

from kubeling.runtime.images.store import DigestMismatch, ImageError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
CHUNK = 1 << 20


class _HashingReader:
    """Reads through a stream, hashing everything read."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.pending = b""

    def read(self, size: int = -1) -> bytes:
        head, self.pending = self.pending, b""
        if head and size >= 0:
            size -= len(head)
        data = head + (self.raw.read(size) if size != 0 else b"")
        self.hash.update(data[len(head):])
        return data

    def empty(self) -> bool:
        """Whether the stream has no bytes at all (an empty layer)."""
        if not self.pending:
            self.pending = self.raw.read(1)
            self.hash.update(self.pending)
        return not self.pending

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def open_decompressed(f: BinaryIO, what: str) -> IO[bytes]:
    """``f`` decompressed according to its first bytes (gzip, bzip2, xz, or none)."""
    magic = f.read(6)
    f.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return cast(IO[bytes], gzip.GzipFile(fileobj=f, mode="rb"))
    if magic[:4] == b"\x28\xb5\x2f\xfd":
        raise ImageError(f"{what} is zstd-compressed, which is not supported")
    if magic[:3] == b"BZh":
        return bz2.BZ2File(f, "rb")
    if magic == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(f, "rb")
    return f


def unpack_layer(blob: Path, target: Path, *, diff_id: str, tmp_dir: Path) -> int:
    """Unpack the layer ``blob`` into ``target`` (which must not exist): into a temporary
    directory first, renamed when complete and verified. Returns the bytes of file data."""
    tmp = Path(tempfile.mkdtemp(prefix="unpack-", dir=tmp_dir))
    try:
        os.chmod(tmp, 0o755)
        with open(blob, "rb") as raw:
            reader = _HashingReader(open_decompressed(raw, f"layer {blob.name}"))
            try:
                size = 0 if reader.empty() else _Extractor(tmp).run(reader)
                reader.drain()
            except (tarfile.TarError, EOFError, OSError, lzma.LZMAError) as e:
                if isinstance(e, OSError) and e.errno is not None:
                    raise
                raise ImageError(f"layer {blob.name} is not a valid tar archive: {e}") from None
        got = "sha256:" + reader.hash.hexdigest()
        if got != diff_id:
            raise DigestMismatch(f"layer {blob.name} unpacks to content {got}, "
                                 f"but the image config says {diff_id}")
        os.rename(tmp, target)
        return size
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def clean_path(name: str) -> str:
    """A member name relative to the layer root ("" is the root); ``..`` is refused."""
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise ImageError(f"layer member {name!r} points outside the layer")
        parts.append(part)
    return "/".join(parts)


class _Extractor:
    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.dirs_ok: set[str] = {""}
        self.dir_attrs: list[tuple[str, tarfile.TarInfo]] = []
        self.as_root = os.geteuid() == 0
        self.size = 0

    def run(self, stream: _HashingReader) -> int:
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                self.member(tar, member)
        for rel, member in sorted(self.dir_attrs, key=lambda d: -d[0].count("/")):
            path = self.abs(rel)
            os.chmod(path, member.mode & 0o7777)
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
        return self.size

    def abs(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def parent(self, rel: str) -> None:
        """Make sure every directory above ``rel`` is a real directory of the layer."""
        head = rel.rpartition("/")[0]
        if head in self.dirs_ok:
            return
        walked = ""
        for part in head.split("/"):
            walked = f"{walked}/{part}" if walked else part
            if walked in self.dirs_ok:
                continue
            path = self.abs(walked)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
            else:
                if not stat.S_ISDIR(st.st_mode):
                    raise ImageError(f"layer member {rel!r} goes through {walked!r}, "
                                     "which is not a directory (a symlink?)")
            self.dirs_ok.add(walked)

    def clear(self, rel: str) -> None:
        """Remove what is at ``rel`` (a later member replaces an earlier one)."""
        path = self.abs(rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
            self.dirs_ok = {d for d in self.dirs_ok if d != rel and not d.startswith(rel + "/")}
            self.dir_attrs = [(d, m) for d, m in self.dir_attrs
                              if d != rel and not d.startswith(rel + "/")]
        else:
            os.unlink(path)

    def member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        rel = clean_path(member.name)
        base = rel.rpartition("/")[2]
        if base.startswith(WHITEOUT_PREFIX):
            self.whiteout(rel, base)
            return
        if not rel:
            if member.isdir():
                self.owner(self.root, member)
                self.dir_attrs.append(("", member))
            return
        self.parent(rel)
        path = self.abs(rel)
        if member.isdir():
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o700)
            else:
                if not stat.S_ISDIR(st.st_mode):
                    self.clear(rel)
                    os.mkdir(path, 0o700)
            self.dirs_ok.add(rel)
            self.owner(path, member)
            self.xattrs(path, member)
            self.dir_attrs.append((rel, member))
            return
        self.clear(rel)
        if member.isreg():
            self.regular(tar, member, path)
        elif member.issym():
            os.symlink(member.linkname, path)
        elif member.islnk():
            self.hardlink(rel, member, path)
            return
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(path, kind | (member.mode & 0o7777),
                     os.makedev(member.devmajor, member.devminor))
        elif member.isfifo():
            os.mkfifo(path, member.mode & 0o7777)
        else:
            return  # other member types (sockets, GNU volume headers) carry no file
        self.owner(path, member)
        self.xattrs(path, member)
        if not member.issym():
            os.chmod(path, member.mode & 0o7777)
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    def regular(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        src = tar.extractfile(member)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            if src is not None:
                shutil.copyfileobj(src, out, CHUNK)
        self.size += member.size

    def hardlink(self, rel: str, member: tarfile.TarInfo, path: str) -> None:
        target_rel = clean_path(member.linkname)
        if not target_rel:
            raise ImageError(f"layer hardlink {rel!r} points at the layer root")
        self.parent(target_rel)
        target = self.abs(target_rel)
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            raise ImageError(f"layer hardlink {rel!r} points at {member.linkname!r}, "
                             "which is not in the layer") from None
        if stat.S_ISDIR(st.st_mode):
            raise ImageError(f"layer hardlink {rel!r} points at a directory")
        os.link(target, path, follow_symlinks=False)

    def whiteout(self, rel: str, base: str) -> None:
        head = rel.rpartition("/")[0]
        if base == OPAQUE_MARKER:
            if head:
                self.parent(rel)
                path = self.abs(head)
                if not os.path.lexists(path):
                    os.mkdir(path, 0o755)
                elif not os.path.isdir(path) or os.path.islink(path):
                    raise ImageError(f"opaque marker {rel!r} in a non-directory")
                self.dirs_ok.add(head)
            else:
                path = self.root
            self.need_root(rel)
            os.setxattr(path, OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): nothing to make
        name = base[len(WHITEOUT_PREFIX):]
        hidden = f"{head}/{name}" if head else name
        self.parent(hidden)
        self.clear(hidden)
        self.need_root(rel)
        os.mknod(self.abs(hidden), stat.S_IFCHR | 0o600, os.makedev(0, 0))

    def need_root(self, rel: str) -> None:
        if not self.as_root:
            raise ImageError(f"layer whiteout {rel!r} needs root to become an overlay "
                             "whiteout (run as root)")

    def owner(self, path: str, member: tarfile.TarInfo) -> None:
        if self.as_root:
            os.lchown(path, member.uid, member.gid)

    def xattrs(self, path: str, member: tarfile.TarInfo) -> None:
        for key, value in member.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key.removeprefix("SCHILY.xattr.")
            if not self.as_root and not name.startswith("user."):
                continue
            try:
                os.setxattr(path, name, value.encode("utf-8", "surrogateescape"),
                            follow_symlinks=False)
            except OSError:
                pass  # a filesystem without that namespace: the file is still usable
