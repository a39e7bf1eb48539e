"""Hand-built nodes and pods for the scheduler's unit tests."""

from __future__ import annotations

from typing import Any

from kubeling.scheduler.cache import Cache
from kubeling.scheduler.nodeinfo import PodInfo
from kubeling.scheduler.profile import Profile

Obj = dict[str, Any]


def node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: int = 110,
         labels: dict[str, str] | None = None, taints: list[Obj] | None = None,
         unschedulable: bool = False, extra: dict[str, str] | None = None) -> Obj:
    alloc = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": "100Gi",
             **(extra or {})}
    spec: Obj = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name,
                         "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": spec, "status": {"capacity": alloc, "allocatable": alloc}}


def pod(name: str, *, ns: str = "default", cpu: str | None = None, memory: str | None = None,
        labels: dict[str, str] | None = None, node_name: str = "", **spec: Any) -> Obj:
    requests: Obj = {}
    if cpu:
        requests["cpu"] = cpu
    if memory:
        requests["memory"] = memory
    container: Obj = {"name": "c", "image": "busybox"}
    if requests:
        container["resources"] = {"requests": requests}
    if "ports" in spec:
        container["ports"] = spec.pop("ports")
    body: Obj = {"containers": [container], "schedulerName": "default-scheduler", **spec}
    if node_name:
        body["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}",
                         "labels": labels or {}},
            "spec": body}


def cluster(nodes: list[Obj], pods: list[Obj] = ()) -> Cache:  # type: ignore[assignment]
    c = Cache()
    for n in nodes:
        c.add_node(n)
    for p in pods:
        c.add_pod(p)
    return c


def failure(cache: Cache, p: Obj, *, preemption: bool = False, **kw: Any) -> str:
    """The FailedScheduling message (with the preemption dry run's words if asked)."""
    from kubeling.scheduler.framework import CycleState
    from kubeling.scheduler.preemption import dry_run
    from kubeling.scheduler.profile import FitError

    prof, state, pi = Profile(cache, **kw), CycleState(), PodInfo(p)
    try:
        r = prof.schedule(pi, state)
    except FitError as e:
        if preemption:
            e.diagnosis.post_filter_msg = dry_run(prof, state, pi, e.diagnosis).message
        return str(e)
    raise AssertionError(f"pod was scheduled to {r.node}")


def place(cache: Cache, p: Obj, **kw: Any) -> str:
    return Profile(cache, **kw).schedule(PodInfo(p)).node
