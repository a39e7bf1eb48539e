"""Defaults of the core/v1 kinds, as kube-apiserver fills them in before validation.

A user who sends a bare pod reads it back with ``restartPolicy: Always``,
``dnsPolicy: ClusterFirst``, probe timings, ``imagePullPolicy`` and so on;
workload controllers rely on the same defaults in their pod templates, so
:func:`default_pod_template_spec` is shared with the apps and batch kinds.
Every function edits the object in place and only fills what is missing.
"""

from __future__ import annotations

import base64
from typing import Any

from kubeling.api.defaults import defaulter

Obj = dict[str, Any]

DEFAULT_MODE = 0o644
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
DEFAULT_SCHEDULER = "default-scheduler"
DEFAULT_GRACE_SECONDS = 30
DEFAULT_AFFINITY_TIMEOUT = 10800

VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret",
    "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder",
    "cephfs", "flocker", "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume",
    "quobyte", "azureDisk", "photonPersistentDisk", "projected", "portworxVolume", "scaleIO",
    "storageos", "csi", "ephemeral", "image",
)


def _set(obj: Obj, key: str, value: Any) -> None:
    if obj.get(key) in (None, ""):
        obj[key] = value


def image_tag(image: str) -> str:
    """The tag of an image reference: "latest" when it has neither tag nor digest."""
    if "@" in image:
        name, _, _ = image.partition("@")
        last = name.rsplit("/", 1)[-1]
        return last.partition(":")[2]
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    return "latest"


def default_probe(probe: Obj | None) -> None:
    if not isinstance(probe, dict):
        return
    _set(probe, "timeoutSeconds", 1)
    _set(probe, "periodSeconds", 10)
    _set(probe, "successThreshold", 1)
    _set(probe, "failureThreshold", 3)
    _default_handler(probe)


def _default_handler(handler: Obj | None) -> None:
    if not isinstance(handler, dict):
        return
    http = handler.get("httpGet")
    if isinstance(http, dict):
        _set(http, "path", "/")
        _set(http, "scheme", "HTTP")


def _default_env(env: list[Obj] | None) -> None:
    for var in env or []:
        source = var.get("valueFrom")
        if isinstance(source, dict) and isinstance(source.get("fieldRef"), dict):
            _set(source["fieldRef"], "apiVersion", "v1")


def default_container(ctr: Obj) -> None:
    if not ctr.get("imagePullPolicy"):
        image = ctr.get("image") or ""
        ctr["imagePullPolicy"] = "Always" if image_tag(image) == "latest" else "IfNotPresent"
    _set(ctr, "terminationMessagePath", TERMINATION_MESSAGE_PATH)
    _set(ctr, "terminationMessagePolicy", "File")
    for port in ctr.get("ports") or []:
        _set(port, "protocol", "TCP")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        default_probe(ctr.get(probe))
    lifecycle = ctr.get("lifecycle")
    if isinstance(lifecycle, dict):
        _default_handler(lifecycle.get("postStart"))
        _default_handler(lifecycle.get("preStop"))
    _default_env(ctr.get("env"))


def _default_items_mode(source: Obj) -> None:
    _set(source, "defaultMode", DEFAULT_MODE)


def default_volume(vol: Obj) -> None:
    if not any(key in vol for key in VOLUME_SOURCES):
        vol["emptyDir"] = {}
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        if isinstance(vol.get(key), dict):
            _default_items_mode(vol[key])
    down = vol.get("downwardAPI")
    if isinstance(down, dict):
        for item in down.get("items") or []:
            if isinstance(item.get("fieldRef"), dict):
                _set(item["fieldRef"], "apiVersion", "v1")
    projected = vol.get("projected")
    if isinstance(projected, dict):
        for src in projected.get("sources") or []:
            token = src.get("serviceAccountToken")
            if isinstance(token, dict):
                _set(token, "expirationSeconds", 3600)
            api = src.get("downwardAPI")
            if isinstance(api, dict):
                for item in api.get("items") or []:
                    if isinstance(item.get("fieldRef"), dict):
                        _set(item["fieldRef"], "apiVersion", "v1")
    host = vol.get("hostPath")
    if isinstance(host, dict) and "type" not in host:
        host["type"] = ""
    iscsi = vol.get("iscsi")
    if isinstance(iscsi, dict):
        _set(iscsi, "iscsiInterface", "default")


