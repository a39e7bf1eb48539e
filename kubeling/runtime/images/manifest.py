"""Image manifests and digests: media types, checks, chain ids, platform choice.

What both the store and the archive reader need to know about OCI and Docker
manifests, kept apart from the store's files and locks: a manifest is checked
once (``parse_manifest``: image manifests only, known layer types, sha256
digests), a manifest list resolves to the host's platform (``select_manifest``).
The store re-exports the exceptions, which its API names.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from typing import Any

MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MANIFEST_TYPES = (MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST)
INDEX_TYPES = (MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST)
LAYER_TYPES = (
    MEDIA_OCI_LAYER, MEDIA_OCI_LAYER_GZIP,
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class DigestMismatch(Exception):
    """Content whose sha256 is not the digest it was announced with."""


class ImageError(Exception):
    """A bad archive, a missing blob, an unsupported media type: the message says which."""


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """The OCI chain ids of a layer stack: the first layer's diff id, then
    sha256("<previous chain id> <diff id>")."""
    out: list[str] = []
    for diff_id in diff_ids:
        if out:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
        else:
            out.append(diff_id)
    return out


def check_digest(digest: str) -> str:
    if not _DIGEST.match(digest):
        raise ImageError(f"unsupported digest {digest!r} (want sha256:<64 lowercase hex>)")
    return digest


def parse_manifest(manifest: bytes) -> dict[str, Any]:
    """An image manifest's JSON, checked: refuses indexes and unsupported layer types."""
    doc = json_object(manifest, "manifest")
    media = doc.get("mediaType") or ""
    if media in INDEX_TYPES or (not media and "manifests" in doc):
        raise ImageError("this is an image index (manifest list), not an image manifest: "
                         "select a platform's manifest first")
    if media and media not in MANIFEST_TYPES:
        raise ImageError(f"unsupported manifest media type {media!r}")
    if not isinstance(doc.get("config"), dict) or not isinstance(doc.get("layers"), list):
        raise ImageError("manifest has no config or layers")
    for layer in doc["layers"]:
        layer_media = str(layer.get("mediaType") or "")
        if "zstd" in layer_media:
            raise ImageError(f"zstd-compressed layers are not supported ({layer_media})")
        if layer_media and layer_media not in LAYER_TYPES:
            raise ImageError(f"unsupported layer media type {layer_media!r}")
        check_digest(str(layer.get("digest")))
    check_digest(str(doc["config"].get("digest")))
    return doc


def json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise ImageError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ImageError(f"{what} is not a JSON object")
    return doc


def host_platform() -> tuple[str, str, str]:
    """(os, architecture, variant) of this machine in OCI terms."""
    machine = os.uname().machine
    arch, variant = {
        "x86_64": ("amd64", ""), "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
        "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "i686": ("386", ""),
        "i386": ("386", ""), "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""),
        "riscv64": ("riscv64", ""),
    }.get(machine, (machine, ""))
    return "linux", arch, variant


def select_manifest(index: dict[str, Any],
                    platform: tuple[str, str, str] | None = None) -> dict[str, Any]:
    """The descriptor in an image index (manifest list) for ``platform`` (the host's by
    default); ``ImageError`` lists what the index has when none fits."""
    want_os, want_arch, want_variant = platform or host_platform()
    candidates: list[tuple[int, int, dict[str, Any]]] = []
    seen: list[str] = []
    for desc in index.get("manifests") or []:
        plat = desc.get("platform") or {}
        seen.append(f"{plat.get('os', '?')}/{plat.get('architecture', '?')}"
                    + (f"/{plat['variant']}" if plat.get("variant") else ""))
        if plat.get("os") == want_os and plat.get("architecture") == want_arch:
            variant = plat.get("variant") or ""
            score = 2 if variant == want_variant else 1 if not variant else 0
            candidates.append((score, len(candidates), desc))
    if not candidates:
        raise ImageError(f"no image for platform {want_os}/{want_arch} in the index "
                         f"(it has: {', '.join(seen) or 'nothing'})")
    candidates.sort(key=lambda c: (-c[0], c[1]))
    return candidates[0][2]
