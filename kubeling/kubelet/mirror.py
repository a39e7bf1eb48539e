"""Mirror pods: how the API sees the static pods a node runs on its own.

A static pod never comes from the API, yet ``kubectl get pods`` should list it.
For each one the agent keeps a *mirror pod* in the API: a copy with the same
namespace and name, marked ``kubernetes.io/config.mirror: <config hash>`` and
owned by this Node (controller true, as the kubelet sets it since the
MirrorPodNodeRestriction change). The mirror is only a reflection: deleting it
through the API does not stop the static pod — the next sync puts it back —
and the mirror's status is written by the agent's status manager from the
static pod's. A mirror whose static pod is gone, or whose hash no longer
matches the manifest, is deleted at once (grace 0, conditional on its uid) and,
in the second case, recreated.

The agent's pod sources must not run a mirror pod as an API pod: see
:func:`is_mirror_pod`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kubeling.api import kinds
from kubeling.api.errors import StatusError
from kubeling.api.jsoncopy import json_copy
from kubeling.api.kinds import Kind
from kubeling.client.interface import Client, Obj
from kubeling.kubelet.context import CONFIG_HASH, CONFIG_MIRROR, CONFIG_SOURCE

log = logging.getLogger("kubeling.kubelet.mirror")



def _kind(resource: str) -> Kind:
    found = kinds.by_resource("", resource)
    assert found is not None
    return found


PODS = _kind("pods")
NODES = _kind("nodes")


def is_mirror_pod(pod: Obj) -> bool:
    return CONFIG_MIRROR in ((pod.get("metadata") or {}).get("annotations") or {})


def is_static_pod(pod: Obj) -> bool:
    source = ((pod.get("metadata") or {}).get("annotations") or {}).get(CONFIG_SOURCE)
    return source is not None and source != "api"


def _hash_of(pod: Obj) -> str:
    return str(((pod.get("metadata") or {}).get("annotations") or {}).get(CONFIG_HASH, ""))


def _mirror_hash(pod: Obj) -> str:
    return str(((pod.get("metadata") or {}).get("annotations") or {}).get(CONFIG_MIRROR, ""))


@dataclass(frozen=True)
class MirrorRef:
    """The mirror pod of a static pod as last seen in the API."""

    namespace: str
    name: str
    uid: str


def build_mirror_pod(static: Obj, *, node_name: str, node_uid: str) -> Obj:
    """The object to create in the API for ``static``."""
    pod = json_copy(static)
    meta = pod["metadata"]
    for key in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
                "deletionGracePeriodSeconds", "managedFields", "generation"):
        meta.pop(key, None)
    annotations = dict(meta.get("annotations") or {})
    annotations[CONFIG_MIRROR] = _hash_of(static)
    meta["annotations"] = annotations
    meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node_name,
                                "uid": node_uid, "controller": True}]
    pod.pop("status", None)
    return pod


class MirrorPods:
    """Keeps one mirror pod in the API per static pod of this node.

    ``pods`` (optional) lists this node's pods from a cache, e.g. the agent's pod
    informer; without it each sync lists them from the API. Call :meth:`sync` whenever
    the static set changes, whenever a mirror pod of this node is updated or deleted in
    the API, and periodically."""

    def __init__(self, client: Client, node_name: str, *,
                 pods: Callable[[], Iterable[Obj]] | None = None) -> None:
        self.client = client
        self.node_name = node_name
        self._pods = pods
        self._mirrors: dict[str, MirrorRef] = {}  # static uid → its mirror

    def mirror_of(self, static_uid: str) -> MirrorRef | None:
        """Where the status of the static pod ``static_uid`` goes (None: no mirror yet)."""
        return self._mirrors.get(static_uid)

    async def _node_pods(self) -> list[Obj]:
        if self._pods is not None:
            return list(self._pods())
        result = await self.client.list(PODS, None,
                                        field_selector=f"spec.nodeName={self.node_name}")
        return result.items

    async def _node_uid(self) -> str | None:
        try:
            node = await self.client.get(NODES, None, self.node_name)
        except StatusError as exc:
            if exc.code == 404:
                return None
            raise
        return str(node["metadata"]["uid"])

    async def _delete(self, pod: Obj) -> bool:
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["namespace"], meta["name"], options={
                "gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}})
        except StatusError as exc:
            if exc.code not in (404, 409):
                log.warning("deleting mirror pod %s/%s: %s", meta["namespace"],
                            meta["name"], exc)
                return False
        log.info("deleted mirror pod %s/%s", meta["namespace"], meta["name"])
        return True

    async def sync(self, static: dict[str, Obj]) -> None:
        """Make the API's mirror pods match ``static`` (static uid → pod)."""
        existing: dict[tuple[str, str], Obj] = {}
        for pod in await self._node_pods():
            meta = pod.get("metadata") or {}
            if (pod.get("spec") or {}).get("nodeName") != self.node_name:
                continue
            existing[(meta.get("namespace", ""), meta.get("name", ""))] = pod
        wanted = {(p["metadata"]["namespace"], p["metadata"]["name"]): p
                  for p in static.values()}
        for key, pod in existing.items():
            if is_mirror_pod(pod) and key not in wanted:
                await self._delete(pod)
        node_uid: str | None = None
        mirrors: dict[str, MirrorRef] = {}
        for key, spod in wanted.items():
            uid = spod["metadata"]["uid"]
            current = existing.get(key)
            if current is not None and not is_mirror_pod(current):
                log.warning("cannot mirror static pod %s/%s: a pod of that name that is not "
                            "a mirror pod exists", *key)
                continue
            if current is not None:
                fresh = (_mirror_hash(current) == _hash_of(spod)
                         and not current["metadata"].get("deletionTimestamp"))
                if fresh:
                    mirrors[uid] = MirrorRef(*key, current["metadata"]["uid"])
                    continue
                if not await self._delete(current):
                    continue
            if node_uid is None:
                node_uid = await self._node_uid()
                if node_uid is None:
                    log.info("node %s not registered yet; mirror pods wait for it",
                             self.node_name)
                    break
            created = await self._create(spod, node_uid)
            if created is not None:
                mirrors[uid] = MirrorRef(*key, created["metadata"]["uid"])
        self._mirrors = mirrors

    async def _create(self, static: Obj, node_uid: str) -> Obj | None:
        body = build_mirror_pod(static, node_name=self.node_name, node_uid=node_uid)
        meta = body["metadata"]
        try:
            created = await self.client.create(PODS, meta["namespace"], body)
        except StatusError as exc:
            if exc.code == 409:
                try:
                    found = await self.client.get(PODS, meta["namespace"], meta["name"])
                except StatusError:
                    return None
                return found if _mirror_hash(found) == _hash_of(static) else None
            log.warning("creating mirror pod %s/%s: %s", meta["namespace"], meta["name"],
                        exc)
            return None
        log.info("created mirror pod %s/%s", meta["namespace"], meta["name"])
        return created
