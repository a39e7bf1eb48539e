"""Image archives into the store: OCI image layouts and docker-archives.

Two formats carry images without a registry: an OCI image layout (``skopeo
copy``, ``ctr export``, ``docker save`` since 25: a directory or a tarball with
``index.json`` and ``blobs/``) and the older docker-archive (``docker save``:
``manifest.json`` listing each image's config, tags and layer tarballs). Both
are read without extracting anything: every blob is streamed into the store
and verified against its digest. A docker-archive has no manifest, so one is
written (OCI media types, layer compression told by magic bytes) and stored as
a blob like any other. Manifest lists pick the host's platform.

``import_directory`` is the airgap import the agent runs at start (k3s's
``agent/images``): each archive once, remembered by size and mtime.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from kubeling.runtime.images.reference import InvalidReference, parse
from kubeling.runtime.images.store import (
    INDEX_TYPES,
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_MANIFEST,
    DigestMismatch,
    Image,
    ImageError,
    ImageStore,
    check_digest,
    select_manifest,
)
from kubeling.runtime.images.unpack import clean_path, open_decompressed

log = logging.getLogger("kubeling.images")

ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
_BARE_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
CHUNK = 1 << 20
IMPORTED_FILE = "imported.json"


class _Source:
    """Files of an archive, by their path inside it."""

    def open(self, name: str) -> BinaryIO:
        raise NotImplementedError

    def has(self, name: str) -> bool:
        raise NotImplementedError

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()

    def read_json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except ValueError as e:
            raise ImageError(f"{name} in the archive is not valid JSON: {e}") from None

    def copy(self, store: ImageStore, name: str, digest: str | None = None) -> str:
        """Stream a file into the store (verified against ``digest`` when given)."""
        if digest and store.has_blob(digest):
            return digest
        with self.open(name) as src, store.blob_writer(digest) as writer:
            while chunk := src.read(CHUNK):
                writer.write(chunk)
        return writer.digest

    def blob_name(self, digest: str) -> str:
        algorithm, _, hex_digest = check_digest(digest).partition(":")
        return f"blobs/{algorithm}/{hex_digest}"


class _DirSource(_Source):
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        return self.root / clean_path(name)

    def has(self, name: str) -> bool:
        return self._path(name).is_file()

    def open(self, name: str) -> BinaryIO:
        try:
            return open(self._path(name), "rb")
        except FileNotFoundError:
            raise ImageError(f"{name} is missing from {self.root}") from None


class _TarSource(_Source):
    def __init__(self, tar: tarfile.TarFile, label: str) -> None:
        self.tar = tar
        self.label = label
        self.members: dict[str, tarfile.TarInfo] = {}
        for member in tar.getmembers():
            with contextlib.suppress(ImageError):
                self.members[clean_path(member.name)] = member

    def _member(self, name: str) -> tarfile.TarInfo:
        key = clean_path(name)
        for _ in range(8):  # docker save links a repeated layer to its first copy
            member = self.members.get(key)
            if member is None:
                break
            if member.isreg():
                return member
            if member.issym():
                key = clean_path(os.path.join(os.path.dirname(key), member.linkname))
            elif member.islnk():
                key = clean_path(member.linkname)
            else:
                break
        raise ImageError(f"{name} is missing from {self.label}")

    def has(self, name: str) -> bool:
        try:
            self._member(name)
        except ImageError:
            return False
        return True

    def open(self, name: str) -> BinaryIO:
        f = self.tar.extractfile(self._member(name))
        if f is None:
            raise ImageError(f"{name} in {self.label} is not a file")
        return f  # type: ignore[return-value]


def import_archive(store: ImageStore, path: Path) -> list[Image]:
    """Import every image of an OCI layout (directory or tar, gzip'd or not) or a
    docker-archive; the images as recorded, in archive order."""
    path = Path(path)
    if path.is_dir():
        return _import_source(store, _DirSource(path), str(path))
    if not path.is_file():
        raise ImageError(f"{path}: no such file or directory")
    with _open_tar(store, path) as tar:
        return _import_source(store, _TarSource(tar, str(path)), str(path))


@contextlib.contextmanager
def _open_tar(store: ImageStore, path: Path) -> Iterator[tarfile.TarFile]:
    """The archive as a seekable tar: a compressed one is decompressed to a temporary file."""
    with open(path, "rb") as raw:
        stream = open_decompressed(raw, str(path))
        if stream is raw:
            try:
                with tarfile.open(fileobj=raw, mode="r:") as tar:
                    yield tar
                return
            except tarfile.TarError as e:
                raise ImageError(f"{path} is not a tar archive: {e}") from None
        with tempfile.TemporaryFile(dir=store.tmp_dir) as tmp:
            try:
                shutil.copyfileobj(stream, tmp, CHUNK)
            except (OSError, EOFError) as e:
                raise ImageError(f"{path}: cannot decompress: {e}") from None
            tmp.seek(0)
            try:
                tar = tarfile.open(fileobj=tmp, mode="r:")
            except tarfile.TarError as e:
                raise ImageError(f"{path} is not a tar archive: {e}") from None
            with tar:
                yield tar


def _import_source(store: ImageStore, source: _Source, label: str) -> list[Image]:
    if source.has("index.json"):
        images = _import_oci(store, source)
    elif source.has("manifest.json"):
        images = _import_docker(store, source)
    else:
        raise ImageError(f"{label} is neither an OCI image layout (no index.json) nor a "
                         "docker-archive (no manifest.json)")
    if not images:
        raise ImageError(f"{label} holds no image")
    unique: dict[str, Image] = {}
    for image in images:
        unique.pop(image.id, None)
        unique[image.id] = image
    latest = {i.id: i for i in store.list()}
    return [latest.get(image_id, image) for image_id, image in unique.items()]


def _names_from_annotations(annotations: dict[str, str]) -> list[str]:
    """The image name an index entry carries: containerd's full name, else the OCI ref
    name when it is a full reference (a bare tag names no repository: no name)."""
    candidates = [annotations.get(ANNOTATION_CONTAINERD_NAME, "")]
    ref_name = annotations.get(ANNOTATION_REF_NAME, "")
    if not candidates[0] and ref_name and not _BARE_TAG.match(ref_name):
        candidates = [ref_name]
    names = []
    for candidate in candidates:
        if not candidate:
            continue
        try:
            names.append(parse(candidate).name)
        except InvalidReference as e:
            log.warning("ignoring the image name %r in the archive: %s", candidate, e)
    return names


def _import_oci(store: ImageStore, source: _Source) -> list[Image]:
    index = source.read_json("index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise ImageError("index.json has no manifests list")
    out: list[Image] = []
    for desc in index["manifests"]:
        names = _names_from_annotations(desc.get("annotations") or {})
        out.append(_import_descriptor(store, source, desc, names, depth=0))
    return out


def _import_descriptor(store: ImageStore, source: _Source, desc: dict[str, Any],
                       names: list[str], *, depth: int) -> Image:
    digest = check_digest(str(desc.get("digest")))
    media = str(desc.get("mediaType") or "")
    source.copy(store, source.blob_name(digest), digest)
    data = store.read_blob(digest)
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise ImageError(f"blob {digest} is not valid JSON: {e}") from None
    if media in INDEX_TYPES or (isinstance(doc, dict) and "manifests" in doc):
        if depth > 4:
            raise ImageError("image indexes nested too deep")
        child = select_manifest(doc)
        return _import_descriptor(store, source, child, names, depth=depth + 1)
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise ImageError(f"blob {digest} is not an image manifest")
    for blob in [doc["config"], *(doc.get("layers") or [])]:
        blob_digest = check_digest(str(blob.get("digest")))
        source.copy(store, source.blob_name(blob_digest), blob_digest)
    repos = [parse(n).repo for n in names]
    return store.add_image(data, names=names, digest_repos=repos)


def _import_docker(store: ImageStore, source: _Source) -> list[Image]:
    manifest = source.read_json("manifest.json")
    if not isinstance(manifest, list):
        raise ImageError("manifest.json of the docker-archive is not a list")
    out = []
    for entry in manifest:
        if not isinstance(entry, dict) or "Config" not in entry:
            raise ImageError("manifest.json entry without Config")
        config = source.read(entry["Config"])
        config_digest = store.put_blob(config)
        layers = []
        for layer_name in entry.get("Layers") or []:
            layer_digest = source.copy(store, layer_name)
            with open(store.blob_path(layer_digest), "rb") as f:
                magic = f.read(4)
            if magic[:4] == b"\x28\xb5\x2f\xfd":
                raise ImageError(f"layer {layer_name} is zstd-compressed, which is not "
                                 "supported")
            media = MEDIA_OCI_LAYER_GZIP if magic[:2] == b"\x1f\x8b" else MEDIA_OCI_LAYER
            layers.append({"mediaType": media, "digest": layer_digest,
                           "size": store.blob_path(layer_digest).stat().st_size})
        oci_manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST,
            "config": {"mediaType": MEDIA_OCI_CONFIG, "digest": config_digest,
                       "size": len(config)},
            "layers": layers}, sort_keys=True, separators=(",", ":")).encode()
        names = []
        for tag in entry.get("RepoTags") or []:
            try:
                names.append(parse(str(tag)).name)
            except InvalidReference as e:
                log.warning("ignoring the tag %r in the archive: %s", tag, e)
        out.append(store.add_image(oci_manifest, names=names))
    return out


def import_directory(store: ImageStore, directory: Path) -> list[Image]:
    """Import each ``*.tar``/``*.tar.gz``/``*.tgz`` and OCI layout directory in
    ``directory`` not imported before (same size and mtime); errors are logged, not
    raised, so one bad file does not keep a node from starting."""
    state_file = store.root / IMPORTED_FILE
    try:
        seen: dict[str, list[int]] = json.loads(state_file.read_text())
    except (OSError, ValueError):
        seen = {}
    out: list[Image] = []
    if not Path(directory).is_dir():
        return out
    for entry in sorted(Path(directory).iterdir()):
        if entry.is_dir():
            if not (entry / "index.json").is_file():
                continue
            st = (entry / "index.json").stat()
        elif entry.name.endswith((".tar", ".tar.gz", ".tgz")):
            st = entry.stat()
        else:
            if not entry.name.startswith("."):
                log.info("airgap import: skipping %s (not .tar, .tar.gz, .tgz or an OCI "
                         "layout directory)", entry)
            continue
        key = str(entry.resolve())
        signature = [st.st_size, st.st_mtime_ns]
        if seen.get(key) == signature:
            continue
        try:
            images = import_archive(store, entry)
        except (ImageError, DigestMismatch, OSError) as e:
            log.error("airgap import of %s failed: %s", entry, e)
            continue
        log.info("airgap import: %s: %s", entry.name,
                 ", ".join(i.names[0] if i.names else i.id for i in images))
        out += images
        seen[key] = signature
        with store.locked():
            try:
                current = json.loads(state_file.read_text())
            except (OSError, ValueError):
                current = {}
            current[key] = signature
            tmp = state_file.with_name(f".{IMPORTED_FILE}.{os.getpid()}")
            tmp.write_text(json.dumps(current, indent=1))
            os.replace(tmp, state_file)
    return out
