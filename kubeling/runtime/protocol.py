"""The container runtime contract the node agent programs against, shaped after the CRI.

The agent never runs a process itself: it asks a ``Runtime`` for pod sandboxes
and containers, as the kubelet asks a CRI runtime over gRPC. Two runtimes
implement it: the process runtime (host processes, no isolation) and the OCI
runtime (runc/crun bundles in a pause sandbox). One conformance suite
(tests/runtime) runs against both.

Everything the agent needs to find its pods again after a restart is in the
labels and annotations it gives a sandbox or container: the runtime keeps
them durably and returns them unchanged in every status and listing. The
runtime keeps no other knowledge of Kubernetes.

Container output goes to ``ContainerConfig.log_path`` in the CRI log format,
one line per chunk: ``<RFC 3339 nano timestamp> <stdout|stderr> <F|P> <text>``
(P marks a partial line continued by the next entry). A file that reaches the
runtime's size limit is renamed to ``<log_path>.<UTC yyyymmdd-hhmmss>`` and
a new one opened; the oldest rotated files beyond the runtime's file limit are
removed. The agent reads these files itself to serve ``kubectl logs``.

Times are float seconds since the epoch; 0.0 means "not yet".
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

STDOUT = 1
STDERR = 2


class RuntimeFailure(Exception):
    """A runtime operation failed. ``reason`` is what the agent reports in a container's
    waiting state or event (``CreateContainerError``, ``RunContainerError``,
    ``ErrImagePull``...); ``message`` says why, for a human."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class NotFound(RuntimeFailure):
    """No sandbox, container or image with that id."""

    def __init__(self, what: str) -> None:
        super().__init__("NotFound", f"{what} not found")


class SandboxState(enum.Enum):
    READY = "SANDBOX_READY"
    NOTREADY = "SANDBOX_NOTREADY"


class ContainerState(enum.Enum):
    CREATED = "CONTAINER_CREATED"
    RUNNING = "CONTAINER_RUNNING"
    EXITED = "CONTAINER_EXITED"
    UNKNOWN = "CONTAINER_UNKNOWN"


@dataclass(frozen=True)
class PortMapping:
    container_port: int
    host_port: int = 0
    protocol: str = "TCP"
    host_ip: str = ""


@dataclass(frozen=True)
class PodSandboxConfig:
    """What a pod's sandbox is: its identity, its log directory, its network wishes."""

    uid: str
    namespace: str
    name: str
    attempt: int = 0
    hostname: str = ""
    log_directory: str = ""  # <log root>/<namespace>_<name>_<uid>
    host_network: bool = False
    host_pid: bool = False
    host_ipc: bool = False
    port_mappings: tuple[PortMapping, ...] = ()
    dns_servers: tuple[str, ...] = ()
    dns_searches: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    # /etc/hosts: "<ip>\t<hostname>.<hostname_domain>\t<hostname>" when the pod has a
    # subdomain (hostname_domain = "<subdomain>.<namespace>.svc.<cluster domain>"), then
    # the pod's hostAliases as (ip, hostnames).
    hostname_domain: str = ""
    host_aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    cgroup_parent: str = ""


@dataclass(frozen=True)
class SandboxStatus:
    id: str
    uid: str
    namespace: str
    name: str
    attempt: int
    state: SandboxState
    created_at: float
    ip: str = ""  # the pod IP ("" until the network is up; the node's IP for host network)
    additional_ips: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Mount:
    """A host path made visible at ``container_path`` inside the container."""

    container_path: str
    host_path: str
    read_only: bool = False
    propagation: str = "private"  # private | rslave | rshared


@dataclass(frozen=True)
class Resources:
    """Limits as the runtime applies them (the agent converts requests/limits)."""

    cpu_shares: int = 0  # relative weight (requests.cpu millicores * 1024 / 1000, min 2)
    cpu_quota: int = 0  # microseconds per period; 0 = unlimited
    cpu_period: int = 100_000
    memory_limit: int = 0  # bytes; 0 = unlimited
    oom_score_adj: int = 0


@dataclass(frozen=True)
class Security:
    run_as_user: int | None = None
    run_as_group: int | None = None
    supplemental_groups: tuple[int, ...] = ()
    read_only_rootfs: bool = False
    privileged: bool = False
    add_capabilities: tuple[str, ...] = ()
    drop_capabilities: tuple[str, ...] = ()
    no_new_privileges: bool = False


@dataclass(frozen=True)
class ContainerConfig:
    """One container to create in a sandbox. ``command`` and ``args`` are the pod's, with
    ``$(VAR)`` references expanded; the runtime merges them with its image as Kubernetes
    does (see ``merge_argv``). A runtime without image configs (the process runtime) runs
    ``command + args`` and refuses an empty result with ``CreateContainerError``."""

    name: str
    attempt: int  # the restart count this container will have
    image: str  # the image reference as the pod spec names it
    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    working_dir: str = ""
    env: tuple[tuple[str, str], ...] = ()
    mounts: tuple[Mount, ...] = ()
    log_path: str = ""  # absolute path of this attempt's log file
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False
    resources: Resources = field(default_factory=Resources)
    security: Security = field(default_factory=Security)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


def merge_argv(command: Sequence[str], args: Sequence[str], entrypoint: Sequence[str],
               cmd: Sequence[str]) -> list[str]:
    """The argv a container runs: the pod's command replaces the image's entrypoint (and
    drops its cmd); the pod's args replace the image's cmd."""
    if command:
        return [*command, *args]
    return [*entrypoint, *(args if args else cmd)]


