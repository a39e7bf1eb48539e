"""The image store: content-addressed blobs, image records, unpacked layers, on disk.

Everything an image is made of (layer tarballs, config, manifest) is a blob
named by its sha256, written once through ``BlobWriter`` (verified, then
renamed into place), so a pull, an import and a running agent can share one
directory safely. Image records (names, digests, layers, config) live in one
small JSON index, rewritten atomically under ``flock(root/lock)``: ``kubeling
images import`` may run while the agent runs. Layers are unpacked once each,
keyed by chain id, into short directories usable directly as overlayfs lower
dirs (``unpack.py``); archives are read by ``archive.py``.

Layout::

    root/lock                     the index lock
    root/images.json              image records
    root/blobs/sha256/<hex>       blobs
    root/layers/<16 hex>          an unpacked layer (chain id prefix), <16 hex>.size, .lock
    root/tmp/                     blobs being written, layers being unpacked
    root/ingest/<hex>             a blob written or found for an image not recorded yet

A pull writes (or finds) blobs first and records the image last; the ingest
marks keep ``prune`` (the kubelet's image GC, ``kubeling images rm``) from
taking those blobs in between. ``add_image`` clears them; a mark left by a
failed pull expires after ``INGEST_GRACE`` seconds.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from kubeling.runtime.images.manifest import (
    INDEX_TYPES,
    LAYER_TYPES,
    MANIFEST_TYPES,
    MEDIA_DOCKER_CONFIG,
    MEDIA_DOCKER_LIST,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_MANIFEST,
    DigestMismatch,
    ImageError,
    chain_ids,
    check_digest,
    host_platform,
    json_object,
    parse_manifest,
    select_manifest,
)
from kubeling.runtime.images.reference import InvalidReference, parse

__all__ = [
    "INDEX_TYPES",
    "LAYER_TYPES",
    "MANIFEST_TYPES",
    "MEDIA_DOCKER_CONFIG",
    "MEDIA_DOCKER_LIST",
    "MEDIA_DOCKER_MANIFEST",
    "MEDIA_OCI_CONFIG",
    "MEDIA_OCI_INDEX",
    "MEDIA_OCI_LAYER",
    "MEDIA_OCI_LAYER_GZIP",
    "MEDIA_OCI_MANIFEST",
    "BlobWriter",
    "DigestMismatch",
    "Image",
    "ImageConfig",
    "ImageError",
    "ImageStore",
    "chain_ids",
    "check_digest",
    "host_platform",
    "parse_manifest",
    "select_manifest",
]

_HEX = re.compile(r"^[0-9a-f]{12,64}$")
INDEX_FILE = "images.json"
INGEST_GRACE = 3600.0  # seconds a blob of an unfinished pull is safe from prune


@dataclass(frozen=True)
class ImageConfig:
    """What the runtime takes from an image's config."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # "KEY=value"
    working_dir: str = ""
    user: str = ""  # "uid", "uid:gid", "name", "name:group" as in the image
    stop_signal: str = ""

    @classmethod
    def from_json(cls, config: dict[str, Any]) -> ImageConfig:
        inner = config.get("config") or {}

        def strings(key: str) -> tuple[str, ...]:
            value = inner.get(key) or ()
            return tuple(str(v) for v in value) if isinstance(value, list) else ()

        return cls(entrypoint=strings("Entrypoint"), cmd=strings("Cmd"), env=strings("Env"),
                   working_dir=str(inner.get("WorkingDir") or ""),
                   user=str(inner.get("User") or ""),
                   stop_signal=str(inner.get("StopSignal") or ""))


@dataclass(frozen=True)
class Image:
    """One image in the store."""

    id: str  # "sha256:<config digest hex>"
    names: tuple[str, ...]  # normalized refs, e.g. "docker.io/library/busybox:1.36"
    digests: tuple[str, ...]  # "docker.io/library/busybox@sha256:<manifest digest>"
    manifest_digest: str
    layers: tuple[str, ...]  # layer blob digests, lowest first
    diff_ids: tuple[str, ...]  # uncompressed layer digests (from the config)
    size: int  # bytes of the layer blobs + config
    config: ImageConfig
    created_at: float
    layer_media_types: tuple[str, ...] = field(default=())

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Image:
        return cls(id=data["id"], names=tuple(data["names"]), digests=tuple(data["digests"]),
                   manifest_digest=data["manifest_digest"], layers=tuple(data["layers"]),
                   diff_ids=tuple(data["diff_ids"]), size=int(data["size"]),
                   config=_config_from_record(data["config"]),
                   created_at=float(data["created_at"]),
                   layer_media_types=tuple(data.get("layer_media_types") or ()))


