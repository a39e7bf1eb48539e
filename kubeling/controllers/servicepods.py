"""What the Endpoints and EndpointSlice controllers both decide about a Service's pods.

Both controllers answer the same questions the same way (as Kubernetes' shared
``endpointslice/util`` package does): which services select a pod, whether a
pod belongs in a service's endpoints at all, whether it is ready, which
address and port it offers for a service port (a ``targetPort`` by name is
looked up in the pod's container ports), and whether the endpoint carries the
pod's hostname. Keeping these here keeps the two controllers from drifting.

A pod change must reach the services selecting it within a second, so
services are indexed by every ``key=value`` pair of their selector: a pod's
services are found from its labels, never by scanning every service.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from kubeling.api.selectors import selector_from_map
from kubeling.client.informer import Informer, key_of
from kubeling.client.interface import Obj
from kubeling.controllers.base import Controller, ControllerContext
from kubeling.utils.clock import Clock

SELECTOR_INDEX = "service-selector"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
HEADLESS_LABEL = "service.kubernetes.io/headless"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"


def selector_of(svc: Obj) -> dict[str, str]:
    """The service's selector; empty means "no selector" (Go drops an empty map)."""
    return (svc.get("spec") or {}).get("selector") or {}


def _selector_pairs(svc: Obj) -> Iterable[str]:
    ns = svc["metadata"].get("namespace") or ""
    return [f"{ns}/{k}={v}" for k, v in selector_of(svc).items()]


def index_services(services: Informer) -> None:
    """Index services by each selector pair so :func:`services_for_pod` is cheap."""
    if SELECTOR_INDEX not in services._index_fns:
        services.add_index(SELECTOR_INDEX, _selector_pairs)


def selects(svc: Obj, pod: Obj) -> bool:
    sel = selector_of(svc)
    if not sel or svc["metadata"].get("namespace") != pod["metadata"].get("namespace"):
        return False
    labels = pod["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in sel.items())


def selected_pods(pods: Informer, svc: Obj) -> list[Obj]:
    """The pods ``svc`` selects, narrowed through the pod informer's label index."""
    ns = svc["metadata"].get("namespace")
    return [p for p in pods.list(ns, selector_from_map(selector_of(svc))) if selects(svc, p)]


def services_for_pod(services: Informer, pod: Obj) -> set[str]:
    """Keys of the services (with a selector) that select ``pod``."""
    ns = pod["metadata"].get("namespace") or ""
    out: set[str] = set()
    for k, v in (pod["metadata"].get("labels") or {}).items():
        for svc in services.by_index(SELECTOR_INDEX, f"{ns}/{k}={v}"):
            if selects(svc, pod):
                out.add(key_of(svc))
    return out


def _fingerprint(pod: Obj) -> tuple[Any, ...]:
    """What of a pod can change its endpoints (labels, addresses, readiness, phase...)."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    return (meta.get("labels"), meta.get("deletionTimestamp"), status.get("podIP"),
            status.get("podIPs"), status.get("phase"), pod_ready(pod), spec.get("nodeName"),
            spec.get("hostname"), spec.get("subdomain"))


def services_on_pod_change(services: Informer, old: Obj, new: Obj) -> set[str]:
    if _fingerprint(old) == _fingerprint(new):
        return set()
    return services_for_pod(services, old) | services_for_pod(services, new)


def pod_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def should_be_in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    """Terminal pods and pods without an IP never are; terminating ones only if asked."""
    if is_terminal(pod):
        return False
    status = pod.get("status") or {}
    if not status.get("podIP") and not status.get("podIPs"):
        return False
    if pod["metadata"].get("deletionTimestamp") and not include_terminating:
        return False
    return True


def is_headless(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") in ("None", "", None)


def address_type(svc: Obj) -> str:
    families = (svc.get("spec") or {}).get("ipFamilies") or ["IPv4"]
    return "IPv6" if families[0] == "IPv6" else "IPv4"


def pod_ip(svc: Obj, pod: Obj) -> str | None:
    """The pod's address of the service's (first) IP family."""
    want_v6 = address_type(svc) == "IPv6"
    status = pod.get("status") or {}
    ips = [p.get("ip") or "" for p in status.get("podIPs") or ()] or [status.get("podIP") or ""]
    for ip in ips:
        if ip and (":" in ip) == want_v6:
            return str(ip)
    return None


def find_port(pod: Obj, svc_port: Obj) -> int | None:
    """The pod's port for a service port: a number as is, a name from the container ports
    of the same protocol (sidecar init containers included); None when the pod lacks it."""
    target = svc_port.get("targetPort")
    if target in (None, "", 0):
        target = svc_port.get("port")
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = svc_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or ())
    containers += [c for c in spec.get("initContainers") or ()
                   if c.get("restartPolicy") == "Always"]
    for c in containers:
        for p in c.get("ports") or ():
            if p.get("name") == target and (p.get("protocol") or "TCP") == protocol:
                return int(p["containerPort"])
    return None


def hostname_for(svc: Obj, pod: Obj) -> str | None:
    """The pod's hostname when it names this service as its subdomain."""
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == svc["metadata"]["name"] and \
            svc["metadata"].get("namespace") == pod["metadata"].get("namespace"):
        return str(spec["hostname"])
    return None


def target_ref(pod: Obj) -> Obj:
    meta = pod["metadata"]
    return {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta["name"],
            "uid": meta.get("uid")}


def canon(value: Any) -> Any:
    """``value`` without nulls and empty maps/lists, as storage keeps it, for comparisons."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            c = canon(v)
            if c is None or (isinstance(c, dict | list) and not c):
                continue
            out[k] = c
        return out
    if isinstance(value, list):
        return [canon(v) for v in value]
    return value


def rfc3339_nano(ts: float) -> str:
    """Go's RFC3339Nano (trailing zeros of the fraction dropped), in UTC."""
    text = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0")
    return text.rstrip(".") + "Z"


class TriggerTimes:
    """The first unprocessed change behind each service key (the time a handler saw it):
    written as ``endpoints.kubernetes.io/last-change-trigger-time`` with the next write."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._pending: dict[str, float] = {}

    def note(self, key: str) -> None:
        self._pending.setdefault(key, self.clock.now())

    def take(self, key: str) -> float | None:
        return self._pending.pop(key, None)

    def forget(self, key: str) -> None:
        self._pending.pop(key, None)


class ServicePodsController(Controller):
    """Base of the controllers that keep an object per Service from the pods it selects
    (Endpoints, EndpointSlices): a Service's own changes, and the changes of the pods it
    selects (found through the selector index), enqueue the Service, noting when for the
    ``endpoints.kubernetes.io/last-change-trigger-time`` annotation."""

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.services = ctx.informers.informer(("", "services"))
        self.pods = ctx.informers.informer(("", "pods"))
        index_services(self.services)
        self.triggers = TriggerTimes(ctx.clock)
        self.services.add_handlers(add=self._service_changed,
                                   update=lambda _o, n: self._service_changed(n),
                                   delete=self._service_changed)
        self.pods.add_handlers(add=self._pod_changed, update=self._pod_updated,
                               delete=self._pod_changed)

    def _add(self, key: str) -> None:
        self.triggers.note(key)
        self.queue.add(key)

    def _service_changed(self, svc: Obj) -> None:
        self._add(key_of(svc))

    def _pod_changed(self, pod: Obj) -> None:
        for key in services_for_pod(self.services, pod):
            self._add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        for key in services_on_pod_change(self.services, old, new):
            self._add(key)
