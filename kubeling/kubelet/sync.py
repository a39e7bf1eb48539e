"""One pod's sync: make the runtime match the pod spec, then report its status.

The kubelet's ``computePodActions`` + ``SyncPod`` in Python: ensure the
volumes and the sandbox, kill containers that must go (liveness or startup
probe failed, definition changed), run init containers one at a time in order,
then start every container that should run, pacing restarts with a per
container back-off (CrashLoopBackOff). Every step reads the runtime afresh;
what could not be done is remembered as a waiting reason for the status and
retried at the next sync. ``terminate`` is the graceful kill of a whole pod.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from kubeling.client.events import NORMAL, WARNING
from kubeling.client.interface import Obj
from kubeling.kubelet import containers as cspec
from kubeling.kubelet import hooks, podstatus
from kubeling.kubelet.backoff import Backoff, go_duration
from kubeling.kubelet.context import CONTAINER_HASH, PRE_STOP_HANDLER, KubeletContext
from kubeling.kubelet.interfaces import ProbeKind, ProbeResult, Probes, VolumeError, Volumes
from kubeling.kubelet.podimages import ImagePuller, StartError
from kubeling.kubelet.podruntime import PodRuntime, container_name, observe, restart_count
from kubeling.kubelet.podsandbox import sandbox_config
from kubeling.kubelet.status import StatusManager
from kubeling.runtime.protocol import ContainerState, ContainerStatus, NotFound, RuntimeFailure

log = logging.getLogger("kubeling.kubelet.sync")

MIN_GRACE = 2.0


@dataclass
class SyncOutcome:
    phase: str
    retry_in: float | None = None  # seconds until a back-off ends or a retry is due


def _grace_override(container: Obj, kind: ProbeKind) -> float | None:
    probe = container.get("livenessProbe" if kind is ProbeKind.LIVENESS else "startupProbe")
    value = (probe or {}).get("terminationGracePeriodSeconds")
    return None if value is None else float(value)


class PodSyncer:
    def __init__(self, ctx: KubeletContext, *, volumes: Volumes, probes: Probes,
                 status: StatusManager) -> None:
        self.ctx = ctx
        self.volumes = volumes
        self.probes = probes
        self.status = status
        o = ctx.options
        self.backoff = Backoff(ctx.clock, initial=o.backoff_initial, maximum=o.backoff_max,
                               reset=o.backoff_reset)
        self.images = ImagePuller(ctx)
        self.reasons: dict[str, dict[str, tuple[str, str]]] = {}
        self.messages: dict[str, str] = {}  # container id -> termination message

    # ----- status ---------------------------------------------------------------------

    def report(self, pod: Obj, state: PodRuntime, *, terminal: bool = False) -> Obj:
        uid = pod["metadata"]["uid"]
        for c in state.containers:
            if c.state is ContainerState.EXITED and c.id not in self.messages:
                self.messages[c.id] = cspec.termination_message(self.ctx.options, uid, c)
        status = podstatus.generate(
            pod, state, runtime_name=self.ctx.runtime.name, probes=self.probes,
            reasons=self.reasons.get(uid, {}), messages=self.messages,
            host_ip=self.ctx.node_ip, now=self.ctx.clock.now(), terminal=terminal)
        self.status.set_status(pod, status)
        return status

    def forget(self, uid: str) -> None:
        self.reasons.pop(uid, None)
        self.backoff.forget(f"{uid}/")
        self.images.forget(uid)

    def _reason(self, uid: str, name: str, reason: str, message: str) -> None:
        self.reasons.setdefault(uid, {})[name] = (reason, message)

    def _clear_reason(self, uid: str, name: str) -> None:
        self.reasons.get(uid, {}).pop(name, None)

    # ----- the sync ---------------------------------------------------------------------

    async def sync(self, pod: Obj, *, terminal: bool = False) -> SyncOutcome:
        """Bring the pod's containers to what its spec asks for, then report its status.
        A terminal pod (Succeeded/Failed) gets its status reported and nothing started."""
        uid = pod["metadata"]["uid"]
        if terminal:
            state = await observe(self.ctx.runtime, uid)
            return SyncOutcome(self.report(pod, state)["phase"])
        retry: list[float] = []
        try:
            paths = await self.volumes.setup(pod)
        except VolumeError as exc:
            self.ctx.recorder.event(pod, WARNING, exc.reason, exc.message)
            state = await observe(self.ctx.runtime, uid)
            self.report(pod, state)
            return SyncOutcome("Pending", retry_in=2.0)
        state = await observe(self.ctx.runtime, uid)
        if state.ready_sandbox is None:
            created = await self._ensure_sandbox(pod, state)
            if created is None:
                return SyncOutcome(self.report(pod, state)["phase"], retry_in=2.0)
            state = await observe(self.ctx.runtime, uid)
            if state.ready_sandbox is None:
                return SyncOutcome(self.report(pod, state)["phase"], retry_in=2.0)
        self.probes.add_pod(pod)
        await self._kill_unwanted(pod, state)
        state = await observe(self.ctx.runtime, uid)
        for container, init in self._to_start(pod, state):
            wait = await self._start(pod, container, state, paths, init=init)
            if wait is not None:
                retry.append(wait)
        state = await observe(self.ctx.runtime, uid)
        status = self.report(pod, state)
        from kubeling.kubelet.containergc import collect

        if await collect(self.ctx.runtime, self.ctx.options, state):
            state = await observe(self.ctx.runtime, uid)
        return SyncOutcome(status["phase"], retry_in=min(retry) if retry else None)

    async def _ensure_sandbox(self, pod: Obj, state: PodRuntime) -> str | None:
        uid = pod["metadata"]["uid"]
        if state.sandbox is not None:
            # The sandbox died: everything in it goes, and it is made again (unless the
            # pod must never restart and has already run).
            await self.kill_containers(pod, state.running(), grace=0)
            if podstatus.restart_policy(pod) == "Never" and state.containers:
                return None
        attempt = state.sandbox.attempt + 1 if state.sandbox is not None else 0
        config = sandbox_config(pod, self.ctx.options, attempt=attempt, objects=self.ctx.objects,
                                recorder=self.ctx.recorder)
        try:
            return await self.ctx.runtime.run_pod_sandbox(config)
        except RuntimeFailure as exc:
            self.ctx.recorder.event(pod, WARNING, "FailedCreatePodSandBox",
                                    f"Failed to create pod sandbox: {exc.message}")
            log.warning("sandbox for pod %s not created: %s", uid, exc.message)
            return None

    async def _kill_unwanted(self, pod: Obj, state: PodRuntime) -> None:
        spec = pod.get("spec") or {}
        by_name = {c["name"]: c for c in spec.get("containers") or ()}
        by_name.update({c["name"]: c for c in spec.get("initContainers") or ()})
        kills: list[tuple[ContainerStatus, str, float | None]] = []
        for c in state.running():
            name = container_name(c)
            container = by_name.get(name)
            if container is None:
                kills.append((c, f"Container {name} is not in the pod spec", None))
            elif c.annotations.get(CONTAINER_HASH, "") not in ("", cspec.container_hash(
                    container)):
                kills.append((c, f"Container {name} definition changed, will be restarted",
                              None))
            elif self.probes.result(ProbeKind.LIVENESS, c.id) is ProbeResult.FAILURE:
                kills.append((c, f"Container {name} failed liveness probe, will be restarted",
                              _grace_override(container, ProbeKind.LIVENESS)))
            elif self.probes.result(ProbeKind.STARTUP, c.id) is ProbeResult.FAILURE:
                kills.append((c, f"Container {name} failed startup probe, will be restarted",
                              _grace_override(container, ProbeKind.STARTUP)))
        if not kills:
            return
        default = float(cspec.grace_period(pod))
        await asyncio.gather(*(
            self.kill_container(pod, c, by_name.get(container_name(c)),
                                grace=default if override is None else override,
                                message=message)
            for c, message, override in kills))

    def _to_start(self, pod: Obj, state: PodRuntime) -> list[tuple[Obj, bool]]:
        """The containers to (re)start now, in order: the next init container, or every
        regular container that should run."""
        spec = pod.get("spec") or {}
        regular = list(spec.get("containers") or ())
        started_regular = any(state.of(c["name"]) for c in regular)
        out: list[tuple[Obj, bool]] = []
        if not started_regular:
            for c in spec.get("initContainers") or ():
                latest = state.latest(c["name"])
                if podstatus.is_sidecar(c):
                    if latest is None or latest.state is not ContainerState.RUNNING:
                        out.append((c, True))
                        return out
                    cid = latest.id
                    if self.probes.result(ProbeKind.STARTUP, cid) not in (None,
                                                                         ProbeResult.SUCCESS):
                        return out
                    continue
                if latest is None or latest.state is ContainerState.CREATED:
                    out.append((c, True))
                    return out
                if latest.state in (ContainerState.RUNNING, ContainerState.UNKNOWN):
                    return out
                if latest.exit_code == 0:
                    continue
                if podstatus.restart_policy(pod) != "Never":
                    out.append((c, True))
                return out
        else:
            for c in spec.get("initContainers") or ():
                if podstatus.is_sidecar(c) and podstatus.should_restart(
                        pod, c, state.latest(c["name"])):
                    out.append((c, True))
        for c in regular:
            if podstatus.should_restart(pod, c, state.latest(c["name"])):
                out.append((c, False))
        return out

    # ----- starting -------------------------------------------------------------------

    async def _start(self, pod: Obj, container: Obj, state: PodRuntime, paths: dict[str, str],
                     *, init: bool) -> float | None:
        """Start one container; seconds until a retry is due when it could not be."""
        uid, name = pod["metadata"]["uid"], container["name"]
        try:
            await self._start_container(pod, container, state, paths, init=init)
        except StartError as exc:
            self._reason(uid, name, exc.reason, exc.message)
            return exc.retry_in if exc.retry_in is not None else 2.0
        self._clear_reason(uid, name)
        return None

    async def _start_container(self, pod: Obj, container: Obj, state: PodRuntime,
                               paths: dict[str, str], *, init: bool) -> None:
        ctx, meta = self.ctx, pod["metadata"]
        uid, name = meta["uid"], container["name"]
        previous = state.latest(name)
        if previous is not None and previous.state is ContainerState.EXITED:
            key = f"{uid}/{name}/{cspec.container_hash(container)}"
            finished = previous.finished_at or ctx.clock.now()
            if self.backoff.in_backoff(key, finished):
                delay = self.backoff.delay(key)
                ref = hooks.pod_ref(pod)
                ctx.recorder.event(pod, WARNING, "BackOff",
                                   f"Back-off restarting failed container {name} in pod {ref}")
                raise StartError("CrashLoopBackOff",
                                 f"back-off {go_duration(delay)} restarting failed "
                                 f"container={name} pod={ref}",
                                 retry_in=self.backoff.remaining(key, finished))
            self.backoff.next(key, finished)
        await self.images.ensure(pod, container)
        attempt = restart_count(previous) + 1 if previous is not None else \
            self._attempt_from_logs(pod, name)
        sandbox = state.ready_sandbox
        assert sandbox is not None
        try:
            env = cspec.make_env(pod, container, objects=ctx.objects,
                                 node_name=ctx.options.node_name, host_ip=ctx.node_ip,
                                 pod_ip=sandbox.ip)
            argv = cspec.make_argv(container, env)
            mounts = self.volumes.mounts(pod, container, paths)
        except (cspec.EnvConfigError, VolumeError) as exc:
            message = exc.message if isinstance(exc, VolumeError) else str(exc)
            ctx.recorder.event(pod, WARNING, "Failed", f"Error: {message}")
            raise StartError("CreateContainerConfigError", message) from exc
        config = cspec.build_config(pod, container, options=ctx.options, attempt=attempt,
                                    env=env, argv=argv, mounts=mounts, init=init)
        sb_config = sandbox_config(pod, ctx.options, attempt=sandbox.attempt, objects=ctx.objects)
        try:
            cid = await ctx.runtime.create_container(sandbox.id, config, sb_config)
        except RuntimeFailure as exc:
            ctx.recorder.event(pod, WARNING, "Failed", f"Error: {exc.message}")
            raise StartError("CreateContainerError", exc.message) from exc
        ctx.recorder.event(pod, NORMAL, "Created", f"Created container: {name}")
        try:
            await ctx.runtime.start_container(cid)
        except RuntimeFailure as exc:
            ctx.recorder.event(pod, WARNING, "Failed", f"Error: {exc.message}")
            raise StartError("RunContainerError", exc.message) from exc
        ctx.recorder.event(pod, NORMAL, "Started", f"Started container {name}")
        if (container.get("lifecycle") or {}).get("postStart"):
            ok = await hooks.post_start(ctx, pod, container, cid, sandbox.ip,
                                        timeout=float(cspec.grace_period(pod)))
            if not ok:
                status = await ctx.runtime.container_status(cid)
                await self.kill_container(pod, status, container,
                                          grace=float(cspec.grace_period(pod)),
                                          message="FailedPostStartHook")
                raise StartError("PostStartHookError", "PostStartHook failed")

    def _attempt_from_logs(self, pod: Obj, name: str) -> int:
        """After a container was removed, its restart count carries on from its logs."""
        meta = pod["metadata"]
        folder = self.ctx.options.container_log_path(meta.get("namespace", ""), meta["name"],
                                                     meta["uid"], name, 0).parent
        try:
            attempts = [int(p.name.split(".", 1)[0]) for p in folder.iterdir()
                        if p.name.split(".", 1)[0].isdigit()]
        except OSError:
            return 0
        return max(attempts) + 1 if attempts else 0

    # ----- stopping -------------------------------------------------------------------

    async def kill_container(self, pod: Obj, c: ContainerStatus, container: Obj | None, *,
                             grace: float, message: str) -> None:
        ctx = self.ctx
        name = container_name(c)
        ctx.recorder.event(pod, NORMAL, "Killing", message)
        if container is None and c.annotations.get(PRE_STOP_HANDLER):
            container = {"name": name, "lifecycle": {
                "preStop": json.loads(c.annotations[PRE_STOP_HANDLER])}}
        used = 0.0
        if container is not None and c.state is ContainerState.RUNNING:
            pod_ip = (self.status.status_of(pod["metadata"]["uid"]) or {}).get("podIP", "")
            used = await hooks.pre_stop(ctx, pod, container, c.id, pod_ip, grace)
        timeout = max(grace - used, MIN_GRACE)
        try:
            await ctx.runtime.stop_container(c.id, timeout)
        except NotFound:
            pass

    async def kill_containers(self, pod: Obj, running: list[ContainerStatus], *,
                              grace: float) -> None:
        spec = pod.get("spec") or {}
        by_name = {c["name"]: c for c in [*(spec.get("initContainers") or ()),
                                          *(spec.get("containers") or ())]}
        await asyncio.gather(*(
            self.kill_container(pod, c, by_name.get(container_name(c)), grace=grace,
                                message=f"Stopping container {container_name(c)}")
            for c in running))

    async def terminate(self, pod: Obj, grace: float) -> PodRuntime:
        """Stop every container (preStop first, all in parallel, within ``grace``), then
        the sandbox. Returns what the runtime then has of the pod."""
        uid = pod["metadata"]["uid"]
        state = await observe(self.ctx.runtime, uid)
        await self.kill_containers(pod, state.running(), grace=grace)
        for sb in state.sandboxes:
            try:
                await self.ctx.runtime.stop_pod_sandbox(sb.id)
            except NotFound:
                pass
        self.probes.remove_pod(uid)
        return await observe(self.ctx.runtime, uid)
