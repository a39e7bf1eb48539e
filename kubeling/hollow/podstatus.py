"""The pod statuses a hollow kubelet reports: running and ready, restarted, or terminated.

Each function returns the ``status`` to write through the pod's status
subresource (a merge patch: the lists given replace the stored ones, the rest
of the status, such as ``qosClass``, stays).
"""

from __future__ import annotations

import hashlib
from typing import Any

from kubeling.client.interface import Obj
from kubeling.hollow.objects import container_id
from kubeling.utils.clock import parse_rfc3339, rfc3339

EXIT_AFTER = "kubeling.io/hollow-exit-after"
EXIT_CODE = "kubeling.io/hollow-exit-code"


def exit_plan(pod: Obj) -> tuple[float, int] | None:
    """(seconds after its start, exit code) when the pod asks to terminate, else None.

    Only pods that may terminate for good (restartPolicy Never or OnFailure) do; a
    malformed annotation is ignored, as a kubelet ignores what it does not understand.
    """
    if (pod.get("spec") or {}).get("restartPolicy", "Always") == "Always":
        return None
    notes = pod["metadata"].get("annotations") or {}
    raw = notes.get(EXIT_AFTER)
    if raw is None:
        return None
    try:
        seconds = float(raw)
        code = int(notes.get(EXIT_CODE, "0"))
    except ValueError:
        return None
    return (max(0.0, seconds), code) if seconds == seconds else None


def _image_id(image: str) -> str:
    repo = image.rsplit("@", 1)[0]
    if ":" in repo.rsplit("/", 1)[-1]:
        repo = repo.rsplit(":", 1)[0]
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def _cond(type_: str, status: str, stamp: str, before: dict[str, Obj],
          reason: str = "") -> Obj:
    old = before.get(type_)
    since = old.get("lastTransitionTime") if old and old.get("status") == status else None
    out: Obj = {"type": type_, "status": status, "lastProbeTime": None,
                "lastTransitionTime": since or stamp}
    if reason:
        out["reason"] = reason
    return out


def _previous(pod: Obj) -> dict[str, Obj]:
    return {c.get("type", ""): c for c in (pod.get("status") or {}).get("conditions") or ()}


def _container_status(pod: Obj, c: Obj, state: Obj, *, ready: bool, started: bool,
                      restarts: int = 0, last: Obj | None = None) -> Obj:
    image = c.get("image", "")
    return {"name": c["name"], "image": image, "imageID": _image_id(image),
            "containerID": container_id(pod["metadata"].get("uid", ""), c["name"]),
            "ready": ready, "started": started, "restartCount": restarts,
            "state": state, "lastState": last or {}}


def _init_statuses(pod: Obj, started: str, stamp: str) -> list[Obj]:
    out = []
    for c in (pod.get("spec") or {}).get("initContainers") or ():
        if c.get("restartPolicy") == "Always":  # a sidecar keeps running
            out.append(_container_status(pod, c, {"running": {"startedAt": started}},
                                         ready=True, started=True))
        else:
            out.append(_container_status(pod, c, {"terminated": {
                "exitCode": 0, "reason": "Completed", "startedAt": started,
                "finishedAt": started}}, ready=True, started=False))
    return out


def _addresses(host_ip: str, pod_ip: str, pod: Obj) -> Obj:
    if (pod.get("spec") or {}).get("hostNetwork"):
        pod_ip = host_ip
    return {"hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
            "podIP": pod_ip, "podIPs": [{"ip": pod_ip}]}


def running_status(pod: Obj, *, host_ip: str, pod_ip: str, now: float) -> Obj:
    """Every container running and ready, as a kubelet reports a healthy pod."""
    stamp = rfc3339(now)
    status = pod.get("status") or {}
    started = status.get("startTime") or stamp
    before = _previous(pod)
    conds = [_cond("PodReadyToStartContainers", "True", stamp, before),
             _cond("Initialized", "True", stamp, before),
             _cond("Ready", "True", stamp, before),
             _cond("ContainersReady", "True", stamp, before),
             _cond("PodScheduled", "True", stamp, before)]
    old = {cs.get("name"): cs for cs in status.get("containerStatuses") or ()}
    containers = []
    for c in (pod.get("spec") or {}).get("containers") or ():
        cs = old.get(c["name"]) or {}
        running = (cs.get("state") or {}).get("running") or {}
        containers.append(_container_status(
            pod, c, {"running": {"startedAt": running.get("startedAt") or stamp}},
            ready=True, started=True, restarts=int(cs.get("restartCount", 0)),
            last=cs.get("lastState")))
    out: Obj = {"phase": "Running", "conditions": conds, "startTime": started,
                **_addresses(host_ip, pod_ip, pod), "containerStatuses": containers}
    inits = _init_statuses(pod, started, stamp)
    if inits:
        out["initContainerStatuses"] = inits
    return out


def container_started_at(pod: Obj) -> float | None:
    """When the pod's (first) container last started, from its reported status."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or ():
        running = (cs.get("state") or {}).get("running")
        if running and running.get("startedAt"):
            return parse_rfc3339(running["startedAt"])
    return None


def _terminated(pod: Obj, cs: Obj | None, code: int, stamp: str) -> Obj:
    running = ((cs or {}).get("state") or {}).get("running") or {}
    return {"terminated": {
        "exitCode": code, "reason": "Completed" if code == 0 else "Error",
        "startedAt": running.get("startedAt") or stamp, "finishedAt": stamp,
        "containerID": (cs or {}).get("containerID", "")}}


def restarted_status(pod: Obj, *, code: int, now: float) -> Obj:
    """The containers exited with ``code`` and were started again (restartPolicy OnFailure)."""
    stamp = rfc3339(now)
    status = pod.get("status") or {}
    old = {cs.get("name"): cs for cs in status.get("containerStatuses") or ()}
    containers = []
    for c in (pod.get("spec") or {}).get("containers") or ():
        cs = old.get(c["name"])
        containers.append(_container_status(
            pod, c, {"running": {"startedAt": stamp}}, ready=True, started=True,
            restarts=int((cs or {}).get("restartCount", 0)) + 1,
            last=_terminated(pod, cs, code, stamp)))
    return {"containerStatuses": containers}


def terminated_status(pod: Obj, *, code: int, now: float) -> Obj:
    """Every container exited with ``code``: phase Succeeded (0) or Failed."""
    stamp = rfc3339(now)
    status = pod.get("status") or {}
    before = _previous(pod)
    why = "PodCompleted" if code == 0 else "PodFailed"
    conds = [_cond("PodReadyToStartContainers", "False", stamp, before),
             _cond("Initialized", "True", stamp, before),
             _cond("Ready", "False", stamp, before, why),
             _cond("ContainersReady", "False", stamp, before, why),
             _cond("PodScheduled", "True", stamp, before)]
    old = {cs.get("name"): cs for cs in status.get("containerStatuses") or ()}
    containers: list[Any] = []
    for c in (pod.get("spec") or {}).get("containers") or ():
        cs = old.get(c["name"])
        containers.append(_container_status(
            pod, c, _terminated(pod, cs, code, stamp), ready=False, started=False,
            restarts=int((cs or {}).get("restartCount", 0)),
            last=(cs or {}).get("lastState")))
    return {"phase": "Succeeded" if code == 0 else "Failed", "conditions": conds,
            "containerStatuses": containers}