def _config_from_record(data: dict[str, Any]) -> ImageConfig:
    return ImageConfig(entrypoint=tuple(data.get("entrypoint") or ()),
                       cmd=tuple(data.get("cmd") or ()), env=tuple(data.get("env") or ()),
                       working_dir=str(data.get("working_dir") or ""),
                       user=str(data.get("user") or ""),
                       stop_signal=str(data.get("stop_signal") or ""))


class BlobWriter:
    """Writes one blob: bytes go to a temporary file and are hashed; a clean exit verifies the
    digest (``DigestMismatch``) and renames the file into place. ``digest`` and ``size`` are
    set after commit."""

    def __init__(self, store: ImageStore, expected: str | None) -> None:
        self._store = store
        self._expected = check_digest(expected) if expected else None
        self._hash = hashlib.sha256()
        if self._expected:
            store.mark_ingest(self._expected)
        self.size = 0
        self.digest = ""
        fd, name = tempfile.mkstemp(prefix="blob-", dir=store.tmp_dir)
        self._tmp = Path(name)
        self._file = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> int:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.abort()
            return
        self.commit()

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def commit(self) -> str:
        digest = "sha256:" + self._hash.hexdigest()
        if self._expected and digest != self._expected:
            self.abort()
            raise DigestMismatch(f"content has digest {digest}, expected {self._expected}")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._store.mark_ingest(digest)
        final = self._store.blob_path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, final)
        self.digest = digest
        return digest


