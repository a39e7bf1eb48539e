"""persistentVolumeClaim volumes: the claim's bound PersistentVolume, when it is on this host.

The agent mounts no network storage: a claim is usable when it is Bound to a
PersistentVolume whose source is a ``hostPath`` or a ``local`` path, and the
volume is that path. Binding itself is the PV controller's business.
"""

from __future__ import annotations

import os

from kubeling.client.interface import Obj
from kubeling.kubelet.context import ObjectSource
from kubeling.kubelet.interfaces import VolumeError
from kubeling.kubelet.volumes.hostpath import check_host_path


def claim_path(source: Obj, namespace: str, objects: ObjectSource) -> str:
    """The host path behind the claim ``source.claimName``, or VolumeError."""
    claim = source.get("claimName", "")
    pvc = objects.pvc(namespace, claim)
    if pvc is None:
        raise VolumeError(f'persistentvolumeclaim "{claim}" not found')
    volume_name = (pvc.get("spec") or {}).get("volumeName") or ""
    phase = (pvc.get("status") or {}).get("phase") or ""
    if phase != "Bound" or not volume_name:
        raise VolumeError(f'persistentvolumeclaim "{claim}" is not bound: phase "{phase}", '
                          f'volumeName "{volume_name}"')
    pv = objects.pv(volume_name)
    if pv is None:
        raise VolumeError(f'persistentvolume "{volume_name}" not found')
    spec = pv.get("spec") or {}
    ref = spec.get("claimRef") or {}
    pvc_uid = (pvc.get("metadata") or {}).get("uid")
    if ref and (ref.get("name") != claim or (ref.get("namespace") or namespace) != namespace
                or (ref.get("uid") and pvc_uid and ref["uid"] != pvc_uid)):
        raise VolumeError(f"the PVC {namespace}/{claim} is bound to PV {volume_name} but the "
                          "PV is bound to a different claim")
    if spec.get("hostPath"):
        host = spec["hostPath"]
        return check_host_path(host.get("path", ""), host.get("type"))
    if spec.get("local"):
        path = spec["local"].get("path", "")
        if not os.path.exists(path):
            raise VolumeError(f"local volume {volume_name}: path {path!r} does not exist")
        return path
    raise VolumeError(f'persistentvolume "{volume_name}" is neither hostPath nor local: '
                      "kubeling's node agent mounts only those")
