"""The scheduler: pending pods in, bindings out.

Informer handlers keep the cache (nodes, bound pods, namespaces) and the
queue (pending pods whose ``spec.schedulerName`` is ours) current and turn
cluster changes into queue events. The loop pops one pod at a time and runs
its scheduling cycle without awaiting, assumes the pod on the chosen node,
and hands the binding to a task of its own, so writing bindings never holds
up the next decision. A pod no node fits gets the PodScheduled=False
condition and a FailedScheduling event worded as Kubernetes words them, and
waits in the queue for an event that could help.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from kubeling.api import errors, kinds
from kubeling.client.events import NORMAL, WARNING, EventRecorder
from kubeling.client.informer import Informers
from kubeling.client.interface import Client, Obj
from kubeling.scheduler.cache import Cache
from kubeling.scheduler.framework import CycleState, Event
from kubeling.scheduler.nodeinfo import PodInfo
from kubeling.scheduler.plugins import DEFAULT_PLUGINS
from kubeling.scheduler.preemption import dry_run
from kubeling.scheduler.profile import FitError, NoNodesAvailable, Profile
from kubeling.scheduler.queue import INITIAL_BACKOFF, MAX_BACKOFF, QueuedPod, SchedulingQueue
from kubeling.utils.clock import REAL, Clock, rfc3339
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.scheduler")

NOTE_LIMIT = 1024
UNSCHEDULABLE = "Unschedulable"
SCHEDULER_ERROR = "SchedulerError"


@dataclass
class SchedulerOptions:
    scheduler_name: str = "default-scheduler"
    percentage_of_nodes_to_score: int = 0  # 0: Kubernetes' adaptive default
    parallelism: int = 64  # bindings written at once
    assumed_pod_ttl: float = 30.0
    initial_backoff: float = INITIAL_BACKOFF
    max_backoff: float = MAX_BACKOFF
    plugins: tuple[tuple[str, int], ...] = DEFAULT_PLUGINS
    plugin_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int | None = None


def truncate(message: str) -> str:
    if len(message) <= NOTE_LIMIT:
        return message
    return message[:NOTE_LIMIT - 4] + " ..."


def _assigned(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _key(pod: Obj) -> str:
    return f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}"


class Scheduler:
    def __init__(self, client: Client, informers: Informers, *, clock: Clock = REAL,
                 options: SchedulerOptions | None = None,
                 recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.informers = informers
        self.clock = clock
        self.options = options or SchedulerOptions()
        opts = self.options
        self.cache = Cache(assumed_ttl=opts.assumed_pod_ttl)
        self.profile = Profile(self.cache, scheduler_name=opts.scheduler_name,
                               plugins=opts.plugins,
                               percentage_of_nodes_to_score=opts.percentage_of_nodes_to_score,
                               plugin_args=opts.plugin_args, rng=random.Random(opts.seed))
        self.queue = SchedulingQueue(
            clock=clock, initial_backoff=opts.initial_backoff, max_backoff=opts.max_backoff,
            plugin_events={p.name: getattr(p, "events", Event.NONE)
                           for p in self.profile.plugins})
        self.recorder = recorder or EventRecorder(client, opts.scheduler_name, clock=clock)
        self.pods_kind = kinds.by_resource("", "pods")
        self.pods = informers.informer(("", "pods"))
        self.nodes = informers.informer(("", "nodes"))
        self.namespaces = informers.informer(("", "namespaces"))
        self.pods.add_handlers(add=self._pod_added, update=self._pod_updated,
                               delete=self._pod_deleted)
        self.nodes.add_handlers(add=self._node_added, update=self._node_updated,
                                delete=self._node_deleted)
        self.namespaces.add_handlers(add=self.cache.set_namespace,
                                     update=lambda _o, n: self.cache.set_namespace(n),
                                     delete=self.cache.remove_namespace)
        self._binds = asyncio.Semaphore(max(1, opts.parallelism))
        self._running = False
        self._tasks: list[asyncio.Task[Any]] = []
        self.scheduled = 0
        self.failed_attempts = 0
        self.bind_errors = 0

    # ----- informer handlers -------------------------------------------------------------

    def responsible(self, pod: Obj) -> bool:
        spec = pod.get("spec") or {}
        return (spec.get("schedulerName") or "default-scheduler") == self.options.scheduler_name

    def _pending(self, pod: Obj) -> bool:
        return (not _assigned(pod) and self.responsible(pod)
                and not pod["metadata"].get("deletionTimestamp")
                and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))

    def _pod_added(self, pod: Obj) -> None:
        if _assigned(pod):
            self.cache.add_pod(pod)
            self.queue.on_event(Event.ASSIGNED_POD_ADD)
        elif self._pending(pod):
            self.queue.add(PodInfo(pod))

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if _assigned(new):
            if not _assigned(old):
                self.queue.delete(_key(new))
                self.cache.add_pod(new)
                self.queue.on_event(Event.ASSIGNED_POD_ADD)
                return
            self.cache.update_pod(old, new)
            if old["metadata"].get("labels") != new["metadata"].get("labels"):
                self.queue.on_event(Event.ASSIGNED_POD_UPDATE)
        elif self._pending(new):
            if old.get("spec") != new.get("spec") or \
                    old["metadata"].get("labels") != new["metadata"].get("labels"):
                self.queue.add(PodInfo(new))
        else:
            self.queue.delete(_key(new))

    def _pod_deleted(self, pod: Obj) -> None:
        key = _key(pod)
        if _assigned(pod) or self.cache.has_pod(key):
            self.cache.remove_pod(pod)
            self.queue.on_event(Event.ASSIGNED_POD_DELETE)
        self.queue.delete(key)

    def _node_added(self, node: Obj) -> None:
        self.cache.add_node(node)
        self.queue.on_event(Event.NODE_ADD)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        ev = self.cache.update_node(old, new)
        if ev:
            self.queue.on_event(ev)

    def _node_deleted(self, node: Obj) -> None:
        self.cache.remove_node(node)
        self.queue.on_event(Event.NODE_DELETE)

    # ----- the loop ----------------------------------------------------------------------

    def healthy(self) -> bool:
        return self._running and all(not t.done() for t in self._tasks)

    async def run(self) -> None:
        """Schedule until cancelled."""
        self.informers.start()
        await asyncio.gather(self.pods.wait_synced(), self.nodes.wait_synced(),
                             self.namespaces.wait_synced())
        self._tasks = [
            spawn(self.queue.run_backoff_flusher(), name="scheduler-backoff"),
            spawn(self.queue.run_unschedulable_flusher(), name="scheduler-unschedulable"),
            spawn(self._cleanup_assumed(), name="scheduler-assumed-ttl"),
        ]
        self._running = True
        log.info("scheduler %s running (%d nodes, %d pending)", self.options.scheduler_name,
                 self.cache.num_nodes(), len(self.queue))
        try:
            while True:
                qp = await self.queue.pop()
                self.schedule_one(qp)
                await asyncio.sleep(0)
        finally:
            self._running = False
            self.queue.close()
            for t in self._tasks:
                t.cancel()

    async def _cleanup_assumed(self) -> None:
        while True:
            await self.clock.sleep(1.0)
            for key in self.cache.cleanup_expired(self.clock.monotonic()):
                log.warning("assumed pod %s expired before its binding was seen", key)

    def schedule_one(self, qp: QueuedPod) -> None:
        """One scheduling cycle: decide, assume, and start the binding."""
        pod = qp.info
        live = self.pods.get_by_key(pod.key)
        if live is None or not self._pending(live) or self.cache.has_pod(pod.key):
            self.queue.done(pod.key)
            return
        state = CycleState()
        try:
            result = self.profile.schedule(pod, state)
        except FitError as fe:
            self.failed_attempts += 1
            post = dry_run(self.profile, state, pod, fe.diagnosis)
            fe.diagnosis.post_filter_msg = post.message
            self._failure(qp, str(fe), UNSCHEDULABLE, fe.diagnosis.unschedulable_plugins)
            return
        except NoNodesAvailable as exc:
            self.failed_attempts += 1
            self._failure(qp, str(exc), UNSCHEDULABLE, set())
            return
        except Exception as exc:  # a plugin bug must not stop the scheduler
            log.exception("scheduling %s failed", pod.key)
            self._failure(qp, str(exc), SCHEDULER_ERROR, set(), error=True)
            return
        self.cache.assume_pod(pod, result.node)
        self.queue.done(pod.key)
        spawn(self._bind(qp, result.node), name=f"bind-{pod.key}")

    async def _bind(self, qp: QueuedPod, node: str) -> None:
        pod = qp.info
        try:
            async with self._binds:
                await self.client.bind(pod.namespace, pod.name, node, uid=pod.uid)
        except (errors.StatusError, ConnectionError, OSError) as exc:
            self.bind_errors += 1
            self.cache.forget_pod(pod.key)
            self.queue.on_event(Event.ASSIGNED_POD_DELETE)
            message = getattr(exc, "message", "") or repr(exc)
            log.info("binding %s to %s failed: %s", pod.key, node, message)
            live = self.pods.get_by_key(pod.key)
            if live is not None and self._pending(live):
                self.queue.add(PodInfo(live))
                self._report(live, f"Binding rejected: {message}", SCHEDULER_ERROR)
            return
        self.cache.finish_binding(pod.key, self.clock.monotonic())
        self.scheduled += 1
        self.recorder.event(pod.pod, NORMAL, "Scheduled",
                            f"Successfully assigned {pod.namespace}/{pod.name} to {node}")

    # ----- failures ------------------------------------------------------------------------

    def _failure(self, qp: QueuedPod, message: str, reason: str, plugins: set[str], *,
                 error: bool = False) -> None:
        self.queue.requeue(qp, unschedulable_plugins=plugins, error=error)
        live = self.pods.get_by_key(qp.key) or qp.info.pod
        log.debug("pod %s unschedulable: %s", qp.key, message)
        self._report(live, message, reason)

    def _report(self, pod: Obj, message: str, reason: str) -> None:
        self.recorder.event(pod, WARNING, "FailedScheduling", truncate(message))
        cond = next((c for c in (pod.get("status") or {}).get("conditions") or ()
                     if c.get("type") == "PodScheduled"), None)
        if cond is not None and cond.get("status") == "False" and \
                cond.get("reason") == reason and cond.get("message") == message:
            return
        since = (cond.get("lastTransitionTime") if cond is not None
                 and cond.get("status") == "False" else None) or rfc3339(self.clock.now())
        # Conditional on the pod as seen: a bind that landed meanwhile wins (409, dropped),
        # and the pod's next attempt reports again if it is still unschedulable.
        patch = {"metadata": {"resourceVersion": pod["metadata"].get("resourceVersion")},
                 "status": {"conditions": [{
                     "type": "PodScheduled", "status": "False", "reason": reason,
                     "message": message, "lastProbeTime": None,
                     "lastTransitionTime": since}]}}
        spawn(self._patch_status(pod, patch), name=f"pod-condition-{_key(pod)}")

    async def _patch_status(self, pod: Obj, patch: Obj) -> None:
        assert self.pods_kind is not None
        meta = pod["metadata"]
        try:
            await self.client.patch(self.pods_kind, meta.get("namespace"), meta["name"], patch,
                                    patch_type="strategic", subresource="status")
        except errors.StatusError as exc:
            log.debug("pod %s condition not written: %s", _key(pod), exc.message)
        except (ConnectionError, OSError) as exc:
            log.debug("pod %s condition not written: %r", _key(pod), exc)