@dataclass(frozen=True)
class ContainerStatus:
    id: str
    sandbox_id: str
    name: str
    attempt: int
    state: ContainerState
    image: str  # as configured
    image_ref: str  # what ran (an image id/digest; for host binaries, the resolved path)
    created_at: float
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""  # Completed | Error | OOMKilled | ContainerCannotRun ...
    message: str = ""
    pid: int = 0
    log_path: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


@dataclass(frozen=True)
class ContainerStats:
    container_id: str
    timestamp: float
    cpu_usage_core_ns: int  # cumulative CPU time used, nanoseconds
    memory_working_set_bytes: int
    memory_rss_bytes: int = 0
    processes: int = 0


@dataclass(frozen=True)
class ImageInfo:
    id: str  # content digest ("sha256:...") or a stable id
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()
    size: int = 0


@dataclass(frozen=True)
class RuntimeVersion:
    runtime_name: str  # "process", "runc", "crun"
    runtime_version: str
    api_version: str = "v1"


class StreamSession(Protocol):
    """A running exec, or an attachment to a container's stdio. Without a TTY, stdout and
    stderr arrive separately; with one, everything arrives as stdout."""

    tty: bool

    async def read(self) -> tuple[int, bytes]:
        """The next chunk of output as (STDOUT | STDERR, bytes); (0, b"") once both
        streams are closed."""
        ...

    async def write(self, data: bytes) -> None:
        """Send bytes to the process's stdin (ignored when stdin was not asked for)."""
        ...

    async def close_stdin(self) -> None: ...

    async def resize(self, width: int, height: int) -> None:
        """Set the TTY's size in columns and rows (no-op without a TTY)."""
        ...

    async def wait(self) -> int:
        """The exit code: of the exec'd command, or of the attached container once it ends."""
        ...

    async def close(self) -> None:
        """Let go: an exec'd process is killed if still running; an attached container
        keeps running."""
        ...


class Runtime(Protocol):
    """The CRI verbs the agent uses. Every method may raise ``RuntimeFailure``; a missing id
    raises ``NotFound``. Stopping or removing what is already stopped or gone succeeds."""

    name: str

    async def version(self) -> RuntimeVersion: ...

    # ----- sandboxes ---------------------------------------------------------------
    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        """Create and start the pod's sandbox; returns its id."""
        ...

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        """Stop every container of the sandbox (SIGKILL) and release its network."""
        ...

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        """Remove the sandbox and its containers; nothing of it remains afterwards."""
        ...

    async def pod_sandbox_status(self, sandbox_id: str) -> SandboxStatus: ...

    async def list_pod_sandboxes(self) -> list[SandboxStatus]: ...

    # ----- containers --------------------------------------------------------------
    async def create_container(self, sandbox_id: str, config: ContainerConfig,
                               sandbox: PodSandboxConfig) -> str: ...

    async def start_container(self, container_id: str) -> None: ...

    async def stop_container(self, container_id: str, timeout: float) -> None:
        """SIGTERM (or the image's stop signal), wait up to ``timeout`` seconds for the
        container to exit, then SIGKILL its whole process tree. Returns once it has exited."""
        ...

    async def remove_container(self, container_id: str) -> None: ...

    async def container_status(self, container_id: str) -> ContainerStatus: ...

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]: ...

    async def exec_sync(self, container_id: str, command: Sequence[str], *,
                        timeout: float) -> ExecResult:
        """Run ``command`` in the container's context (env, working dir, mounts) and wait;
        killed with ``timed_out`` after ``timeout`` seconds."""
        ...

    async def exec(self, container_id: str, command: Sequence[str], *, tty: bool,
                   stdin: bool, size: tuple[int, int] | None = None) -> StreamSession:
        """Start ``command`` in the container; with a TTY of ``size`` (columns, rows) from its
        first instant when given, so a command that asks at once sees the client's size."""
        ...

    async def attach(self, container_id: str, *, tty: bool, stdin: bool) -> StreamSession:
        """Connect to the running container's own stdio (its stdin only if it was created
        with ``stdin``); output from the moment of attaching."""
        ...

    async def reopen_container_log(self, container_id: str) -> None: ...

    async def port_forward(self, sandbox_id: str,
                           port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to ``port`` on localhost in the sandbox's network (CRI
        PortForward); raises RuntimeFailure (reason PortForwardError) when refused."""
        ...

    # ----- stats -------------------------------------------------------------------
    async def container_stats(self, container_id: str) -> ContainerStats | None: ...

    async def list_container_stats(self) -> list[ContainerStats]: ...

    # ----- images ------------------------------------------------------------------
    async def pull_image(self, image: str, *, auth: Mapping[str, str] | None = None) -> str:
        """Make the image present; returns its image_ref (id). Raises RuntimeFailure with
        reason ErrImagePull when it cannot."""
        ...

    async def image_status(self, image: str) -> ImageInfo | None: ...

    async def list_images(self) -> list[ImageInfo]: ...

    async def remove_image(self, image: str) -> None: ...

    async def update_runtime_config(self, pod_cidr: str) -> None:
        """The node's pod CIDR is known (or changed): a runtime with a pod network configures
        it (CRI UpdateRuntimeConfig). Until then it may refuse sandboxes that need one."""
        ...

    async def close(self) -> None:
        """Release the runtime's own resources; containers keep running."""
        ...
