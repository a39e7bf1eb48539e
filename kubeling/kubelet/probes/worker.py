"""One probe of one container of one pod, run on its schedule (the kubelet's probe worker).

The worker reads the container's current id, state and start time and the pod
IP from the status the agent last computed. For every run of the container it
starts from the kind's initial result, waits ``initialDelaySeconds`` after the
container started, then probes every ``periodSeconds`` with
``timeoutSeconds``. A result is published once ``successThreshold`` successes
or ``failureThreshold`` failures come in a row. A liveness or startup Failure
puts the worker on hold until the container is replaced. Liveness and
readiness wait for the startup probe to succeed. The worker looks at the
status at least every second (and at once when poked), so a new container or
a passed startup probe is noticed promptly, but it only probes on schedule.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from kubeling.client.events import WARNING
from kubeling.client.interface import Obj
from kubeling.kubelet.handlers import run_handler
from kubeling.kubelet.interfaces import ProbeKind, ProbeResult
from kubeling.kubelet.probes.results import INITIAL, METRIC_RESULT, PROBE_TOTAL, bare_id
from kubeling.utils.clock import parse_rfc3339

if TYPE_CHECKING:
    from kubeling.kubelet.probes.manager import ProbeManager

POLL = 1.0


def container_status(status: Obj, name: str) -> Obj | None:
    for key in ("containerStatuses", "initContainerStatuses"):
        for cs in status.get(key) or ():
            if cs.get("name") == name:
                return cs
    return None


class ProbeWorker:
    def __init__(self, manager: ProbeManager, pod: Obj, container: Obj, kind: ProbeKind,
                 spec: Obj) -> None:
        self.manager = manager
        self.pod = pod
        self.uid: str = pod["metadata"]["uid"]
        self.container = container
        self.name: str = container["name"]
        self.kind = kind
        self.spec = spec
        self.period = float(max(1, int(spec.get("periodSeconds") or 10)))
        self.timeout = float(max(1, int(spec.get("timeoutSeconds") or 1)))
        self.initial_delay = float(max(0, int(spec.get("initialDelaySeconds") or 0)))
        self.failure_threshold = max(1, int(spec.get("failureThreshold") or 3))
        self.success_threshold = 1 if kind is not ProbeKind.READINESS else \
            max(1, int(spec.get("successThreshold") or 1))
        self.cid = ""
        self.on_hold = False
        self.last: ProbeResult | None = None
        self.run_count = 0
        self.next_due = 0.0
        self.done = False
        self.poke = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @property
    def key(self) -> tuple[str, str, ProbeKind]:
        return (self.uid, self.name, self.kind)

    async def run(self) -> None:
        try:
            while True:
                wait = await self.step()
                if wait is None:
                    return
                await self._pause(wait)
        finally:
            self.done = True

    async def _pause(self, seconds: float) -> None:
        if self.poke.is_set():
            self.poke.clear()
            await asyncio.sleep(0)
            return
        sleeper = asyncio.ensure_future(self.manager.clock.sleep(max(0.0, seconds)))
        poked = asyncio.ensure_future(self.poke.wait())
        try:
            await asyncio.wait({sleeper, poked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            poked.cancel()
            self.poke.clear()

    async def step(self) -> float | None:
        """Look at the status, probe if due; the seconds to wait, or None to stop."""
        results = self.manager.results
        status = self.manager.status.status_of(self.uid)
        if status is None:
            return POLL
        if status.get("phase") in ("Succeeded", "Failed"):
            return None
        cs = container_status(status, self.name)
        cid = bare_id((cs or {}).get("containerID") or "")
        if cs is None or not cid:
            return POLL
        if cid != self.cid:
            if self.cid:
                results.remove(self.kind, self.cid)
            self.cid = cid
            results.set(self.kind, cid, INITIAL[self.kind], self.uid,
                        announce=self.manager.was_asked(self.kind, cid))
            self.on_hold = False
            self.last = None
            self.run_count = 0
            self.next_due = 0.0
        if self.on_hold:
            return POLL
        state = cs.get("state") or {}
        running = state.get("running")
        if running is None:
            if self.kind is ProbeKind.READINESS:
                results.set(self.kind, cid, ProbeResult.FAILURE, self.uid)
            if "terminated" in state and \
                    (self.pod.get("spec") or {}).get("restartPolicy") == "Never":
                return None
            return POLL
        if (self.pod.get("metadata") or {}).get("deletionTimestamp") and \
                self.kind is not ProbeKind.READINESS:
            results.set(self.kind, cid, ProbeResult.SUCCESS, self.uid)
            return POLL
        started = running.get("startedAt")
        if started:
            since = self.manager.clock.now() - parse_rfc3339(started)
            if since < self.initial_delay:
                return min(POLL, self.initial_delay - since)
        if self.kind is ProbeKind.STARTUP:
            if results.get(ProbeKind.STARTUP, cid) is ProbeResult.SUCCESS:
                return POLL
        elif self.manager.has_probe(self.uid, self.name, ProbeKind.STARTUP) and \
                results.get(ProbeKind.STARTUP, cid) is not ProbeResult.SUCCESS:
            return POLL
        clock = self.manager.clock
        if clock.monotonic() < self.next_due:
            return min(POLL, self.next_due - clock.monotonic())
        self.next_due = clock.monotonic() + self.period
        await self._probe(cid, status.get("podIP") or "")
        return min(POLL, max(0.0, self.next_due - clock.monotonic()))

    async def _probe(self, cid: str, pod_ip: str) -> None:
        outcome = await run_handler(self.spec, runtime=self.manager.ctx.runtime, pod=self.pod,
                                    container=self.container, container_id=cid,
                                    pod_ip=pod_ip, timeout=self.timeout, lifecycle=False,
                                    clock=self.manager.clock)
        if cid != self.cid or self.done:
            return
        kind = self.kind.value
        if outcome.errored:
            self._event("Unhealthy", f"{kind} probe errored and resulted in unknown state: "
                                     f"{outcome.output}")
            return
        result = ProbeResult.SUCCESS if outcome.ok else ProbeResult.FAILURE
        if outcome.warning:
            self._event("ProbeWarning", f"{kind} probe warning: {outcome.output}")
        elif not outcome.ok:
            self._event("Unhealthy", f"{kind} probe failed: {outcome.output}")
        meta = self.pod["metadata"]
        PROBE_TOTAL.labels(probe_type=kind, result=METRIC_RESULT[result],
                           container=self.name, pod=meta.get("name", ""),
                           namespace=meta.get("namespace", "")).inc()
        if result is self.last:
            self.run_count += 1
        else:
            self.last = result
            self.run_count = 1
        if result is ProbeResult.FAILURE and self.run_count < self.failure_threshold:
            return
        if result is ProbeResult.SUCCESS and self.run_count < self.success_threshold:
            return
        self.manager.results.set(self.kind, cid, result, self.uid)
        if result is ProbeResult.FAILURE and self.kind is not ProbeKind.READINESS:
            self.on_hold = True
            self.run_count = 0

    def _event(self, reason: str, message: str) -> None:
        pod = self.pod
        if not pod.get("kind"):
            pod = {**pod, "kind": "Pod", "apiVersion": "v1"}
        self.manager.ctx.recorder.event(pod, WARNING, reason, message)
