"""Test images, built by the tests themselves from Debian's ``busybox-static``.

No image is downloaded: a root filesystem is made of the static busybox binary
and a link per applet, packed as image layers and written either as an OCI
image layout or as a docker-archive tarball (``docker save``'s format), gzip
or not. ``multilayer_layers`` adds two layers over it that exercise whiteouts
(a deleted file and an opaque directory), as ``docker build`` produces them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def busybox_binary() -> Path:
    for candidate in BUSYBOX_PATHS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise FileNotFoundError("busybox (Debian's busybox-static) is not installed")


def applets(busybox: Path) -> list[str]:
    out = subprocess.run([str(busybox), "--list"], check=True, capture_output=True, text=True)
    return sorted(set(out.stdout.split()))


@dataclass(frozen=True)
class Entry:
    """One tar member: a file (``data``), a directory, or a symlink (``link``)."""

    path: str
    data: bytes | None = None
    link: str = ""
    mode: int = 0o644
    directory: bool = False


def busybox_entries() -> list[Entry]:
    """A busybox root filesystem: /bin/busybox, every applet as a symlink in /bin, /etc
    with root and nobody, and the usual empty directories."""
    busybox = busybox_binary()
    entries = [Entry(d, directory=True, mode=0o755)
               for d in ("bin", "etc", "root", "home", "var", "usr", "usr/bin", "proc", "sys",
                         "dev")]
    entries.append(Entry("tmp", directory=True, mode=0o1777))
    entries.append(Entry("bin/busybox", data=busybox.read_bytes(), mode=0o755))
    entries += [Entry(f"bin/{name}", link="busybox") for name in applets(busybox)
                if name != "busybox"]
    entries.append(Entry("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n"
                         b"nobody:x:65534:65534:nobody:/home:/bin/false\n"))
    entries.append(Entry("etc/group", data=b"root:x:0:\nnogroup:x:65534:\n"))
    return entries


def multilayer_layers() -> list[list[Entry]]:
    """Three layers: busybox plus ``/etc/removed`` and ``/data/{a,b}``; then a layer that
    deletes ``/etc/removed`` (a whiteout) and replaces ``/data`` by an opaque directory
    holding only ``c``; then one that adds ``/etc/layer3``."""
    base = [*busybox_entries(),
            Entry("etc/removed", data=b"gone\n"), Entry("data", directory=True, mode=0o755),
            Entry("data/a", data=b"a\n"), Entry("data/b", data=b"b\n")]
    second = [Entry("etc", directory=True, mode=0o755), Entry("etc/.wh.removed", data=b""),
              Entry("data", directory=True, mode=0o755), Entry("data/.wh..wh..opq", data=b""),
              Entry("data/c", data=b"c\n")]
    third = [Entry("etc", directory=True, mode=0o755),
             Entry("etc/layer3", data=b"third layer\n")]
    return [base, second, third]


def layer_tar(entries: Iterable[Entry]) -> bytes:
    """An uncompressed, reproducible layer tarball."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path)
            info.mtime, info.uid, info.gid, info.mode = 0, 0, 0, entry.mode
            if entry.directory:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.link:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.link, 0o777
                tar.addfile(info)
            else:
                data = entry.data or b""
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class BuiltImage:
    """What a test needs to know of an image it built."""

    path: Path  # the tarball (or the layout directory)
    name: str  # as tagged, e.g. "busybox:1.36"
    config_digest: str  # the image id ("sha256:...")
    manifest: bytes  # the OCI manifest bytes
    manifest_digest: str
    config: bytes
    layers: tuple[tuple[str, bytes, str], ...]  # (media type, blob, digest) lowest first


def image_config(layers: list[bytes], *, cmd: list[str], entrypoint: list[str] | None = None,
                 env: list[str] | None = None, workdir: str = "", user: str = "") -> bytes:
    config: dict[str, object] = {"Env": env or [PATH_ENV], "Cmd": cmd}
    if entrypoint:
        config["Entrypoint"] = entrypoint
    if workdir:
        config["WorkingDir"] = workdir
    if user:
        config["User"] = user
    return json.dumps({
        "architecture": "amd64", "os": "linux", "config": config,
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]},
        "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
    }, sort_keys=True).encode()


def build_image(out: Path, layers: list[list[Entry]] | None = None, *, name: str = "busybox:1.36",
                fmt: str = "oci", compress: bool = False, cmd: list[str] | None = None,
                entrypoint: list[str] | None = None, env: list[str] | None = None,
                workdir: str = "", user: str = "") -> BuiltImage:
    """Write an image to ``out``: ``fmt`` "oci" (an OCI layout tarball), "oci-dir" (an OCI
    layout directory) or "docker" (a docker-archive tarball). Layers are gzip-compressed when
    ``compress``. The default is one busybox layer running ``sh``."""
    raw = [layer_tar(entries) for entries in (layers or [busybox_entries()])]
    config = image_config(raw, cmd=cmd if cmd is not None else ["sh"], entrypoint=entrypoint,
                          env=env, workdir=workdir, user=user)
    blobs = [gzip.compress(layer, mtime=0) if compress else layer for layer in raw]
    media = OCI_LAYER_GZIP if compress else OCI_LAYER
    layer_info = tuple((media, blob, sha256(blob)) for blob in blobs)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": m, "digest": d, "size": len(b)} for m, b, d in layer_info],
    }, sort_keys=True).encode()
    built = BuiltImage(path=out, name=name, config_digest=sha256(config), manifest=manifest,
                       manifest_digest=sha256(manifest), config=config, layers=layer_info)
    if fmt == "docker":
        _write_docker_archive(out, built)
    elif fmt in ("oci", "oci-dir"):
        _write_oci_layout(out, built, directory=fmt == "oci-dir")
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return built


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def _write_oci_layout(out: Path, image: BuiltImage, *, directory: bool) -> None:
    tag = image.name.rsplit(":", 1)[1] if ":" in image.name.rsplit("/", 1)[-1] else "latest"
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": image.manifest_digest,
        "size": len(image.manifest),
        "annotations": {"org.opencontainers.image.ref.name": tag,
                        "io.containerd.image.name": image.name}}]}).encode()
    files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json": index}
    for _media, blob, digest in image.layers:
        files[f"blobs/sha256/{digest.removeprefix('sha256:')}"] = blob
    files[f"blobs/sha256/{image.config_digest.removeprefix('sha256:')}"] = image.config
    files[f"blobs/sha256/{image.manifest_digest.removeprefix('sha256:')}"] = image.manifest
    if directory:
        if out.exists():
            shutil.rmtree(out)
        for name, data in files.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(data)
        return
    with tarfile.open(out, "w") as tar:
        for name, data in files.items():
            _add(tar, name, data)


def _write_docker_archive(out: Path, image: BuiltImage) -> None:
    config_name = image.config_digest.removeprefix("sha256:") + ".json"
    layer_names = [f"{d.removeprefix('sha256:')}/layer.tar" for _m, _b, d in image.layers]
    manifest = json.dumps([{"Config": config_name, "RepoTags": [image.name],
                            "Layers": layer_names}]).encode()
    with tarfile.open(out, "w") as tar:
        _add(tar, "manifest.json", manifest)
        _add(tar, config_name, image.config)
        for name, (_m, blob, _d) in zip(layer_names, image.layers, strict=True):
            _add(tar, name, blob)
