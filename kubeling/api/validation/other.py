"""Validation of the small groups: Lease, EndpointSlice, StorageClass, events.k8s.io Event.

Each is a handful of rules, kept together. Messages and paths are
kube-apiserver's; for events.k8s.io/v1 that means the paths of the core Event
the server validates internally (``message`` for ``note``, ``involvedObject``
for ``regarding``), which is what a client of the real server sees.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from kubeling.api import field, names
from kubeling.api.errors import Cause
from kubeling.api.validation import on_create, on_update

Obj = dict[str, Any]


def _invalids(path: str, value: Any, msgs: list[str]) -> list[Cause]:
    return [field.invalid(path, value, msg) for msg in msgs]


# coordination.k8s.io Lease


@on_create("coordination.k8s.io", "Lease")
def validate_lease(obj: Obj) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    duration = spec.get("leaseDurationSeconds")
    if isinstance(duration, int) and duration <= 0:
        causes.append(field.invalid("spec.leaseDurationSeconds", duration,
                                    "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if isinstance(transitions, int) and transitions < 0:
        causes.append(field.invalid("spec.leaseTransitions", transitions,
                                    "must be greater than or equal to 0"))
    if spec.get("preferredHolder") and not spec.get("strategy"):
        causes.append(field.forbidden("spec.preferredHolder",
                                      "may only be specified if `strategy` is defined"))
    return causes


# discovery.k8s.io EndpointSlice

ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
PORT_PROTOCOLS = ("SCTP", "TCP", "UDP")
MAX_ENDPOINTS = 1000
MAX_ADDRESSES = 100
MAX_PORTS = 20000
MAX_TOPOLOGY_LABELS = 16
MAX_ZONE_HINTS = 8


def endpoint_ip(address: str, path: str) -> list[Cause]:
    """The addresses an endpoint may not have (unspecified, loopback, link-local)."""
    ip = names.parse_ip(address)
    if ip is None:
        return [field.invalid(path, address, "must be a valid IP address")]
    causes: list[Cause] = []
    if ip.is_unspecified:
        causes.append(field.invalid(path, address, f"may not be unspecified ({address})"))
    if ip.is_loopback:
        causes.append(field.invalid(path, address,
                                    "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if ip.is_link_local and not ip.is_multicast:
        causes.append(field.invalid(
            path, address, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
    link_multicast = (ip in ipaddress.ip_network("224.0.0.0/24") if ip.version == 4
                      else ip.packed[0] == 0xFF and ip.packed[1] & 0x0F == 0x02)
    if link_multicast:
        causes.append(field.invalid(
            path, address,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
    return causes


def fully_qualified_domain_name(name: str, path: str) -> list[Cause]:
    if not name:
        return [field.required(path)]
    name = name.removesuffix(".")
    errs = names.is_dns1123_subdomain(name)
    if errs:
        return [field.invalid(path, name, ",".join(errs))]
    labels = name.split(".")
    if len(labels) < 2:
        return [field.invalid(path, name,
                              "should be a domain with at least two segments separated by dots")]
    for label in labels:
        errs = names.is_dns1123_label(label)
        if errs:
            return [field.invalid(path, label, ",".join(errs))]
    return []


def _endpoint(endpoint: Obj, address_type: str, path: str) -> list[Cause]:
    from kubeling.api.validation import meta

    causes: list[Cause] = []
    addresses = endpoint.get("addresses") or []
    at = f"{path}.addresses"
    if not addresses:
        causes.append(field.required(at, "must contain at least 1 address"))
    elif len(addresses) > MAX_ADDRESSES:
        causes.append(field.too_many(at, len(addresses), MAX_ADDRESSES))
    for i, address in enumerate(addresses):
        ipath = f"{at}[{i}]"
        if address_type == "IPv4":
            errs = _invalids(ipath, address, names.is_valid_ipv4(address))
            causes.extend(errs or endpoint_ip(address, ipath))
        elif address_type == "IPv6":
            errs = _invalids(ipath, address, names.is_valid_ipv6(address))
            causes.extend(errs or endpoint_ip(address, ipath))
        elif address_type == "FQDN":
            causes.extend(fully_qualified_domain_name(address, ipath))
    node = endpoint.get("nodeName")
    if node is not None:
        causes.extend(_invalids(f"{path}.nodeName", node, names.name_is_dns_subdomain(node)))
    topology = endpoint.get("deprecatedTopology") or {}
    if len(topology) > MAX_TOPOLOGY_LABELS:
        causes.append(field.too_many(f"{path}.deprecatedTopology", len(topology),
                                     MAX_TOPOLOGY_LABELS))
    causes.extend(meta.validate_labels(topology, f"{path}.deprecatedTopology"))
    hostname = endpoint.get("hostname")
    if hostname is not None:
        causes.extend(_invalids(f"{path}.hostname", hostname, names.is_dns1123_label(hostname)))
    zones = (endpoint.get("hints") or {}).get("forZones") or []
    zpath = f"{path}.hints.forZones"
    if len(zones) > MAX_ZONE_HINTS:
        causes.append(field.too_many(zpath, len(zones), MAX_ZONE_HINTS))
    seen: set[str] = set()
    for i, zone in enumerate(zones):
        name = zone.get("name", "")
        if name in seen:
            causes.append(field.duplicate(f"{zpath}[{i}].name", name))
        seen.add(name)
        causes.extend(_invalids(f"{zpath}[{i}].name", name, names.is_valid_label_value(name)))
    return causes


def _endpoints_and_ports(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    endpoints = obj.get("endpoints") or []
    if len(endpoints) > MAX_ENDPOINTS:
        causes.append(field.too_many("endpoints", len(endpoints), MAX_ENDPOINTS))
    address_type = obj.get("addressType") or ""
    for i, endpoint in enumerate(endpoints):
        causes.extend(_endpoint(endpoint, address_type, f"endpoints[{i}]"))
    ports = obj.get("ports") or []
    if len(ports) > MAX_PORTS:
        causes.append(field.too_many("ports", len(ports), MAX_PORTS))
    seen: set[str] = set()
    for i, port in enumerate(ports):
        at = f"ports[{i}]"
        name = port.get("name") or ""
        if name:
            causes.extend(_invalids(f"{at}.name", name, names.is_dns1123_label(name)))
        if name in seen:
            causes.append(field.duplicate(f"{at}.name", name))
        seen.add(name)
        protocol = port.get("protocol")
        if protocol is None:
            causes.append(field.required(f"{at}.protocol"))
        elif protocol not in PORT_PROTOCOLS:
            causes.append(field.not_supported(f"{at}.protocol", protocol, PORT_PROTOCOLS))
        app_protocol = port.get("appProtocol")
        if app_protocol is not None:
            causes.extend(_invalids(f"{at}.appProtocol", app_protocol,
                                    names.is_qualified_name(app_protocol)))
    return causes


@on_create("discovery.k8s.io", "EndpointSlice")
def validate_endpoint_slice(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    address_type = obj.get("addressType") or ""
    if not address_type:
        causes.append(field.required("addressType"))
    elif address_type not in ADDRESS_TYPES:
        causes.append(field.not_supported("addressType", address_type, ADDRESS_TYPES))
    return causes + _endpoints_and_ports(obj)


@on_update("discovery.k8s.io", "EndpointSlice")
def validate_endpoint_slice_update(new: Obj, old: Obj) -> list[Cause]:
    causes = _endpoints_and_ports(new)
    if new.get("addressType") != old.get("addressType"):
        causes.append(field.immutable("addressType", new.get("addressType")))
    return causes


# storage.k8s.io StorageClass

MAX_PARAMETERS = 512
MAX_PARAMETERS_SIZE = 256 * 1024


@on_create("storage.k8s.io", "StorageClass")
def validate_storage_class(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    provisioner = obj.get("provisioner") or ""
    if not provisioner:
        causes.append(field.required("provisioner"))
    else:
        causes.extend(_invalids("provisioner", provisioner.lower(),
                                names.is_qualified_name(provisioner.lower())))
    params = obj.get("parameters") or {}
    if len(params) > MAX_PARAMETERS:
        causes.append(field.too_long("parameters", MAX_PARAMETERS))
    else:
        size = 0
        for key, value in params.items():
            if not key:
                causes.append(field.invalid("parameters", key, "field can not be empty."))
            size += len(key) + len(value or "")
        if size > MAX_PARAMETERS_SIZE:
            causes.append(field.too_long("parameters", MAX_PARAMETERS_SIZE))
    policy = obj.get("reclaimPolicy") or ""
    if policy and policy not in ("Delete", "Retain"):
        causes.append(field.not_supported("reclaimPolicy", policy, ["Delete", "Retain"]))
    mode = obj.get("volumeBindingMode")
    if mode is None:
        causes.append(field.required("volumeBindingMode"))
    elif mode not in ("Immediate", "WaitForFirstConsumer"):
        causes.append(field.not_supported("volumeBindingMode", mode,
                                          ["Immediate", "WaitForFirstConsumer"]))
    for i, term in enumerate(obj.get("allowedTopologies") or []):
        exprs = term.get("matchLabelExpressions") or []
        if not exprs:
            causes.append(field.required(f"allowedTopologies[{i}].matchLabelExpressions",
                                         "must contain at least one key/value pair"))
        for j, expr in enumerate(exprs):
            at = f"allowedTopologies[{i}].matchLabelExpressions[{j}]"
            causes.extend(_invalids(f"{at}.key", expr.get("key", ""),
                                    names.is_qualified_name(expr.get("key", ""))))
            if not expr.get("values"):
                causes.append(field.required(f"{at}.values",
                                             "must specify as least one value"))
    return causes


@on_update("storage.k8s.io", "StorageClass")
def validate_storage_class_update(new: Obj, old: Obj) -> list[Cause]:
    causes = validate_storage_class(new)
    if (new.get("parameters") or {}) != (old.get("parameters") or {}):
        causes.append(field.forbidden("parameters", "updates to parameters are forbidden."))
    if new.get("provisioner") != old.get("provisioner"):
        causes.append(field.forbidden("provisioner", "updates to provisioner are forbidden."))
    if new.get("reclaimPolicy") != old.get("reclaimPolicy"):
        causes.append(field.forbidden("reclaimPolicy",
                                      "updates to reclaimPolicy are forbidden."))
    if new.get("volumeBindingMode") != old.get("volumeBindingMode"):
        causes.append(field.immutable("volumeBindingMode", new.get("volumeBindingMode")))
    return causes


# events.k8s.io Event

NAME_LENGTH_LIMIT = 128
NOTE_LENGTH_LIMIT = 1024
_IMMUTABLE_EVENT_FIELDS = (
    ("regarding", "involvedObject"), ("reason", "reason"), ("note", "message"),
    ("deprecatedSource", "source"), ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"), ("deprecatedCount", "count"),
    ("type", "type"), ("eventTime", "eventTime"), ("action", "action"),
    ("related", "related"), ("reportingController", "reportingController"),
    ("reportingInstance", "reportingInstance"),
)


def _event_common(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    if not obj.get("eventTime"):
        return causes
    namespace = (obj.get("metadata") or {}).get("namespace") or ""
    regarding_ns = (obj.get("regarding") or {}).get("namespace") or ""
    if not regarding_ns and namespace not in ("default", "kube-system"):
        causes.append(field.invalid("involvedObject.namespace", regarding_ns,
                                    "does not match event.namespace"))
    controller = obj.get("reportingController") or ""
    if not controller:
        causes.append(field.required("reportingController"))
    causes.extend(_invalids("reportingController", controller,
                            names.is_qualified_name(controller)))
    for key, path, limit in (("reportingInstance", "reportingInstance", NAME_LENGTH_LIMIT),
                             ("action", "action", NAME_LENGTH_LIMIT),
                             ("reason", "reason", NAME_LENGTH_LIMIT)):
        value = obj.get(key) or ""
        if not value:
            causes.append(field.required(path))
        if len(value) > limit:
            causes.append(field.invalid(path, "", f"can have at most {limit} characters"))
    if len(obj.get("note") or "") > NOTE_LENGTH_LIMIT:
        causes.append(field.invalid("message", "",
                                    f"can have at most {NOTE_LENGTH_LIMIT} characters"))
    return causes


def _event_series(obj: Obj) -> list[Cause]:
    series = obj.get("series")
    if series is None:
        return []
    causes: list[Cause] = []
    if (series.get("count") or 0) < 2:
        causes.append(field.invalid("series.count", "", "should be at least 2"))
    if not series.get("lastObservedTime"):
        causes.append(field.required("series.lastObservedTime"))
    return causes


@on_create("events.k8s.io", "Event")
def validate_event(obj: Obj) -> list[Cause]:
    causes = _event_common(obj)
    causes.extend(_event_series(obj))
    if not obj.get("eventTime"):
        causes.append(field.required("eventTime"))
    kind = obj.get("type") or ""
    if kind not in ("Normal", "Warning"):
        causes.append(field.invalid("type", "", f"has invalid value: {kind}"))
    for key, path in (("deprecatedFirstTimestamp", "firstTimestamp"),
                      ("deprecatedLastTimestamp", "lastTimestamp"),
                      ("deprecatedCount", "count")):
        if obj.get(key):
            causes.append(field.invalid(path, "", "needs to be unset"))
    source = obj.get("deprecatedSource") or {}
    if source.get("component") or source.get("host"):
        causes.append(field.invalid("source", "", "needs to be unset"))
    return causes


@on_update("events.k8s.io", "Event")
def validate_event_update(new: Obj, old: Obj) -> list[Cause]:
    causes = _event_common(new)
    if new.get("series") != old.get("series"):
        causes.extend(_event_series(new))
    for key, path in _IMMUTABLE_EVENT_FIELDS:
        if new.get(key) != old.get(key):
            causes.append(field.immutable(path, new.get(key)))
    return causes
