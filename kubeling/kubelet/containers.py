"""From a pod's container spec to the runtime's ``ContainerConfig``, and back.

Everything the kubelet derives from a container before creating it: its argv
and environment (``kubeling.kubelet.envvars``), mounts (the pod's volumes plus
the termination-message file), cpu and memory as runtime resources, the
security context, the log path of this attempt, and the labels and annotations
that let a restarted agent recognise the container (hash, restart count,
termination message settings, grace period, preStop handler, ports). After a
container exits, ``termination_message`` reads what it left for its status.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import orjson

from kubeling.api.quantity import parse_quantity
from kubeling.client.interface import Obj
from kubeling.kubelet import context as k
from kubeling.kubelet import envvars
from kubeling.kubelet.context import KubeletOptions, ObjectSource
from kubeling.kubelet.servicelinks import pod_service_env
from kubeling.runtime.protocol import (
    ContainerConfig,
    ContainerStatus,
    Mount,
    Resources,
    Security,
)

MAX_MESSAGE_BYTES = 4096
FALLBACK_LINES = 80
FALLBACK_BYTES = 2048
MIN_SHARES = 2


class EnvConfigError(Exception):
    """A container's environment could not be built (CreateContainerConfigError)."""


def make_env(pod: Obj, container: Obj, *, objects: ObjectSource, node_name: str,
             host_ip: str, pod_ip: str) -> list[tuple[str, str]]:
    """The container's environment, service variables included when ``objects`` holds
    Services; raises EnvConfigError with the kubelet's message."""
    try:
        return envvars.make_env(pod, container, objects=objects, node_name=node_name,
                                host_ip=host_ip, pod_ip=pod_ip,
                                pod_ips=[pod_ip] if pod_ip else [],
                                host_ips=[host_ip] if host_ip else [],
                                service_env=pod_service_env(pod, objects))
    except envvars.EnvError as exc:
        raise EnvConfigError(str(exc)) from exc


def make_argv(container: Obj, env: list[tuple[str, str]]) -> tuple[tuple[str, ...],
                                                                    tuple[str, ...]]:
    return envvars.argv(container, dict(env))


