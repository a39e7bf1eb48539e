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
}


@dataclass(frozen=True)
class RuntimeOptions:
    """What every runtime is built from."""

    root_dir: Path  # the runtime's own state (sandboxes, containers, shims' files)
    node_ip: str = "127.0.0.1"  # a host-network pod's IP
    log_max_bytes: int = 10 * 1024 * 1024  # rotate a container's log file at this size
    log_max_files: int = 5  # rotated files kept per container, the live one included


def open_runtime(name: str, options: RuntimeOptions) -> Runtime:
    target = RUNTIMES.get(name)
    if target is None:
        raise ValueError(f"unknown runtime {name!r} (known: {', '.join(sorted(RUNTIMES))})")
    module, _, cls = target.partition(":")
    runtime: Runtime = getattr(importlib.import_module(module), cls)(options)
    return runtime
