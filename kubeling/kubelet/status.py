"""The status manager: the one writer of pod statuses from this node to the API.

Pod workers compute a pod's status on every sync and hand it here; the manager
caches it (probes and the kubelet API read it back), stamps condition
transition times, and writes ``pods/<name>/status`` only when the status
changed, from a single task so a burst of syncs becomes one write per pod.
Conditions the kubelet does not own (readiness gates, DisruptionTarget) are
kept as the API has them. A static pod's status goes to its mirror pod. Once a
pod the API is deleting has nothing left running, ``finish`` deletes it for
good, as the kubelet does (grace period 0, uid precondition).
"""

from __future__ import annotations

import asyncio
import logging

from kubeling.api import kinds
from kubeling.api.errors import StatusError
from kubeling.api.jsoncopy import json_copy
from kubeling.client.interface import Obj
from kubeling.kubelet.context import CONFIG_HASH, CONFIG_MIRROR, CONFIG_SOURCE, KubeletContext
from kubeling.kubelet.podstatus import KUBELET_CONDITIONS, TERMINAL
from kubeling.utils import tasks
from kubeling.utils.clock import rfc3339
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.kubelet.status")

RETRY_DELAY = 1.0


def is_static(pod: Obj) -> bool:
    return (pod["metadata"].get("annotations") or {}).get(CONFIG_SOURCE, "api") != "api"


def merge_conditions(api: list[Obj], ours: list[Obj]) -> list[Obj]:
    """The API's conditions the kubelet does not own, then the kubelet's own."""
    kept = [c for c in api if c.get("type") not in KUBELET_CONDITIONS]
    return kept + [c for c in ours if c.get("type") in KUBELET_CONDITIONS]


