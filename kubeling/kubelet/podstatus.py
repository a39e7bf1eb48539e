"""A pod's status as the kubelet reports it, computed from what the runtime holds.

Pure functions of the pod, the runtime's view of it, the probes' results and
the reasons the last sync could not start a container (CrashLoopBackOff,
CreateContainerConfigError...). Phase, conditions and container states follow
Kubernetes 1.32 (``generateAPIPodStatus``, ``getPhase``, status/generate.go)
so that ``kubectl get`` and ``kubectl describe`` read as they do there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubeling.api.defaults.core import qos_class
from kubeling.client.interface import Obj
from kubeling.kubelet.interfaces import ProbeKind, ProbeResult, Probes
from kubeling.kubelet.podruntime import PodRuntime, restart_count
from kubeling.runtime.protocol import ContainerState, ContainerStatus
from kubeling.utils.clock import rfc3339

# Conditions the kubelet owns; every other condition is the API's and is kept as it is.
KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                      "PodScheduled")
TERMINAL = ("Succeeded", "Failed")

Reasons = Mapping[str, tuple[str, str]]  # container name -> (waiting reason, message)


def is_sidecar(container: Obj) -> bool:
    return container.get("restartPolicy") == "Always"


def restart_policy(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("restartPolicy") or "Always")


def should_restart(pod: Obj, container: Obj, latest: ContainerStatus | None) -> bool:
    """Whether the next sync would (re)start the container (ShouldContainerBeRestarted)."""
    if latest is None:
        return True
    if latest.state in (ContainerState.RUNNING, ContainerState.UNKNOWN):
        return False
    if latest.state is ContainerState.CREATED:
        return True
    if is_sidecar(container):
        return True
    policy = restart_policy(pod)
    if policy == "Never":
        return False
    if policy == "OnFailure":
        return latest.exit_code != 0
    return True


def _ts(t: float) -> str | None:
    return rfc3339(t) if t else None


def _state(c: ContainerStatus, cid: str, message: str) -> Obj:
    if c.state is ContainerState.RUNNING:
        return {"running": {"startedAt": _ts(c.started_at or c.created_at)}}
    if c.state is ContainerState.EXITED:
        term: Obj = {"exitCode": c.exit_code,
                     "reason": c.reason or ("Completed" if c.exit_code == 0 else "Error"),
                     "startedAt": _ts(c.started_at), "finishedAt": _ts(c.finished_at),
                     "containerID": cid}
        if message:
            term["message"] = message
        return {"terminated": term}
    if c.state is ContainerState.CREATED:
        return {"waiting": {"reason": "ContainerCreating"}}
    return {"waiting": {}}


def container_statuses(pod: Obj, specs: Sequence[Obj], state: PodRuntime, *,
                       runtime_name: str, probes: Probes | None, reasons: Reasons,
                       messages: Mapping[str, str], init: bool,
                       default_reason: str) -> list[Obj]:
    out = []
    uid = pod["metadata"].get("uid", "")
    for spec in specs:
        name = spec["name"]
        found = state.of(name)
        status: Obj = {"name": name, "state": {"waiting": {"reason": default_reason}},
                       "lastState": {}, "ready": False, "restartCount": 0,
                       "image": spec.get("image", ""), "imageID": "", "started": False}
        latest = found[0] if found else None
        if latest is not None:
            cid = f"{runtime_name}://{latest.id}"
            status.update(containerID=cid, image=latest.image or status["image"],
                          imageID=latest.image_ref, restartCount=restart_count(latest),
                          state=_state(latest, cid, messages.get(latest.id, "")))
            if len(found) > 1 and found[1].state is ContainerState.EXITED:
                prev = found[1]
                status["lastState"] = _state(prev, f"{runtime_name}://{prev.id}",
                                             messages.get(prev.id, ""))
            running = latest.state is ContainerState.RUNNING
            if init and not is_sidecar(spec):
                status["ready"] = latest.state is ContainerState.EXITED and \
                    latest.exit_code == 0
                status["started"] = running
            elif running:
                started = _probe_ok(probes, ProbeKind.STARTUP, uid, name, latest.id)
                status["started"] = started
                status["ready"] = started and _probe_ok(probes, ProbeKind.READINESS, uid,
                                                        name, latest.id)
        skip = init and not is_sidecar(spec) and latest is not None and \
            latest.state is ContainerState.EXITED and latest.exit_code == 0
        if not skip and should_restart(pod, spec, latest) and name in reasons:
            reason, message = reasons[name]
            if "terminated" in status["state"]:
                status["lastState"] = status["state"]
            waiting: Obj = {"reason": reason}
            if message:
                waiting["message"] = message
            status["state"] = {"waiting": waiting}
        out.append(status)
    return out


def _probe_ok(probes: Probes | None, kind: ProbeKind, pod_uid: str, name: str,
              cid: str) -> bool:
    """A probe's verdict on a running container; no such probe counts as passing."""
    result = probes.result_for(kind, pod_uid, name, cid) if probes is not None else None
    return result is None or result is ProbeResult.SUCCESS