class ImageStore:
    """A content-addressed image store under ``root`` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.layers_dir = self.root / "layers"
        self.tmp_dir = self.root / "tmp"
        self.ingest_dir = self.root / "ingest"
        for d in (self.blobs_dir, self.layers_dir, self.tmp_dir, self.ingest_dir):
            d.mkdir(parents=True, exist_ok=True)

    # -- blobs ------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blobs_dir / check_digest(digest).removeprefix("sha256:")

    def has_blob(self, digest: str) -> bool:
        """Whether the blob is here; one found is marked as being ingested (see the module
        docstring), as a puller that asks goes on to use it."""
        path = self.blob_path(digest)
        if not path.is_file():
            return False
        self.mark_ingest(digest)
        return path.is_file()

    def mark_ingest(self, digest: str) -> None:
        (self.ingest_dir / check_digest(digest).removeprefix("sha256:")).touch()

    def _clear_ingest(self, digests: Iterable[str]) -> None:
        for digest in digests:
            (self.ingest_dir / digest.removeprefix("sha256:")).unlink(missing_ok=True)

    def blob_writer(self, digest: str | None = None) -> BlobWriter:
        return BlobWriter(self, digest)

    def put_blob(self, data: bytes, digest: str | None = None) -> str:
        with self.blob_writer(digest) as writer:
            writer.write(data)
        return writer.digest

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise ImageError(f"blob {digest} is not in the image store") from None

    # -- the index --------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The store-wide lock (``flock`` on ``root/lock``), across processes and threads."""
        with open(self.root / "lock", "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _load(self) -> dict[str, Image]:
        try:
            raw = json.loads((self.root / INDEX_FILE).read_bytes())
        except FileNotFoundError:
            return {}
        return {image_id: Image.from_json(data) for image_id, data in raw["images"].items()}

    def _save(self, images: dict[str, Image]) -> None:
        data = json.dumps({"images": {k: v.to_json() for k, v in sorted(images.items())}},
                          indent=1).encode()
        fd, name = tempfile.mkstemp(prefix="index-", dir=self.tmp_dir)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(name, 0o644)
        os.replace(name, self.root / INDEX_FILE)

    def _update(self, change: Callable[[dict[str, Image]], Image | None]) -> Image | None:
        with self.locked():
            images = self._load()
            result = change(images)
            self._save(images)
            return result

    # -- images -----------------------------------------------------------------------------

    def add_image(self, manifest: bytes, *, names: Iterable[str] = (),
                  digest_repos: Iterable[str] = (), index_digest: str = "") -> Image:
        """Record the image of ``manifest`` (an OCI or Docker schema 2 image manifest whose
        config and layers are in the store already) under ``names``; each name moves to this
        image. ``digest_repos`` get ``<repo>@<manifest digest>`` references, and
        ``<repo>@<index digest>`` too when it was chosen from a manifest list, so a pull by
        the list's digest finds it present next time."""
        doc = parse_manifest(manifest)
        config_digest = check_digest(doc["config"]["digest"])
        layer_descs = doc["layers"]
        blobs = [d["digest"] for d in [doc["config"], *layer_descs]]
        missing = [d for d in blobs if not self.blob_path(d).is_file()]
        if missing:
            raise ImageError(f"manifest refers to blobs not in the store: {', '.join(missing)}")
        config_json = json_object(self.read_blob(config_digest), f"config {config_digest}")
        diff_ids = tuple((config_json.get("rootfs") or {}).get("diff_ids") or ())
        if len(diff_ids) != len(layer_descs):
            raise ImageError(f"image config {config_digest} lists {len(diff_ids)} layers, "
                             f"the manifest {len(layer_descs)}")
        for diff_id in diff_ids:
            check_digest(diff_id)
        manifest_digest = self.put_blob(manifest)
        norm_names = [parse(n).name for n in names]
        repos = [parse(r).repo for r in digest_repos]
        size = int(doc["config"].get("size") or 0) + sum(int(d.get("size") or 0)
                                                         for d in layer_descs)
        image = Image(id=config_digest, names=(), digests=(), manifest_digest=manifest_digest,
                      layers=tuple(d["digest"] for d in layer_descs), diff_ids=diff_ids,
                      size=size, config=ImageConfig.from_json(config_json),
                      created_at=time.time(),
                      layer_media_types=tuple(str(d.get("mediaType") or "")
                                              for d in layer_descs))

        def change(images: dict[str, Image]) -> Image:
            for other_id, other in list(images.items()):
                if other_id != image.id and any(n in other.names for n in norm_names):
                    images[other_id] = replace(
                        other, names=tuple(n for n in other.names if n not in norm_names))
            old = images.get(image.id)
            merged_names = list(old.names) if old else []
            merged_digests = list(old.digests) if old else []
            merged_names += [n for n in norm_names if n not in merged_names]
            recorded = [manifest_digest, *([index_digest] if index_digest else [])]
            merged_digests += [d for d in (f"{r}@{m}" for r in repos for m in recorded)
                               if d not in merged_digests]
            images[image.id] = replace(image, names=tuple(merged_names),
                                       digests=tuple(merged_digests),
                                       created_at=old.created_at if old else image.created_at)
            return images[image.id]

        with self.locked():
            images = self._load()
            result = change(images)
            self._save(images)
            self._clear_ingest([*blobs, manifest_digest])
        return result

    def list(self) -> list[Image]:
        return sorted(self._load().values(), key=lambda i: (i.names[:1], i.created_at, i.id))

    def get(self, image_id: str) -> Image | None:
        return self._load().get(image_id)

    def resolve(self, ref: str) -> Image | None:
        """The image ``ref`` names: a name (normalized), an id (``sha256:...`` or at least 12
        of its hex characters) or ``<repo>@sha256:...``."""
        return _match(self._load(), ref)[0]

    def remove(self, ref: str) -> Image | None:
        """Drop a name (the image goes with its last name) or, by id, the whole image.
        Returns the image that matched, as it was. Blobs stay until ``prune``."""

        def change(images: dict[str, Image]) -> Image | None:
            image, kind, key = _match(images, ref)
            if image is None:
                return None
            if kind == "id":
                del images[image.id]
                return image
            names = tuple(n for n in image.names if n != key)
            digests = tuple(d for d in image.digests if d != key)
            if kind == "name" and not names:
                digests = ()
            if not names and not digests:
                del images[image.id]
            else:
                images[image.id] = replace(image, names=names, digests=digests)
            return image

        return self._update(change)

    def import_archive(self, path: Path) -> builtins.list[Image]:
        """Import an OCI image layout (directory or tar, gzip'd or not) or a docker-archive."""
        from kubeling.runtime.images.archive import import_archive

        return import_archive(self, Path(path))

    # -- layers -----------------------------------------------------------------------------

    def layer_dir(self, chain_id: str) -> Path:
        return self.layers_dir / check_digest(chain_id).removeprefix("sha256:")[:16]

    def layer_dirs(self, image: Image) -> builtins.list[Path]:
        """The image's layers unpacked (once each), lowest first: overlayfs lower dirs."""
        from kubeling.runtime.images.unpack import unpack_layer

        out: builtins.list[Path] = []
        for blob, diff_id, chain_id in zip(image.layers, image.diff_ids,
                                           chain_ids(image.diff_ids), strict=True):
            target = self.layer_dir(chain_id)
            if not target.is_dir() and not self.blob_path(blob).is_file():
                raise ImageError(f"layer {blob} of image {image.id} is not in the store "
                                 "(pruned? pull or import the image again)")
            if not target.is_dir():
                with _file_lock(target.with_suffix(".lock")):
                    if not target.is_dir():
                        size = unpack_layer(self.blob_path(blob), target, diff_id=diff_id,
                                            tmp_dir=self.tmp_dir)
                        target.with_suffix(".size").write_text(str(size))
            out.append(target)
        return out

    # -- garbage ----------------------------------------------------------------------------

    def prune(self) -> int:
        """Remove blobs and unpacked layers no image refers to (unpacked layers still used by
        a mounted overlay are kept); returns the bytes freed."""
        freed = 0
        with self.locked():
            images = self._load().values()
            keep_blobs: set[str] = set()
            keep_layers: set[str] = set()
            for image in images:
                keep_blobs.update(d.removeprefix("sha256:")
                                  for d in (image.id, image.manifest_digest, *image.layers))
                keep_blobs.update(d.rpartition("@sha256:")[2] for d in image.digests)
                keep_layers.update(self.layer_dir(c).name for c in chain_ids(image.diff_ids))
            keep_layers |= _mounted_lower_dirs(self.layers_dir)
            now = time.time()
            for mark in self.ingest_dir.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    if now - mark.stat().st_mtime < INGEST_GRACE:
                        keep_blobs.add(mark.name)
                    else:
                        mark.unlink()
            for entry in self.tmp_dir.iterdir():  # left by a crash mid-write or mid-unpack
                with contextlib.suppress(FileNotFoundError):
                    if now - entry.lstat().st_mtime > INGEST_GRACE:
                        if entry.is_dir() and not entry.is_symlink():
                            shutil.rmtree(entry, ignore_errors=True)
                        else:
                            entry.unlink()
            for blob in self.blobs_dir.iterdir():
                if blob.name not in keep_blobs:
                    with contextlib.suppress(FileNotFoundError):
                        freed += blob.stat().st_size
                        blob.unlink()
            for entry in self.layers_dir.iterdir():
                if entry.is_dir() and entry.name not in keep_layers:
                    with _file_lock(entry.with_suffix(".lock")):
                        freed += _layer_size(entry)
                        _remove_tree(entry)
                        entry.with_suffix(".size").unlink(missing_ok=True)
                    entry.with_suffix(".lock").unlink(missing_ok=True)
        return freed

    def usage(self) -> int:
        """Bytes used by blobs and unpacked layers."""
        total = 0
        for blob in self.blobs_dir.iterdir():
            with contextlib.suppress(FileNotFoundError):
                total += blob.stat().st_size
        for entry in self.layers_dir.iterdir():
            if entry.is_dir():
                total += _layer_size(entry)
        return total


def _match(images: dict[str, Image], ref: str) -> tuple[Image | None, str, str]:
    """(image, "name" | "digest" | "id", the key matched)."""
    ref = ref.strip()
    with contextlib.suppress(InvalidReference):
        parsed = parse(ref)
        if parsed.digest:
            key = f"{parsed.repo}@{parsed.digest}"
            for image in images.values():
                if key in image.digests:
                    return image, "digest", key
        else:
            for image in images.values():
                if parsed.name in image.names:
                    return image, "name", parsed.name
    hex_part = ref.removeprefix("sha256:")
    if _HEX.match(hex_part):
        found = [i for i in images.values() if i.id.removeprefix("sha256:").startswith(hex_part)]
        if len(found) == 1:
            return found[0], "id", found[0].id
    return None, "", ""


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _layer_size(layer: Path) -> int:
    try:
        return int(layer.with_suffix(".size").read_text())
    except (OSError, ValueError):
        return 0


def _remove_tree(path: Path) -> None:
    """Remove an unpacked layer: rename it aside first, so a half-removed layer is never
    mistaken for an unpacked one."""
    aside = Path(tempfile.mkdtemp(prefix="rm-", dir=path.parent.parent / "tmp"))
    os.replace(path, aside / "layer")
    shutil.rmtree(aside, ignore_errors=True)


def _mounted_lower_dirs(layers_dir: Path) -> set[str]:
    """Names of unpacked layers in use by a mounted overlay (from /proc/self/mountinfo)."""
    out: set[str] = set()
    prefix = str(layers_dir) + "/"
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        if " - overlay " not in line:
            continue
        for option in line.rsplit(" ", 1)[-1].split(","):
            if option.startswith("lowerdir="):
                for lower in option.removeprefix("lowerdir=").split(":"):
                    if lower.startswith(prefix):
                        out.add(lower.removeprefix(prefix).split("/")[0])
    return out
