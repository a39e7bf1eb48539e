"""A pod's sandbox as the runtime is asked for it: identity, log directory, network, and
the names it resolves (its resolv.conf per dnsPolicy, its /etc/hosts entries).

The kubelet decides the pod's DNS settings and hosts entries; the runtime only
writes what it is given. The cluster DNS address comes from ``--cluster-dns``
or, when that is empty, from the ``kube-system/kube-dns`` Service the agent's
informer holds.
"""

from __future__ import annotations

from kubeling.api.defaults.core import qos_class
from kubeling.client.events import WARNING, EventRecorder
from kubeling.client.interface import Obj
from kubeling.kubelet import dnsconfig
from kubeling.kubelet.context import POD_NAME, POD_NAMESPACE, POD_UID, KubeletOptions
from kubeling.kubelet.servicelinks import discovered_cluster_dns
from kubeling.runtime.protocol import PodSandboxConfig, PortMapping

MAX_HOSTNAME = 63


def cgroup_parent(pod: Obj) -> str:
    """The pod's cgroup under the runtime's root, laid out as the kubelet's cgroupfs driver
    does: Guaranteed pods directly under ``kubepods``, the others under their QoS class."""
    qos, uid = qos_class(pod.get("spec") or {}), pod["metadata"]["uid"]
    if qos == "Guaranteed":
        return f"kubepods/pod{uid}"
    return f"kubepods/{qos.lower()}/pod{uid}"


def hostname_and_domain(pod: Obj, cluster_domain: str) -> tuple[str, str]:
    """The pod's hostname (spec.hostname, else its name, at most 63 characters) and, with a
    subdomain, its domain ``<subdomain>.<namespace>.svc.<cluster domain>``."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    name = (spec.get("hostname") or meta["name"])[:MAX_HOSTNAME].rstrip("-.")
    subdomain = spec.get("subdomain") or ""
    if not subdomain:
        return name, ""
    namespace = meta.get("namespace") or "default"
    return name, f"{subdomain}.{namespace}.svc.{cluster_domain.strip('.')}"


def pod_dns(pod: Obj, options: KubeletOptions, *, objects: object = None,
            recorder: EventRecorder | None = None) -> dnsconfig.DnsConfig:
    """The pod's resolver settings; the warnings met on the way become events on the pod
    when ``recorder`` is given (the kubelet records them once, when the sandbox is made)."""
    cluster_dns = options.cluster_dns or discovered_cluster_dns(objects)
    host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
    try:
        text = options.resolv_conf.read_text()
    except OSError:
        text = ""
    host = dnsconfig.parse_resolv_conf(text, drop_loopback=not host_network)
    result = dnsconfig.pod_dns(pod, cluster_dns=cluster_dns,
                               cluster_domain=options.cluster_domain, host=host)
    if recorder is not None:
        for reason, message in result.warnings:
            recorder.event(pod, WARNING, reason, message)
    return result.config


def sandbox_config(pod: Obj, options: KubeletOptions, *, attempt: int, objects: object = None,
                   recorder: EventRecorder | None = None) -> PodSandboxConfig:
    """What the runtime is asked for. ``objects`` (the agent's ObjectSource) lets the cluster
    DNS be found from the kube-dns Service; ``recorder`` records DNS warnings on the pod."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    namespace, name, uid = meta.get("namespace", ""), meta["name"], meta["uid"]
    ports = tuple(
        PortMapping(container_port=int(p["containerPort"]), host_port=int(p.get("hostPort", 0)),
                    protocol=p.get("protocol", "TCP"), host_ip=p.get("hostIP", ""))
        for c in spec.get("containers") or () for p in c.get("ports") or ()
        if p.get("hostPort"))
    security = spec.get("securityContext") or {}
    dns = pod_dns(pod, options, objects=objects, recorder=recorder)
    host, domain = hostname_and_domain(pod, options.cluster_domain)
    aliases = tuple((str(a.get("ip", "")), tuple(a.get("hostnames") or ()))
                    for a in spec.get("hostAliases") or ())
    return PodSandboxConfig(
        uid=uid, namespace=namespace, name=name, attempt=attempt,
        hostname=host, hostname_domain=domain, host_aliases=aliases,
        log_directory=str(options.pod_log_dir(namespace, name, uid)),
        host_network=bool(spec.get("hostNetwork")), host_pid=bool(spec.get("hostPID")),
        host_ipc=bool(spec.get("hostIPC")), port_mappings=ports,
        dns_servers=dns.servers, dns_searches=dns.searches, dns_options=dns.options,
        sysctls={s["name"]: str(s.get("value", "")) for s in security.get("sysctls") or ()},
        labels={POD_NAME: name, POD_NAMESPACE: namespace, POD_UID: uid},
        annotations=dict(meta.get("annotations") or {}), cgroup_parent=cgroup_parent(pod))