def _by_name(statuses: Sequence[Obj]) -> dict[str, Obj]:
    return {s["name"]: s for s in statuses}


def _terminated(s: Obj, key: str = "state") -> Obj | None:
    t: Obj | None = (s.get(key) or {}).get("terminated")
    return t


def any_regular_started(pod: Obj, statuses: Sequence[Obj]) -> bool:
    by = _by_name(statuses)
    for c in (pod.get("spec") or {}).get("containers") or ():
        s = by.get(c["name"])
        if s is not None and ("running" in s["state"] or "terminated" in s["state"]):
            return True
    return False


def get_phase(pod: Obj, statuses: Sequence[Obj], *, terminal: bool,
              initialized: bool) -> str:
    spec = pod.get("spec") or {}
    by = _by_name(statuses)
    pending_init = pending_sidecar = failed_init = 0
    unknown = running = waiting = stopped = succeeded = 0
    for c in spec.get("initContainers") or ():
        s = by.get(c["name"])
        st = (s or {}).get("state") or {}
        if is_sidecar(c):
            if s is None:
                unknown += 1
            elif "running" in st:
                if not s.get("started"):
                    pending_sidecar += 1
                running += 1
            elif "waiting" in st and _terminated(s, "lastState") is None:
                pending_sidecar += 1
                waiting += 1
            elif "waiting" not in st and "terminated" not in st:
                pending_sidecar += 1
                unknown += 1
            continue
        if s is None or "running" in st:
            pending_init += 1
        elif "terminated" in st:
            failed_init += st["terminated"].get("exitCode", 0) != 0
        elif "waiting" in st:
            last = _terminated(s, "lastState")
            if last is not None:
                failed_init += last.get("exitCode", 0) != 0
            else:
                pending_init += 1
        else:
            pending_init += 1
    for c in spec.get("containers") or ():
        s = by.get(c["name"])
        st = (s or {}).get("state") or {}
        if s is None:
            unknown += 1
        elif "running" in st:
            running += 1
        elif "terminated" in st:
            stopped += 1
            succeeded += st["terminated"].get("exitCode", 0) == 0
        elif "waiting" in st:
            if _terminated(s, "lastState") is not None:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1
    policy = spec.get("restartPolicy") or "Always"
    if failed_init > 0 and policy == "Never":
        return "Failed"
    if pending_init > 0 or (pending_sidecar > 0 and not initialized) or waiting > 0:
        return "Pending"
    if running > 0:
        return "Running" if unknown == 0 else "Pending"
    if stopped > 0 and unknown == 0:
        if terminal and not is_static(pod):
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def is_static(pod: Obj) -> bool:
    notes = pod["metadata"].get("annotations") or {}
    return notes.get("kubernetes.io/config.source", "api") != "api"


