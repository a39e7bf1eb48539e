"""Which container runtime a node agent uses, and why — said in one log line.

``--runtime auto`` (the default) takes the OCI runtime where it can work: as
root, with runc or crun installed and busybox (Debian's busybox-static, the
pause process) present. Anywhere else it takes the process runtime, which runs
pods as plain host processes without isolation. Asking for ``oci`` where it
cannot work is an error that says what is missing, not a silent fallback.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

PAUSE_BINARIES = ("/bin/busybox", "/usr/bin/busybox")


@dataclass(frozen=True)
class Choice:
    runtime: str  # "oci" | "process"
    why: str


class RuntimeUnavailable(Exception):
    """The runtime asked for cannot run on this host."""


def oci_missing(oci_binary: str = "") -> str | None:
    """What keeps the OCI runtime from working here, or None."""
    if os.geteuid() != 0:
        return "not running as root"
    if oci_binary:
        if shutil.which(oci_binary) is None:
            return f"{oci_binary} is not installed"
    elif shutil.which("runc") is None and shutil.which("crun") is None:
        return "neither runc nor crun is installed"
    if not any(os.path.isfile(p) for p in PAUSE_BINARIES):
        return "busybox (busybox-static, the pause process) is not installed"
    return None


def choose(requested: str, *, oci_binary: str = "") -> Choice:
    if requested == "process":
        return Choice("process", "asked for with --runtime process")
    missing = oci_missing(oci_binary)
    if requested == "oci":
        if missing:
            raise RuntimeUnavailable(f"--runtime oci cannot run here: {missing}")
        return Choice("oci", "asked for with --runtime oci")
    if requested != "auto":
        raise RuntimeUnavailable(f"unknown runtime {requested!r} (auto, oci or process)")
    if missing:
        return Choice("process", f"{missing}: pods run as host processes without isolation")
    binary = oci_binary or ("runc" if shutil.which("runc") else "crun")
    return Choice("oci", f"running as root with {binary}")
