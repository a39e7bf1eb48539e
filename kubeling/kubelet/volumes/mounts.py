"""A container's volumeMounts as runtime mounts: which host path, where, read-only or not.

``subPath`` (and ``subPathExpr``, expanded against the container's environment)
picks a path inside the volume. It must stay inside: an absolute path or a
``..`` step is refused, and so is a path that leaves the volume through a
symlink a container planted there. A missing subPath directory is created, as
the kubelet does. Volumes the agent renders (configMap, secret, downwardAPI,
projected) are always mounted read-only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from kubeling.client.interface import Obj
from kubeling.kubelet.envvars import EnvError, expand
from kubeling.kubelet.interfaces import VolumeError
from kubeling.runtime.protocol import Mount

RENDERED = ("configMap", "secret", "downwardAPI", "projected")
EnvSource = Callable[[Obj, Obj], Mapping[str, str]]


def volume_kind(volume: Obj) -> str:
    for key in volume:
        if key != "name":
            return key
    return "emptyDir"


def _check_relative(sub: str, what: str) -> str:
    if sub.startswith("/"):
        raise VolumeError(f"error {what} `{sub}` must not be an absolute path")
    if ".." in sub.split("/"):
        raise VolumeError(f"unable to provision {what} `{sub}`: must not contain '..'")
    return sub


def _inside(root: str, path: str) -> bool:
    root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == root or real.startswith(root.rstrip("/") + "/")


def resolve_subpath(volume_path: str, sub: str, *, create: bool) -> str:
    """The host path of ``sub`` inside ``volume_path``, created as a directory when missing
    (``create``); VolumeError when it would leave the volume."""
    joined = os.path.join(volume_path, sub)
    if not _inside(volume_path, joined):
        raise VolumeError(f"subpath {joined!r} not within volume path {volume_path!r}")
    if create and not os.path.lexists(joined):
        try:
            mode = os.stat(volume_path).st_mode & 0o7777
            os.makedirs(joined, exist_ok=True)
            os.chmod(joined, mode)
        except OSError as e:
            raise VolumeError(f"failed to create subPath directory for volumeMount: {e}") \
                from None
        if not _inside(volume_path, joined):
            raise VolumeError(f"subpath {joined!r} not within volume path {volume_path!r}")
    return joined


def container_mounts(pod: Obj, container: Obj, paths: Mapping[str, str], *,
                     env: EnvSource | None = None) -> list[Mount]:
    spec = pod.get("spec") or {}
    volumes = {v.get("name"): v for v in spec.get("volumes") or ()}
    result: list[Mount] = []
    for vm in container.get("volumeMounts") or ():
        name = vm.get("name", "")
        volume = volumes.get(name)
        if volume is None or name not in paths:
            raise VolumeError(f'cannot find volume "{name}" to mount into container '
                              f'"{container.get("name", "")}"')
        kind = volume_kind(volume)
        host = paths[name]
        sub = vm.get("subPath") or ""
        if vm.get("subPathExpr"):
            if env is None:
                raise VolumeError("subPathExpr is not supported here")
            try:
                sub = expand(vm["subPathExpr"], env(pod, container))
            except EnvError as e:
                raise VolumeError(e.message) from None
            sub = _check_relative(sub, "SubPathExpr")
        elif sub:
            sub = _check_relative(sub, "SubPath")
        read_only = bool(vm.get("readOnly")) or kind in RENDERED
        if kind == "persistentVolumeClaim" and volume[kind].get("readOnly"):
            read_only = True
        if sub:
            joined = resolve_subpath(host, sub, create=kind not in RENDERED)
            host = joined if kind in RENDERED else os.path.realpath(joined)
        propagation = {"HostToContainer": "rslave", "Bidirectional": "rshared"}.get(
            vm.get("mountPropagation") or "", "private")
        result.append(Mount(container_path=vm.get("mountPath", ""), host_path=host,
                            read_only=read_only, propagation=propagation))
    return result
