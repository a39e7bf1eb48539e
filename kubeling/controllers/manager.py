"""The controller manager: every controller of the cluster, started together.

Controllers are named in :data:`CONTROLLERS` (name -> ``module:Class``); each
class is built from a :class:`ControllerContext` (so it registers the
informers it reads) and then run. All controllers share one set of informers
and one client, as kube-controller-manager shares its informer factory.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from kubeling.controllers.base import ControllerContext
from kubeling.utils.tasks import spawn

log = logging.getLogger("kubeling.controllers")

CONTROLLERS: dict[str, str] = {
    "namespace": "kubeling.controllers.namespace:NamespaceController",
    "garbagecollector": "kubeling.controllers.garbagecollector:GarbageCollector",
    "serviceaccount": "kubeling.controllers.serviceaccount:ServiceAccountController",
    "replicaset": "kubeling.controllers.replicaset:ReplicaSetController",
    "replicationcontroller": "kubeling.controllers.replicaset:ReplicationControllerController",
    "deployment": "kubeling.controllers.deployment:DeploymentController",
    "daemonset": "kubeling.controllers.daemonset:DaemonSetController",
    "job": "kubeling.controllers.job:JobController",
    "cronjob": "kubeling.controllers.cronjob:CronJobController",
    "ttlafterfinished": "kubeling.controllers.job:TTLAfterFinishedController",
    "nodelifecycle": "kubeling.controllers.nodelifecycle:NodeLifecycleController",
    "nodeipam": "kubeling.controllers.nodeipam:NodeIpamController",
    "podgc": "kubeling.controllers.podgc:PodGCController",
    "endpoint": "kubeling.controllers.endpoints:EndpointsController",
    "endpointslice": "kubeling.controllers.endpointslice:EndpointSliceController",
    "endpointslicemirroring":
        "kubeling.controllers.endpointslicemirroring:EndpointSliceMirroringController",
    "servicelb": "kubeling.controllers.servicelb:ServiceLBController",
}


class Runnable(Protocol):
    name: str

    async def run(self) -> None: ...


def build(ctx: ControllerContext, names: Iterable[str] | None = None) -> list[Runnable]:
    """Construct the named controllers (all by default) on the shared context."""
    out: list[Runnable] = []
    for name in names or CONTROLLERS:
        target = CONTROLLERS[name]
        module_name, _, cls_name = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            log.warning("controller %s is not available (%s)", name, module_name)
            continue
        cls: Any = getattr(module, cls_name, None)
        if cls is None:
            log.error("controller %s: %s has no %s", name, module_name, cls_name)
            continue
        out.append(cls(ctx))
    return out


async def run_all(ctx: ControllerContext, names: Iterable[str] | None = None) -> None:
    """Build the controllers, start the shared informers, and run until cancelled."""
    controllers = build(ctx, names)
    ctx.informers.start()
    tasks = [spawn(c.run(), name=f"controller-{c.name}") for c in controllers]
    log.info("controller manager running %d controllers: %s", len(controllers),
             ", ".join(c.name for c in controllers))
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
