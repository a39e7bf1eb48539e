"""Static pods: pod manifests in a directory that the agent runs without the API.

A node can run pods before (or without) any API server: the manifests in its
``--pod-manifest-path`` are read, defaulted as the kubelet defaults a file
pod, and handed to the agent, which runs them like any other pod and shows
each one in the API as a mirror pod (:mod:`kubeling.kubelet.mirror`).

Each pod's uid is a hash of the node, the file and its content, so it stays
the same across scans and restarts and changes whenever the manifest does
(the agent then replaces the pod). Its name gets ``-<node name>`` so that
the same manifest on several nodes gives distinct pods. A file that cannot
be read, parsed or validated is logged once (until it changes) and skipped;
the others still run.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from kubeling.api import kinds
from kubeling.api.defaults import apply_defaults
from kubeling.api.jsoncopy import json_copy
from kubeling.api.validation import validate_create
from kubeling.client.interface import Obj
from kubeling.kubelet.context import CONFIG_HASH, CONFIG_SEEN, CONFIG_SOURCE
from kubeling.utils.clock import REAL, Clock

log = logging.getLogger("kubeling.kubelet.staticpods")

SUFFIXES = (".yaml", ".yml", ".json")
FILE_SOURCE = "file"
NO_EXECUTE_TOLERATION: Obj = {"operator": "Exists", "effect": "NoExecute"}


class ManifestError(Exception):
    """A manifest that does not describe a valid pod."""


@dataclass(frozen=True)
class _Stamp:
    mtime_ns: int
    size: int
    inode: int


def pod_uid(node_name: str, path: Path, manifest: Obj) -> str:
    """The static pod's uid: stable for the same node, file and content."""
    digest = hashlib.md5(usedforsecurity=False)
    digest.update(f"host:{node_name}".encode())
    digest.update(f"file:{path}".encode())
    digest.update(orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


def static_pod_name(name: str, node_name: str) -> str:
    return f"{name}-{node_name.lower()}"


def _format_seen(ts: float) -> str:
    """A timestamp as the kubelet writes ``config.seen`` (RFC 3339 with nanoseconds)."""
    from datetime import UTC, datetime

    whole = int(ts)
    nanos = int(round((ts - whole) * 1e9))
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, 0
    base = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{nanos:09d}Z" if nanos else f"{base}Z"


def _has_toleration(tolerations: list[Obj], wanted: Obj) -> bool:
    for t in tolerations:
        if (t.get("key", "") == wanted.get("key", "")
                and t.get("operator", "Equal") == wanted.get("operator", "Equal")
                and t.get("value", "") == wanted.get("value", "")
                and t.get("effect", "") == wanted.get("effect", "")):
            return True
    return False


def parse_manifest(data: bytes, path: Path) -> Obj:
    """The manifest's object, checked to be one Pod (JSON is read as YAML)."""
    try:
        docs = [d for d in yaml.safe_load_all(data) if d is not None]
    except yaml.YAMLError as exc:
        raise ManifestError("not valid YAML or JSON: " + " ".join(str(exc).split())) from exc
    if len(docs) != 1:
        raise ManifestError(f"expected one object, found {len(docs)}")
    obj = docs[0]
    if not isinstance(obj, dict):
        raise ManifestError("not an object")
    if obj.get("kind") != "Pod":
        raise ManifestError(f"kind is {obj.get('kind')!r}, not 'Pod'")
    if obj.get("apiVersion", "v1") != "v1":
        raise ManifestError(f"apiVersion is {obj.get('apiVersion')!r}, not 'v1'")
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise ManifestError("metadata.name is required")
    if not isinstance(obj.get("spec"), dict):
        raise ManifestError("spec is required")
    return obj


def default_static_pod(manifest: Obj, *, path: Path, node_name: str, seen: str) -> Obj:
    """The pod the agent runs for ``manifest``, defaulted and validated as the kubelet does
    for a file source. Raises ManifestError when the result is not a valid pod."""
    pod: dict[str, Any] = json_copy(manifest)
    pod["apiVersion"] = "v1"
    meta = pod["metadata"]
    uid = meta.get("uid") or pod_uid(node_name, path, manifest)
    meta["uid"] = uid
    meta["name"] = static_pod_name(meta["name"], node_name)
    if not meta.get("namespace"):
        meta["namespace"] = "default"
    for key in ("resourceVersion", "creationTimestamp", "deletionTimestamp", "managedFields",
                "generation", "selfLink"):
        meta.pop(key, None)
    annotations = meta.get("annotations")
    if not isinstance(annotations, dict):
        annotations = meta["annotations"] = {}
    annotations[CONFIG_HASH] = uid
    annotations[CONFIG_SOURCE] = FILE_SOURCE
    annotations[CONFIG_SEEN] = seen
    spec = pod["spec"]
    spec["nodeName"] = node_name
    tolerations = spec.get("tolerations")
    if not isinstance(tolerations, list):
        tolerations = []
    if not _has_toleration(tolerations, NO_EXECUTE_TOLERATION):
        tolerations = [*tolerations, dict(NO_EXECUTE_TOLERATION)]
    spec["tolerations"] = tolerations
    pod.pop("status", None)
    kind = kinds.by_resource("", "pods")
    assert kind is not None
    apply_defaults(kind, pod)
    causes = validate_create(kind, pod)
    if causes:
        detail = "; ".join(f"{c.get('field', '')}: {c['message']}" for c in causes)
        raise ManifestError(f"invalid pod: {detail}")
    return pod


@dataclass
class _Entry:
    stamp: _Stamp
    pod: Obj | None  # None: the file is bad (already logged)


class StaticPodSource:
    """The pods of a manifest directory, by uid, re-read when its files change."""

    def __init__(self, path: Path, node_name: str, *, clock: Clock = REAL) -> None:
        self.path = path
        self.node_name = node_name
        self.clock = clock
        self._entries: dict[Path, _Entry] = {}
        self._seen: dict[str, str] = {}  # uid → when first seen
        self._last: set[str] | None = None
        self._stopped = asyncio.Event()
        self._missing_logged = False

    def _listing(self) -> dict[Path, _Stamp]:
        try:
            children = list(self.path.iterdir())
        except FileNotFoundError:
            if not self._missing_logged:
                log.info("static pod path %s does not exist; no static pods", self.path)
                self._missing_logged = True
            return {}
        except OSError as exc:
            log.error("cannot read static pod path %s: %s", self.path, exc)
            return {}
        self._missing_logged = False
        found: dict[Path, _Stamp] = {}
        for child in sorted(children):
            if child.name.startswith(".") or child.suffix.lower() not in SUFFIXES:
                continue
            try:
                st = child.stat()
            except OSError:
                continue
            if child.is_file():
                found[child] = _Stamp(st.st_mtime_ns, st.st_size, st.st_ino)
        return found

    def _load(self, file: Path) -> Obj | None:
        try:
            manifest = parse_manifest(file.read_bytes(), file)
            uid = manifest["metadata"].get("uid") or pod_uid(self.node_name, file, manifest)
            seen = self._seen.get(uid) or _format_seen(self.clock.now())
            pod = default_static_pod(manifest, path=file, node_name=self.node_name, seen=seen)
        except (ManifestError, OSError) as exc:
            log.error("static pod manifest %s skipped: %s", file, exc)
            return None
        self._seen[pod["metadata"]["uid"]] = seen
        return pod

    def scan(self) -> dict[str, Obj]:
        """Every valid static pod now in the directory, by uid (unchanged files are not
        read again)."""
        listing = self._listing()
        entries: dict[Path, _Entry] = {}
        for file, stamp in listing.items():
            old = self._entries.get(file)
            if old is not None and old.stamp == stamp:
                entries[file] = old
            else:
                entries[file] = _Entry(stamp, self._load(file))
        self._entries = entries
        pods: dict[str, Obj] = {}
        for file, entry in entries.items():
            if entry.pod is None:
                continue
            uid = entry.pod["metadata"]["uid"]
            meta = entry.pod["metadata"]
            clash = next((p for p in pods.values()
                          if p["metadata"]["namespace"] == meta["namespace"]
                          and p["metadata"]["name"] == meta["name"]), None)
            if clash is not None:
                log.error("static pod manifest %s skipped: pod %s/%s is already defined by "
                          "another manifest", file, meta["namespace"], meta["name"])
                continue
            pods[uid] = entry.pod
        self._seen = {uid: s for uid, s in self._seen.items() if uid in pods}
        return pods

    def changed(self) -> dict[str, Obj] | None:
        """The full set after a scan, or None when it is the same set as last time."""
        pods = self.scan()
        uids = set(pods)
        if uids == self._last:
            return None
        self._last = uids
        return pods

    async def run(self, on_change: Callable[[dict[str, Obj]], None],
                  interval: float = 1.0) -> None:
        """Poll the directory every ``interval`` seconds; call ``on_change`` with the full set
        on the first scan and whenever it changes. Ends with :meth:`stop`."""
        self._stopped.clear()
        while not self._stopped.is_set():
            pods = self.changed()
            if pods is not None:
                on_change(pods)
            sleeper = asyncio.ensure_future(self.clock.sleep(interval))
            stopper = asyncio.ensure_future(self._stopped.wait())
            try:
                await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                stopper.cancel()

    def stop(self) -> None:
        self._stopped.set()