def container_hash(container: Obj) -> str:
    """A stable hash of what, when changed, makes the kubelet restart the container."""
    spec = {key: value for key, value in container.items() if key != "resources"}
    return hashlib.sha256(orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def resources(container: Obj) -> Resources:
    res = container.get("resources") or {}
    requests, limits = res.get("requests") or {}, res.get("limits") or {}
    cpu_request = requests.get("cpu", limits.get("cpu"))
    shares = MIN_SHARES
    if cpu_request is not None:
        shares = max(MIN_SHARES, parse_quantity(cpu_request).milli_value() * 1024 // 1000)
    quota = 0
    period = 100_000
    if "cpu" in limits:
        quota = max(1000, parse_quantity(limits["cpu"]).milli_value() * period // 1000)
    memory = parse_quantity(limits["memory"]).value() if "memory" in limits else 0
    return Resources(cpu_shares=shares, cpu_quota=quota, cpu_period=period,
                     memory_limit=memory)


def security(pod: Obj, container: Obj) -> Security:
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    csc = container.get("securityContext") or {}
    caps = csc.get("capabilities") or {}

    def pick(key: str) -> Any:
        return csc.get(key) if csc.get(key) is not None else psc.get(key)

    return Security(run_as_user=pick("runAsUser"), run_as_group=pick("runAsGroup"),
                    supplemental_groups=tuple(psc.get("supplementalGroups") or ()),
                    read_only_rootfs=bool(csc.get("readOnlyRootFilesystem")),
                    privileged=bool(csc.get("privileged")),
                    add_capabilities=tuple(caps.get("add") or ()),
                    drop_capabilities=tuple(caps.get("drop") or ()),
                    no_new_privileges=csc.get("allowPrivilegeEscalation") is False)


def grace_period(pod: Obj) -> int:
    value = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return 30 if value is None else int(value)


def message_file(options: KubeletOptions, uid: str, name: str, attempt: int) -> Path:
    """The host file mounted at the container's terminationMessagePath."""
    return options.pod_dir(uid) / "containers" / name / str(attempt)


def labels(pod: Obj, name: str) -> dict[str, str]:
    meta = pod["metadata"]
    return {k.POD_NAME: meta["name"], k.POD_NAMESPACE: meta.get("namespace", ""),
            k.POD_UID: meta["uid"], k.CONTAINER_NAME: name}


def container_annotations(pod: Obj, container: Obj, *, restart_count: int,
                          init: bool) -> dict[str, str]:
    out = {k.CONTAINER_HASH: container_hash(container),
           k.RESTART_COUNT: str(restart_count),
           k.TERMINATION_MESSAGE_PATH: container.get("terminationMessagePath")
           or "/dev/termination-log",
           k.TERMINATION_MESSAGE_POLICY: container.get("terminationMessagePolicy") or "File",
           k.TERMINATION_GRACE_PERIOD: str(grace_period(pod))}
    pre_stop = (container.get("lifecycle") or {}).get("preStop")
    if pre_stop:
        out[k.PRE_STOP_HANDLER] = json.dumps(pre_stop, sort_keys=True)
    if container.get("ports"):
        out[k.CONTAINER_PORTS] = json.dumps(container["ports"], sort_keys=True)
    if init:
        out[k.INIT_CONTAINER] = "true"
    return out


def prepare_message_file(options: KubeletOptions, uid: str, name: str,
                         attempt: int) -> Path:
    path = message_file(options, uid, name, attempt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    path.chmod(0o666)
    return path


def _log_tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            raw = f.read()
    except OSError:
        return ""
    lines: list[bytes] = []
    partial = b""
    for entry in raw.splitlines():
        parts = entry.split(b" ", 3)
        if len(parts) < 3:
            continue
        text = parts[3] if len(parts) == 4 else b""
        if parts[2] == b"P":
            partial += text
            continue
        lines.append(partial + text)
        partial = b""
    if partial:
        lines.append(partial)
    tail = b"\n".join(lines[-FALLBACK_LINES:])
    return tail[-FALLBACK_BYTES:].decode("utf-8", "replace")


def termination_message(options: KubeletOptions, uid: str, c: ContainerStatus) -> str:
    """What an exited container left for ``state.terminated.message``."""
    name = c.labels.get(k.CONTAINER_NAME) or c.name
    policy = c.annotations.get(k.TERMINATION_MESSAGE_POLICY, "File")
    path = message_file(options, uid, name, c.attempt)
    text = ""
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_MESSAGE_BYTES).decode("utf-8", "replace")
    except OSError:
        pass
    if not text and policy == "FallbackToLogsOnError" and c.exit_code != 0 and c.log_path:
        text = _log_tail(c.log_path)
    return text or c.message


def build_config(pod: Obj, container: Obj, *, options: KubeletOptions, attempt: int,
                 env: list[tuple[str, str]], argv: tuple[tuple[str, ...], tuple[str, ...]],
                 mounts: list[Mount],
                 init: bool) -> ContainerConfig:
    """The runtime's ContainerConfig for this attempt of ``container``."""
    meta = pod["metadata"]
    uid, name = meta["uid"], container["name"]
    msg_path = container.get("terminationMessagePath") or "/dev/termination-log"
    all_mounts = list(mounts)
    if not any(m.container_path == msg_path for m in all_mounts):
        host = prepare_message_file(options, uid, name, attempt)
        all_mounts.append(Mount(container_path=msg_path, host_path=str(host)))
    log_path = options.container_log_path(meta.get("namespace", ""), meta["name"], uid, name,
                                          attempt)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return ContainerConfig(
        name=name, attempt=attempt, image=container.get("image", ""), command=argv[0],
        args=argv[1],
        working_dir=container.get("workingDir", ""), env=tuple(env),
        mounts=tuple(all_mounts), log_path=str(log_path), stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")), tty=bool(container.get("tty")),
        resources=resources(container), security=security(pod, container),
        labels=labels(pod, name),
        annotations=container_annotations(pod, container, restart_count=attempt, init=init))
