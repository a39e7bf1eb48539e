"""Container lifecycle hooks: postStart right after a container starts, preStop before
it is stopped.

The handler itself (exec, httpGet, sleep) runs through
``kubeling.kubelet.handlers.run_handler``, shared with the probes. A failed
postStart hook kills the container (Warning FailedPostStartHook); a failed
preStop hook is reported (Warning FailedPreStopHook) and the stop goes on. A
preStop hook gets at most the grace period; whatever it uses is taken from the
time the container then has to exit after SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from kubeling.client.events import WARNING
from kubeling.client.interface import Obj
from kubeling.kubelet.context import KubeletContext
from kubeling.kubelet.handlers import run_handler

log = logging.getLogger("kubeling.kubelet.hooks")


@dataclass(frozen=True)
class HookOutcome:
    ok: bool
    message: str = ""


def pod_ref(pod: Obj) -> str:
    """A pod as the kubelet names it in messages: ``name_namespace(uid)``."""
    meta = pod["metadata"]
    return f"{meta['name']}_{meta.get('namespace', '')}({meta.get('uid', '')})"


async def run(handler: Obj, *, ctx: KubeletContext, pod: Obj, container: Obj,
              container_id: str, pod_ip: str, timeout: float) -> HookOutcome:
    try:
        result = await asyncio.wait_for(run_handler(
            handler, runtime=ctx.runtime, pod=pod, container=container,
            container_id=container_id, pod_ip=pod_ip, timeout=timeout, lifecycle=True,
            clock=ctx.clock), timeout + 1)
    except TimeoutError:
        return HookOutcome(False, f"lifecycle hook for Container \"{container['name']}\" in "
                                  f"Pod \"{pod_ref(pod)}\" timed out after {timeout:g}s")
    return HookOutcome(bool(result.ok), str(result.output or ""))


async def post_start(ctx: KubeletContext, pod: Obj, container: Obj, container_id: str,
                     pod_ip: str, timeout: float) -> bool:
    """Run the container's postStart hook (if any); False when it failed."""
    handler = (container.get("lifecycle") or {}).get("postStart")
    if not handler:
        return True
    outcome = await run(handler, ctx=ctx, pod=pod, container=container,
                        container_id=container_id, pod_ip=pod_ip, timeout=timeout)
    if not outcome.ok:
        log.info("postStart hook of %s in %s failed: %s", container["name"], pod_ref(pod),
                 outcome.message)
        ctx.recorder.event(pod, WARNING, "FailedPostStartHook", "PostStartHook failed")
    return outcome.ok


async def pre_stop(ctx: KubeletContext, pod: Obj, container: Obj, container_id: str,
                   pod_ip: str, grace: float) -> float:
    """Run the container's preStop hook within ``grace`` seconds; the seconds it took."""
    handler = (container.get("lifecycle") or {}).get("preStop")
    if not handler or grace <= 0:
        return 0.0
    start = ctx.clock.monotonic()
    try:
        outcome = await asyncio.wait_for(
            run(handler, ctx=ctx, pod=pod, container=container, container_id=container_id,
                pod_ip=pod_ip, timeout=grace), grace)
    except TimeoutError:
        outcome = HookOutcome(False, f"PreStopHook for Container \"{container['name']}\" in "
                                     f"Pod \"{pod_ref(pod)}\" did not complete within "
                                     f"{grace:g}s")
    if not outcome.ok:
        ctx.recorder.event(pod, WARNING, "FailedPreStopHook", outcome.message)
    return ctx.clock.monotonic() - start
