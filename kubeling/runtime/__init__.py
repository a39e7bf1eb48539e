"""Container runtimes behind one CRI-shaped protocol (``protocol.Runtime``), chosen by name.

``open_runtime("process", options)`` imports the implementation on demand, as
storage backends are chosen by URL scheme: the OCI runtime joins the table
without the agent changing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from kubeling.runtime.protocol import Runtime

RUNTIMES: dict[str, str] = {
    "process": "kubeling.runtime.process:ProcessRuntime",
    "oci": "kubeling.runtime.oci:OciRuntime",
}

DEFAULT_CNI_BIN_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))


@dataclass(frozen=True)
class RuntimeOptions:
    """What every runtime is built from."""

    root_dir: Path  # the runtime's own state (sandboxes, containers, shims' files)
    node_ip: str = "127.0.0.1"  # a host-network pod's IP
    log_max_bytes: int = 10 * 1024 * 1024  # rotate a container's log file at this size
    log_max_files: int = 5  # rotated files kept per container, the live one included
    # The image store (content-addressed; shared with `kubeling images`); root_dir/images if None.
    images_dir: Path | None = None
    # Registries spoken to over plain HTTP (host[:port]); localhost and 127.0.0.1 always are.
    insecure_registries: tuple[str, ...] = ()
    # OCI runtime: the runc or crun binary ("" = runc, else crun, from PATH).
    oci_binary: str = ""
    # The cgroup every pod and container of this runtime goes under (one per node on a host).
    cgroup_parent: str = "kubeling"
    # CNI: where network configurations are read (the first *.conflist/*.conf by name wins;
    # the runtime writes its own there when the directory has none) and where plugins are.
    cni_conf_dir: Path | None = None  # root_dir/cni/net.d if None
    cni_bin_dirs: tuple[Path, ...] = DEFAULT_CNI_BIN_DIRS
    cni_bridge: str = "kubeling0"  # the node's pod bridge (one per network namespace)


def open_runtime(name: str, options: RuntimeOptions) -> Runtime:
    target = RUNTIMES.get(name)
    if target is None:
        raise ValueError(f"unknown runtime {name!r} (known: {', '.join(sorted(RUNTIMES))})")
    module, _, cls = target.partition(":")
    runtime: Runtime = getattr(importlib.import_module(module), cls)(options)
    return runtime