class StatusManager:
    def __init__(self, ctx: KubeletContext) -> None:
        self.ctx = ctx
        kind = kinds.by_resource("", "pods")
        assert kind is not None
        self.kind = kind
        self.pods = ctx.informers.informer(
            ("", "pods"), field_selector=f"spec.nodeName={ctx.options.node_name}")
        self._status: dict[str, Obj] = {}
        self._pod: dict[str, Obj] = {}
        self._written: dict[str, Obj] = {}
        self._dirty: dict[str, None] = {}
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self.writes = 0
        self.pods.add_handlers(add=self._pod_added)

    def _pod_added(self, pod: Obj) -> None:
        """A mirror pod (re)created: its static pod's status is written to it anew (the
        static pod's uid is the hash the mirror names)."""
        uid = (pod["metadata"].get("annotations") or {}).get(CONFIG_MIRROR)
        if uid and uid in self._status:
            self._written.pop(uid, None)
            self._dirty[uid] = None
            if self._wakeup is not None:
                self._wakeup.set()

    # ----- reading --------------------------------------------------------------------

    def status_of(self, pod_uid: str) -> Obj | None:
        return self._status.get(pod_uid)

    # ----- caching --------------------------------------------------------------------

    def set_status(self, pod: Obj, status: Obj) -> None:
        uid = pod["metadata"]["uid"]
        old = self._status.get(uid) or pod.get("status") or {}
        status = json_copy(status)
        if old.get("phase") in TERMINAL and status.get("phase") not in TERMINAL:
            status["phase"] = old["phase"]
        stamp = rfc3339(self.ctx.clock.now())
        before = {c.get("type"): c for c in old.get("conditions") or ()}
        api_before = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions")
                      or ()}
        for cond in status.get("conditions") or ():
            if cond.get("type") not in KUBELET_CONDITIONS:
                continue
            prev = before.get(cond["type"]) or api_before.get(cond["type"])
            same = prev is not None and prev.get("status") == cond.get("status")
            cond["lastTransitionTime"] = (prev or {}).get("lastTransitionTime") if same \
                else stamp
            if not cond["lastTransitionTime"]:
                cond["lastTransitionTime"] = stamp
        self._pod[uid] = pod
        self._status[uid] = status
        if self._written.get(uid) != status:
            self._dirty[uid] = None
            if self._wakeup is not None:
                self._wakeup.set()

    def forget(self, pod_uid: str) -> None:
        """Drop what is cached of a pod that is gone."""
        for table in (self._status, self._pod, self._written, self._dirty):
            table.pop(pod_uid, None)

    # ----- writing --------------------------------------------------------------------

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._lock = asyncio.Lock()
        if self._dirty:
            self._wakeup.set()
        self._task = spawn(self._run(), name="kubelet-status")

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.flush(), 5.0)
        except (TimeoutError, Exception):
            log.warning("status flush at stop did not complete")
        task, self._task = self._task, None
        await tasks.stop(task)

    async def flush(self) -> None:
        for uid in list(self._dirty):
            await self._sync(uid)

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            failed = False
            for uid in list(self._dirty):
                if not await self._sync(uid):
                    failed = True
            if failed:
                await asyncio.sleep(RETRY_DELAY)
                self._wakeup.set()

    async def _sync(self, uid: str) -> bool:
        """Write the pod's cached status if it changed; False to retry later."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if uid not in self._dirty:
                return True
            status = self._status.get(uid)
            pod = self._pod.get(uid)
            if status is None or pod is None:
                self._dirty.pop(uid, None)
                return True
            try:
                done = await self._write(pod, status)
            except Exception as exc:  # a failed write is retried, not fatal
                log.warning("status of pod %s/%s not written: %s",
                            pod["metadata"].get("namespace"), pod["metadata"]["name"], exc)
                return False
            if done and self._status.get(uid) is status:
                self._dirty.pop(uid, None)
                self._written[uid] = status
            return done

    def _target(self, pod: Obj) -> Obj | None:
        """The API pod whose status we write: the pod itself, or a static pod's mirror."""
        meta = pod["metadata"]
        if not is_static(pod):
            return self.pods.get(meta.get("namespace"), meta["name"]) or pod
        mirror = self.pods.get(meta.get("namespace"), meta["name"])
        want = (meta.get("annotations") or {}).get(CONFIG_HASH)
        if mirror is None or (mirror["metadata"].get("annotations") or {}).get(
                CONFIG_MIRROR) != want:
            return None
        return mirror

    async def _write(self, pod: Obj, status: Obj) -> bool:
        target = self._target(pod)
        if target is None:
            return False  # the mirror pod does not exist yet
        meta = target["metadata"]
        want_uid = meta.get("uid")
        for attempt in range(5):
            if attempt:
                try:
                    target = await self.ctx.client.get(self.kind, meta.get("namespace"),
                                                       meta["name"])
                except StatusError as exc:
                    if exc.code == 404:
                        return True
                    raise
                if target["metadata"].get("uid") != want_uid:
                    return True  # a different pod by the same name now
            current = target.get("status") or {}
            merged = dict(current)
            merged.update({k: v for k, v in status.items() if k != "conditions"})
            merged["conditions"] = merge_conditions(current.get("conditions") or [],
                                                    status.get("conditions") or [])
            for key in ("message", "reason"):
                if key not in status:
                    merged.pop(key, None)
            if merged == current and target.get("status") is not None:
                return True
            body = dict(target)
            body["status"] = merged
            try:
                await self.ctx.client.update(self.kind, body, subresource="status")
                self.writes += 1
                return True
            except StatusError as exc:
                if exc.code == 404:
                    return True
                if exc.code != 409:
                    raise
        return False

    # ----- final deletion ----------------------------------------------------------------

    async def finish(self, pod: Obj) -> None:
        """Write the pod's final status, then delete it for good when the API is deleting
        it (a static pod's mirror is the static pod source's business)."""
        uid = pod["metadata"]["uid"]
        if uid in self._dirty:
            await self._sync(uid)
        if is_static(pod) or not pod["metadata"].get("deletionTimestamp"):
            return
        meta = pod["metadata"]
        try:
            await self.ctx.client.delete(self.kind, meta.get("namespace"), meta["name"],
                                         options={"gracePeriodSeconds": 0,
                                                  "preconditions": {"uid": uid}})
        except StatusError as exc:
            if exc.code not in (404, 409):
                raise
        self.forget(uid)
