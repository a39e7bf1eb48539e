"""A pod's sandbox as the runtime is asked for it: identity, log directory, network."""

from __future__ import annotations

from kubeling.api.defaults.core import qos_class
from kubeling.client.interface import Obj
from kubeling.kubelet.context import POD_NAME, POD_NAMESPACE, POD_UID, KubeletOptions
from kubeling.runtime.protocol import PodSandboxConfig, PortMapping


def cgroup_parent(pod: Obj) -> str:
    """The pod's cgroup under the runtime's root, laid out as the kubelet's cgroupfs driver
    does: Guaranteed pods directly under ``kubepods``, the others under their QoS class."""
    qos, uid = qos_class(pod.get("spec") or {}), pod["metadata"]["uid"]
    if qos == "Guaranteed":
        return f"kubepods/pod{uid}"
    return f"kubepods/{qos.lower()}/pod{uid}"


def sandbox_config(pod: Obj, options: KubeletOptions, *, attempt: int) -> PodSandboxConfig:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    namespace, name, uid = meta.get("namespace", ""), meta["name"], meta["uid"]
    ports = tuple(
        PortMapping(container_port=int(p["containerPort"]), host_port=int(p.get("hostPort", 0)),
                    protocol=p.get("protocol", "TCP"), host_ip=p.get("hostIP", ""))
        for c in spec.get("containers") or () for p in c.get("ports") or ()
        if p.get("hostPort"))
    security = spec.get("securityContext") or {}
    dns = spec.get("dnsConfig") or {}
    return PodSandboxConfig(
        uid=uid, namespace=namespace, name=name, attempt=attempt,
        hostname=spec.get("hostname") or name,
        log_directory=str(options.pod_log_dir(namespace, name, uid)),
        host_network=bool(spec.get("hostNetwork")), host_pid=bool(spec.get("hostPID")),
        host_ipc=bool(spec.get("hostIPC")), port_mappings=ports,
        dns_servers=tuple(dns.get("nameservers") or ()),
        dns_searches=tuple(dns.get("searches") or ()),
        dns_options=tuple(o.get("name", "") for o in dns.get("options") or ()),
        sysctls={s["name"]: str(s.get("value", "")) for s in security.get("sysctls") or ()},
        labels={POD_NAME: name, POD_NAMESPACE: namespace, POD_UID: uid},
        annotations=dict(meta.get("annotations") or {}), cgroup_parent=cgroup_parent(pod))