def _names(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"


def containers_ready(pod: Obj, statuses: Sequence[Obj], phase: str) -> Obj:
    spec = pod.get("spec") or {}
    by = _by_name(statuses)
    unknown, unready = [], []
    wanted = [c for c in spec.get("initContainers") or () if is_sidecar(c)]
    for c in wanted + list(spec.get("containers") or ()):
        s = by.get(c["name"])
        if s is None:
            unknown.append(c["name"])
        elif not s.get("ready"):
            unready.append(c["name"])
    if phase == "Succeeded" and not unknown:
        return _cond("ContainersReady", "False", "PodCompleted")
    parts = []
    if unknown:
        parts.append(f"containers with unknown status: {_names(unknown)}")
    if unready:
        parts.append(f"containers with unready status: {_names(unready)}")
    if parts:
        return _cond("ContainersReady", "False", "ContainersNotReady", ", ".join(parts))
    return _cond("ContainersReady", "True")


def pod_ready(pod: Obj, conditions: Sequence[Obj], statuses: Sequence[Obj],
              phase: str) -> Obj:
    ready = containers_ready(pod, statuses, phase)
    if ready["status"] != "True":
        return {**ready, "type": "Ready"}
    missing, false = [], []
    have = {c.get("type"): c for c in conditions}
    for gate in (pod.get("spec") or {}).get("readinessGates") or ():
        ctype = gate.get("conditionType", "")
        cond = have.get(ctype)
        if cond is None:
            missing.append(f"corresponding condition of pod readiness gate \"{ctype}\" "
                           "does not exist.")
        elif cond.get("status") != "True":
            false.append(ctype)
    if false:
        missing.append(f"the status of pod readiness gate \"{', '.join(false)}\" "
                       "is not \"True\", but False")
    if missing:
        return _cond("Ready", "False", "ReadinessGatesNotReady", ", ".join(missing))
    return _cond("Ready", "True")


def initialized(pod: Obj, statuses: Sequence[Obj], phase: str) -> Obj:
    spec = pod.get("spec") or {}
    inits = spec.get("initContainers") or ()
    by = _by_name(statuses)
    unknown, incomplete = [], []
    for c in inits:
        s = by.get(c["name"])
        if s is None:
            unknown.append(c["name"])
        elif (not s.get("started")) if is_sidecar(c) else (not s.get("ready")):
            incomplete.append(c["name"])
    if phase == "Succeeded" and not unknown and inits:
        return _cond("Initialized", "True", "PodCompleted")
    if any_regular_started(pod, statuses):
        return _cond("Initialized", "True")
    parts = []
    if unknown:
        parts.append(f"containers with unknown status: {_names(unknown)}")
    if incomplete:
        parts.append(f"containers with incomplete status: {_names(incomplete)}")
    if parts:
        return _cond("Initialized", "False", "ContainersNotInitialized", ", ".join(parts))
    return _cond("Initialized", "True")


def _cond(type_: str, status: str, reason: str = "", message: str = "") -> Obj:
    out: Obj = {"type": type_, "status": status, "lastProbeTime": None}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def generate(pod: Obj, state: PodRuntime, *, runtime_name: str, probes: Probes | None,
             reasons: Reasons, messages: Mapping[str, str], host_ip: str, now: float,
             terminal: bool = False) -> Obj:
    """The status to report for ``pod`` (lastTransitionTime is the status manager's)."""
    spec = pod.get("spec") or {}
    old: Obj = pod.get("status") or {}
    inits = spec.get("initContainers") or []
    common: dict[str, Any] = dict(runtime_name=runtime_name, probes=probes, reasons=reasons,
                                  messages=messages)
    init_statuses = container_statuses(pod, inits, state, init=True,
                                       default_reason="ContainerCreating", **common)
    statuses = container_statuses(pod, spec.get("containers") or [], state, init=False,
                                  default_reason="PodInitializing" if inits
                                  else "ContainerCreating", **common)
    every = init_statuses + statuses
    init_done = any_regular_started(pod, statuses)
    phase = get_phase(pod, every, terminal=terminal, initialized=init_done)
    conditions: list[Obj] = [c for c in old.get("conditions") or ()
                             if c.get("type") not in KUBELET_CONDITIONS]
    sandbox = state.ready_sandbox
    conditions.append(_cond("PodReadyToStartContainers",
                            "True" if sandbox is not None else "False"))
    conditions.append(initialized(pod, every, phase))
    conditions.append(pod_ready(pod, conditions, every, phase))
    conditions.append(containers_ready(pod, every, phase))
    conditions.append(_cond("PodScheduled", "True"))
    status: Obj = {"phase": phase, "conditions": conditions,
                   "qosClass": old.get("qosClass") or qos_class(spec),
                   "startTime": old.get("startTime") or rfc3339(now)}
    if host_ip:
        status["hostIP"] = host_ip
        status["hostIPs"] = [{"ip": host_ip}]
    sb = state.sandbox
    if sb is not None and sb.ip:
        status["podIP"] = sb.ip
        status["podIPs"] = [{"ip": ip} for ip in (sb.ip, *sb.additional_ips)]
    elif old.get("podIP"):
        status["podIP"] = old["podIP"]
        status["podIPs"] = old.get("podIPs") or [{"ip": old["podIP"]}]
    if inits:
        status["initContainerStatuses"] = init_statuses
    status["containerStatuses"] = statuses
    for key in ("message", "reason", "nominatedNodeName"):
        if old.get(key) and phase not in TERMINAL:
            status[key] = old[key]
    return status