def default_pod_spec(spec: Obj) -> None:
    """Defaults of a PodSpec, wherever it appears (pods and every pod template)."""
    _set(spec, "dnsPolicy", "ClusterFirst")
    _set(spec, "restartPolicy", "Always")
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    _set(spec, "terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    _set(spec, "schedulerName", DEFAULT_SCHEDULER)
    for vol in spec.get("volumes") or []:
        default_volume(vol)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for ctr in spec.get(key) or []:
            default_container(ctr)
    if spec.get("hostNetwork"):
        for key in ("initContainers", "containers"):
            for ctr in spec.get(key) or []:
                for port in ctr.get("ports") or []:
                    if not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort")


def default_pod_template_spec(tmpl: Obj) -> None:
    spec = tmpl.get("spec")
    if isinstance(spec, dict):
        default_pod_spec(spec)


def _requests_from_limits(ctr: Obj) -> None:
    resources = ctr.get("resources")
    if not isinstance(resources, dict) or not resources.get("limits"):
        return
    requests = resources.setdefault("requests", {})
    if requests is None:
        requests = resources["requests"] = {}
    for name, value in resources["limits"].items():
        requests.setdefault(name, value)


def qos_class(spec: Obj) -> str:
    """Guaranteed, Burstable or BestEffort, from the containers' cpu and memory."""
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for ctr in containers:
        resources = ctr.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        for name in ("cpu", "memory"):
            if name in requests or name in limits:
                any_set = True
            if name not in limits or requests.get(name, limits.get(name)) != limits.get(name):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


@defaulter("", "Pod")
def default_pod(pod: Obj) -> None:
    spec = pod.setdefault("spec", {})
    for key in ("initContainers", "containers"):
        for ctr in spec.get(key) or []:
            _requests_from_limits(ctr)
    default_pod_spec(spec)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    status = pod.get("status")
    if not isinstance(status, dict):
        status = pod["status"] = {}
    _set(status, "phase", "Pending")
    _set(status, "qosClass", qos_class(spec))


@defaulter("", "PodTemplate")
def default_pod_template(obj: Obj) -> None:
    default_pod_template_spec(obj.setdefault("template", {}))


@defaulter("", "ReplicationController")
def default_replication_controller(rc: Obj) -> None:
    spec = rc.setdefault("spec", {})
    tmpl = spec.get("template")
    if isinstance(tmpl, dict):
        labels = (tmpl.get("metadata") or {}).get("labels") or {}
        if labels:
            if not spec.get("selector"):
                spec["selector"] = dict(labels)
            meta = rc.setdefault("metadata", {})
            if not meta.get("labels"):
                meta["labels"] = dict(labels)
        default_pod_template_spec(tmpl)
    if spec.get("replicas") is None:
        spec["replicas"] = 1


@defaulter("", "Namespace")
def default_namespace(ns: Obj) -> None:
    meta = ns.setdefault("metadata", {})
    name = meta.get("name")
    if name:
        labels = meta.get("labels")
        if not isinstance(labels, dict):
            labels = meta["labels"] = {}
        labels["kubernetes.io/metadata.name"] = name
    status = ns.get("status")
    if not isinstance(status, dict):
        status = ns["status"] = {}
    _set(status, "phase", "Active")


@defaulter("", "Service")
def default_service(svc: Obj) -> None:
    spec = svc.setdefault("spec", {})
    _set(spec, "type", "ClusterIP")
    _set(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "ClientIP":
        config = spec.setdefault("sessionAffinityConfig", {}) or {}
        spec["sessionAffinityConfig"] = config
        client = config.setdefault("clientIP", {}) or {}
        config["clientIP"] = client
        _set(client, "timeoutSeconds", DEFAULT_AFFINITY_TIMEOUT)
    for port in spec.get("ports") or []:
        _set(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    kind = spec["type"]
    if kind != "ExternalName":
        if spec.get("clusterIP") and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        elif spec.get("clusterIPs") and not spec.get("clusterIP"):
            spec["clusterIP"] = spec["clusterIPs"][0]
    if kind in ("NodePort", "LoadBalancer"):
        _set(spec, "externalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    if kind != "ExternalName":
        _set(spec, "internalTrafficPolicy", "Cluster")
        _set(spec, "ipFamilyPolicy", "SingleStack")
        if not spec.get("ipFamilies"):
            ip = spec.get("clusterIP") or ""
            spec["ipFamilies"] = ["IPv6" if ":" in ip else "IPv4"]


@defaulter("", "Secret")
def default_secret(secret: Obj) -> None:
    _set(secret, "type", "Opaque")
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = secret.get("data")
        if not isinstance(data, dict):
            data = secret["data"] = {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


@defaulter("", "Endpoints")
def default_endpoints(ep: Obj) -> None:
    for subset in ep.get("subsets") or []:
        for port in subset.get("ports") or []:
            _set(port, "protocol", "TCP")


@defaulter("", "PersistentVolume")
def default_persistent_volume(pv: Obj) -> None:
    spec = pv.setdefault("spec", {})
    _set(spec, "persistentVolumeReclaimPolicy", "Retain")
    _set(spec, "volumeMode", "Filesystem")
    host = spec.get("hostPath")
    if isinstance(host, dict) and "type" not in host:
        host["type"] = ""
    status = pv.get("status")
    if not isinstance(status, dict):
        status = pv["status"] = {}
    _set(status, "phase", "Pending")


@defaulter("", "PersistentVolumeClaim")
def default_persistent_volume_claim(pvc: Obj) -> None:
    spec = pvc.setdefault("spec", {})
    _set(spec, "volumeMode", "Filesystem")
    status = pvc.get("status")
    if not isinstance(status, dict):
        status = pvc["status"] = {}
    _set(status, "phase", "Pending")


@defaulter("", "Node")
def default_node(node: Obj) -> None:
    status = node.get("status")
    if isinstance(status, dict) and status.get("capacity") and not status.get("allocatable"):
        status["allocatable"] = dict(status["capacity"])


@defaulter("", "LimitRange")
def default_limit_range(lr: Obj) -> None:
    for item in (lr.get("spec") or {}).get("limits") or []:
        if item.get("type") != "Container":
            continue
        default = dict(item.get("default") or {})
        request = dict(item.get("defaultRequest") or {})
        for name, value in (item.get("max") or {}).items():
            default.setdefault(name, value)
        for name, value in default.items():
            request.setdefault(name, value)
        for name, value in (item.get("min") or {}).items():
            request.setdefault(name, value)
        if default:
            item["default"] = default
        if request:
            item["defaultRequest"] = request
