"""hostPath volumes: a path of the node, checked against the volume's ``type``.

The kubelet never copies or owns a hostPath: it checks the path is what the pod
says it expects (creating it for the ``...OrCreate`` types) and hands it to the
runtime. The messages are the kubelet's, so ``kubectl describe pod`` reads the
same.
"""

from __future__ import annotations

import os
import stat

from kubeling.kubelet.interfaces import VolumeError

_KINDS = {
    "Directory": ("directory", stat.S_ISDIR),
    "File": ("file", stat.S_ISREG),
    "Socket": ("socket file", stat.S_ISSOCK),
    "CharDevice": ("character device", stat.S_ISCHR),
    "BlockDevice": ("block device", stat.S_ISBLK),
}


def _type_name(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "Directory"
    if stat.S_ISREG(mode):
        return "File"
    if stat.S_ISSOCK(mode):
        return "Socket"
    if stat.S_ISCHR(mode):
        return "CharDevice"
    if stat.S_ISBLK(mode):
        return "BlockDevice"
    return "Unknown"


def _match(path: str, expected: str) -> None:
    description, test = _KINDS[expected]
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise VolumeError(f"hostPath {path} doesn't exist") from None
    except OSError as e:
        raise VolumeError(f"hostPath type check failed, {path} is not a {description}, "
                          f"unable to determine its type: {e}") from None
    if not test(st.st_mode):
        raise VolumeError(f"hostPath type check failed: {path} is not a {description}, "
                          f"it's a {_type_name(st.st_mode)}")


def check_host_path(path: str, path_type: str | None) -> str:
    """Check (or create) ``path`` for the hostPath ``type``; the path, or VolumeError."""
    kind = path_type or ""
    try:
        if kind == "":
            return path
        if kind == "DirectoryOrCreate":
            if not os.path.lexists(path):
                os.makedirs(path, mode=0o755, exist_ok=True)
            kind = "Directory"
        elif kind == "FileOrCreate":
            if not os.path.lexists(path):
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
            kind = "File"
    except OSError as e:
        raise VolumeError(f"hostPath {path}: {e.strerror or e}") from None
    if kind not in _KINDS:
        raise VolumeError(f"{path_type} is an invalid volume type")
    _match(path, kind)
    return path
