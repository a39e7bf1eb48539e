"""What every part of the node agent shares: its options, its on-disk layout, its handles.

The agent is built from parts (pod workers, status, probes, volumes, the
kubelet HTTPS server, node status, static pods) that never import one another's
internals: they meet in a ``KubeletContext`` and in the protocols of
:mod:`kubeling.kubelet.interfaces`. The labels below are how the agent marks
what it asks the runtime to make, so that after a restart it can tell which
sandbox and container belong to which pod (the kubelet's ``io.kubernetes.*``
labels, same names).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kubeling.client.events import EventRecorder
from kubeling.client.informer import Informers
from kubeling.client.interface import Client, Obj
from kubeling.runtime import DEFAULT_CNI_BIN_DIRS
from kubeling.runtime.protocol import Runtime
from kubeling.utils.clock import REAL, Clock

# Labels on sandboxes and containers (kept by the runtime, returned in every status).
POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
# Annotations on containers.
CONTAINER_HASH = "io.kubernetes.container.hash"
RESTART_COUNT = "io.kubernetes.container.restartCount"
TERMINATION_MESSAGE_PATH = "io.kubernetes.container.terminationMessagePath"
TERMINATION_MESSAGE_POLICY = "io.kubernetes.container.terminationMessagePolicy"
TERMINATION_GRACE_PERIOD = "io.kubernetes.pod.terminationGracePeriod"
PRE_STOP_HANDLER = "io.kubernetes.container.preStopHandler"  # JSON of the lifecycle handler
CONTAINER_PORTS = "io.kubernetes.container.ports"  # JSON list of the container's ports
INIT_CONTAINER = "kubeling.io/init-container"  # "true" on init containers

# Static pods (pkg/kubelet/types): where a pod came from and its mirror's marker.
CONFIG_SOURCE = "kubernetes.io/config.source"  # "api" | "file"
CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_MIRROR = "kubernetes.io/config.mirror"
CONFIG_SEEN = "kubernetes.io/config.seen"


@dataclass
class KubeletOptions:
    node_name: str
    root_dir: Path  # <data dir>/agent: pods/, runtime/, pki/, logs/
    pod_manifest_path: Path | None = None
    runtime: str = "process"
    node_ip: str = ""  # "" = the address of the default route's interface
    address: str = "0.0.0.0"  # where the kubelet HTTPS server listens
    port: int = 10250  # 0 = a free port, advertised in status.daemonEndpoints
    health_port: int = 10248  # /healthz and /metrics over plain HTTP; 0 = a free port
    control_plane: bool = False  # the server's own node: node-role.kubernetes.io/control-plane
    node_labels: dict[str, str] = field(default_factory=dict)
    register_with_taints: list[Obj] = field(default_factory=list)
    max_pods: int = 110
    # Container restart back-off: initial, doubling to max, reset after a clean run of reset.
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    backoff_reset: float = 600.0
    # Heartbeats.
    lease_duration: int = 40
    lease_interval: float = 10.0
    status_update_interval: float = 10.0  # how often the node status is computed
    status_report_interval: float = 60.0  # written at least this often when unchanged
    # Work loops.
    sync_interval: float = 60.0  # every pod re-synced at least this often
    relist_interval: float = 1.0  # runtime relisted to notice container exits (PLEG)
    housekeeping_interval: float = 2.0
    volume_refresh_interval: float = 2.0  # configMap/secret/downwardAPI volumes re-rendered
    stats_interval: float = 10.0
    container_log_max_bytes: int = 10 * 1024 * 1024
    container_log_max_files: int = 5
    # The server's CA and the client certificates it may call the kubelet API with.
    ca_file: Path | None = None
    # The OCI runtime's host integration (see kubeling.runtime.RuntimeOptions).
    oci_binary: str = ""
    cgroup_parent: str = "kubeling"
    cni_conf_dir: Path | None = None
    cni_bin_dirs: tuple[Path, ...] = DEFAULT_CNI_BIN_DIRS
    insecure_registries: tuple[str, ...] = ()
    # Image garbage collection: above high % of the image filesystem's disk used, unused
    # images are removed, least recently used first, until usage is below low %.
    image_gc_high_percent: int = 85
    image_gc_low_percent: int = 80
    image_gc_interval: float = 300.0
    # Pods' DNS: the cluster DNS addresses (empty = the clusterIP of kube-system/kube-dns,
    # read from the API), the cluster domain, and the host resolver file that dnsPolicy
    # Default (and ClusterFirst's extra search domains) read.
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    resolv_conf: Path = Path("/etc/resolv.conf")

    @property
    def pods_dir(self) -> Path:
        return self.root_dir / "pods"

    @property
    def logs_dir(self) -> Path:
        return self.root_dir / "logs" / "pods"

    @property
    def runtime_dir(self) -> Path:
        return self.root_dir / "runtime"

    @property
    def images_dir(self) -> Path:
        """The image store (``kubeling images --data-dir`` finds it here too)."""
        return self.root_dir / "images"

    @property
    def images_import_dir(self) -> Path:
        """Image archives dropped here are imported when the agent starts (airgap)."""
        return self.root_dir / "images-import"

    def pod_dir(self, uid: str) -> Path:
        return self.pods_dir / uid

    def volumes_dir(self, uid: str) -> Path:
        """A volume's directory is ``<this>/<plugin>/<volume name>``, with plugin names
        as the kubelet writes them (``kubernetes.io~empty-dir``, ``kubernetes.io~configmap``)."""
        return self.pod_dir(uid) / "volumes"

    def pod_log_dir(self, namespace: str, name: str, uid: str) -> Path:
        return self.logs_dir / f"{namespace}_{name}_{uid}"

    def container_log_path(self, namespace: str, name: str, uid: str, container: str,
                           attempt: int) -> Path:
        return self.pod_log_dir(namespace, name, uid) / container / f"{attempt}.log"

    def replace(self, **changes: object) -> KubeletOptions:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


class ObjectSource(Protocol):
    """The API objects a pod refers to, read from the agent's informers (None = absent)."""

    def configmap(self, namespace: str, name: str) -> Obj | None: ...

    def secret(self, namespace: str, name: str) -> Obj | None: ...

    def pvc(self, namespace: str, name: str) -> Obj | None: ...

    def pv(self, name: str) -> Obj | None: ...

    def node(self) -> Obj | None:
        """This agent's own Node."""
        ...


@dataclass
class KubeletContext:
    client: Client
    informers: Informers
    runtime: Runtime
    options: KubeletOptions
    recorder: EventRecorder  # component "kubelet", host = node name
    objects: ObjectSource
    clock: Clock = REAL
    node_ip: str = ""  # resolved at start-up
