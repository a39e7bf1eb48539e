"""Pod volumes on the node: emptyDir, hostPath, configMap, secret, downwardAPI, projected
and persistentVolumeClaim (hostPath or local PVs). ``VolumeManager`` implements
:class:`kubeling.kubelet.interfaces.Volumes`."""

from kubeling.kubelet.volumes.manager import VolumeManager

__all__ = ["VolumeManager"]
