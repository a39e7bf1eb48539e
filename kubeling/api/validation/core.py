"""Validation of the core/v1 kinds: pods and their specs first, then the rest.

The pod spec rules are shared: every workload (ReplicaSet, Deployment, Job,
...) validates its template through :func:`validate_pod_template_spec`.
Messages and field paths follow kube-apiserver, so ``kubectl apply`` of a
bad manifest fails with the same lines a user would see on a real cluster.
"""

from __future__ import annotations

import base64
import binascii
import re
from decimal import Decimal
from typing import Any

import orjson

from kubeling.api import field, names, quantity
from kubeling.api.defaults.core import VOLUME_SOURCES
from kubeling.api.errors import Cause
from kubeling.api.validation import meta as metav
from kubeling.api.validation import on_create, on_status_update, on_update

Obj = dict[str, Any]
MAX_INT32 = 2**31 - 1

_QUANTITY_MSG = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
_NANOS = Decimal(10**9)


def parse_quantity(value: Any) -> Decimal | None:
    """The numeric value of a resource quantity, or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        return Decimal(quantity.parse_quantity(value).nanos) / _NANOS
    except (ValueError, TypeError):
        return None


def not_found(path: str, value: Any) -> Cause:
    return {"reason": "FieldValueNotFound", "message": f"Not found: {field.show(value)}",
            "field": path}


def _invalids(path: str, value: Any, msgs: list[str]) -> list[Cause]:
    return [field.invalid(path, value, msg) for msg in msgs]


def nonnegative(value: Any, path: str) -> list[Cause]:
    if isinstance(value, int) and value < 0:
        return [field.invalid(path, value, "must be greater than or equal to 0")]
    return []


def dns1123_label(value: str, path: str) -> list[Cause]:
    return _invalids(path, value, names.is_dns1123_label(value))


def dns1123_subdomain(value: str, path: str) -> list[Cause]:
    return _invalids(path, value, names.is_dns1123_subdomain(value))


def port_num_or_name(port: Any, path: str) -> list[Cause]:
    if isinstance(port, int) and not isinstance(port, bool):
        return _invalids(path, port, names.is_valid_port_num(port))
    if isinstance(port, str):
        return _invalids(path, port, names.is_valid_port_name(port))
    return [field.invalid(path, port, "must be an integer or a string")]


# -- resources -------------------------------------------------------------------------------

_STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_STANDARD_RESOURCES = (
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory",
    "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage",
    "pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
    "persistentvolumeclaims", "storage", "requests.storage", "services.nodeports",
    "services.loadbalancers",
)
_INTEGER_RESOURCES = (
    "pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
    "persistentvolumeclaims", "services.nodeports", "services.loadbalancers",
)


def _is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _is_hugepages(name: str) -> bool:
    return name.startswith("hugepages-")


def _overcommit_allowed(name: str) -> bool:
    return _is_native(name) and not _is_hugepages(name)


def _resource_name(name: str, path: str) -> list[Cause]:
    causes = metav.validate_label_name(name, path)
    if "/" not in name and name not in _STANDARD_RESOURCES and not _is_hugepages(name):
        causes.append(field.invalid(path, name, "must be a standard resource type or fully "
                                                "qualified"))
    return causes


def _container_resource_name(name: str, path: str) -> list[Cause]:
    causes = metav.validate_label_name(name, path)
    if "/" not in name:
        if name not in _STANDARD_CONTAINER_RESOURCES and not _is_hugepages(name):
            causes.append(field.invalid(path, name, "must be a standard resource for containers"))
    elif not _is_native(name) and "requests." in name:
        causes.append(field.invalid(path, name,
                                    "doesn't follow extended resource name standard"))
    return causes


def quantity_value(name: str, value: Any, path: str) -> list[Cause]:
    """A quantity must parse, be non-negative, and be whole for countable resources."""
    number = parse_quantity(value)
    if number is None:
        return [field.invalid(path, value, _QUANTITY_MSG)]
    if number < 0:
        return [field.invalid(path, value, "must be greater than or equal to 0")]
    integer = name in _INTEGER_RESOURCES or name.startswith("count/") or not _is_native(name)
    if integer and number != number.to_integral_value():
        return [field.invalid(path, value, "must be an integer")]
    return []


def validate_resource_requirements(res: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(res, dict):
        return causes
    limits = res.get("limits") or {}
    requests = res.get("requests") or {}
    for name, value in limits.items():
        at = f"{path}.limits[{name}]"
        causes.extend(_container_resource_name(name, at))
        causes.extend(quantity_value(name, value, at))
    for name, value in requests.items():
        at = f"{path}.requests[{name}]"
        causes.extend(_container_resource_name(name, at))
        causes.extend(quantity_value(name, value, at))
        req = parse_quantity(value)
        if name in limits:
            lim = parse_quantity(limits[name])
            if req is None or lim is None:
                continue
            if req != lim and not _overcommit_allowed(name):
                causes.append(field.invalid(f"{path}.requests", value,
                                            f"must be equal to {name} limit of {limits[name]}"))
            elif req > lim:
                causes.append(field.invalid(
                    f"{path}.requests", value,
                    f"must be less than or equal to {name} limit of {limits[name]}"))
        elif not _overcommit_allowed(name):
            causes.append(field.required(f"{path}.limits",
                                         "Limit must be set for non overcommitable resources"))
    return causes


def validate_resource_list(res: Any, path: str) -> list[Cause]:
    """A ResourceList outside a container (quotas, PVs, PVCs, node capacity)."""
    causes: list[Cause] = []
    for name, value in (res or {}).items():
        at = f"{path}[{name}]"
        causes.extend(_resource_name(name, at))
        causes.extend(quantity_value(name, value, at))
    return causes


# -- volumes ---------------------------------------------------------------------------------

_FILE_MODE_MSG = "must be a number between 0 and 0777 (octal), both inclusive"
_HOST_PATH_TYPES = ("", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File",
                    "FileOrCreate", "Socket")


def _file_mode(mode: Any, path: str) -> list[Cause]:
    if mode is not None and (not isinstance(mode, int) or mode < 0 or mode > 0o777):
        return [field.invalid(path, mode, _FILE_MODE_MSG)]
    return []


def _no_backsteps(target: str, path: str) -> list[Cause]:
    if ".." in target.split("/"):
        return [field.invalid(path, target, "must not contain '..'")]
    return []


def local_descending_path(target: str, path: str) -> list[Cause]:
    causes = []
    if target.startswith("/"):
        causes.append(field.invalid(path, target, "must be a relative path"))
    causes.extend(_no_backsteps(target, path))
    return causes


def _local_non_reserved_path(target: str, path: str) -> list[Cause]:
    causes = local_descending_path(target, path)
    if target.startswith("..") and not target.startswith("../"):
        causes.append(field.invalid(path, target, "must not start with '..'"))
    return causes


def _key_to_paths(items: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, item in enumerate(items or []):
        at = f"{path}[{i}]"
        if not item.get("key"):
            causes.append(field.required(f"{at}.key"))
        target = item.get("path") or ""
        if not target:
            causes.append(field.required(f"{at}.path"))
        causes.extend(_local_non_reserved_path(target, f"{at}.path"))
        causes.extend(_file_mode(item.get("mode"), f"{at}.mode"))
    return causes


def _volume_source(vol: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    present = [key for key in VOLUME_SOURCES if vol.get(key) is not None]
    if not present:
        return [field.required(path, "must specify a volume type")]
    for key in present[1:]:
        causes.append(field.forbidden(f"{path}.{key}", "may not specify more than 1 volume type"))
    key = present[0]
    src = vol[key]
    at = f"{path}.{key}"
    if key == "hostPath":
        if not src.get("path"):
            return [*causes, field.required(f"{at}.path")]
        causes.extend(_no_backsteps(src["path"], f"{at}.path"))
        if src.get("type") not in (None, *_HOST_PATH_TYPES):
            causes.append(field.not_supported(f"{at}.type", src["type"], _HOST_PATH_TYPES))
    elif key == "emptyDir":
        limit = src.get("sizeLimit")
        if limit is not None:
            number = parse_quantity(limit)
            if number is None or number < 0:
                causes.append(field.forbidden(f"{at}.sizeLimit",
                                              "SizeLimit field must be a valid resource quantity"))
    elif key == "secret":
        if not src.get("secretName"):
            causes.append(field.required(f"{at}.secretName"))
        causes.extend(_file_mode(src.get("defaultMode"), f"{at}.defaultMode"))
        causes.extend(_key_to_paths(src.get("items"), f"{at}.items"))
    elif key == "configMap":
        if not src.get("name"):
            causes.append(field.required(f"{at}.name"))
        causes.extend(_file_mode(src.get("defaultMode"), f"{at}.defaultMode"))
        causes.extend(_key_to_paths(src.get("items"), f"{at}.items"))
    elif key == "persistentVolumeClaim":
        if not src.get("claimName"):
            causes.append(field.required(f"{at}.claimName"))
    elif key == "nfs":
        if not src.get("server"):
            causes.append(field.required(f"{at}.server"))
        nfs_path = src.get("path") or ""
        if not nfs_path:
            causes.append(field.required(f"{at}.path"))
        elif not nfs_path.startswith("/"):
            causes.append(field.invalid(f"{at}.path", nfs_path, "must be an absolute path"))
    elif key == "downwardAPI":
        causes.extend(_file_mode(src.get("defaultMode"), f"{at}.defaultMode"))
        for i, item in enumerate(src.get("items") or []):
            item_at = f"{at}.items[{i}]"
            target = item.get("path") or ""
            if not target:
                causes.append(field.required(f"{item_at}.path"))
            causes.extend(_local_non_reserved_path(target, f"{item_at}.path"))
            causes.extend(_file_mode(item.get("mode"), f"{item_at}.mode"))
    elif key == "projected":
        causes.extend(_file_mode(src.get("defaultMode"), f"{at}.defaultMode"))
    elif key == "csi":
        if not src.get("driver"):
            causes.append(field.required(f"{at}.driver"))
    elif key == "ephemeral":
        if not src.get("volumeClaimTemplate"):
            causes.append(field.required(f"{at}.volumeClaimTemplate"))
    elif key == "image" and not src.get("reference"):
        causes.append(field.required(f"{at}.reference"))
    return causes


def validate_volumes(volumes: Any, path: str) -> tuple[dict[str, Obj], list[Cause]]:
    """Check the pod's volumes; return the valid ones by name, for mounts to refer to."""
    causes: list[Cause] = []
    valid: dict[str, Obj] = {}
    seen: set[str] = set()
    for i, vol in enumerate(volumes or []):
        at = f"{path}[{i}]"
        errs = _volume_source(vol, at)
        name = vol.get("name") or ""
        if not name:
            errs.append(field.required(f"{at}.name"))
        else:
            errs.extend(dns1123_label(name, f"{at}.name"))
        if name in seen:
            errs.append(field.duplicate(f"{at}.name", name))
        if errs:
            causes.extend(errs)
        else:
            seen.add(name)
            valid[name] = vol
    return valid, causes


# -- containers ------------------------------------------------------------------------------

_PROTOCOLS = ("SCTP", "TCP", "UDP")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                    "spec.serviceAccountName", "status.hostIP", "status.hostIPs",
                    "status.podIP", "status.podIPs")
_RESOURCE_FIELD_PATHS = ("limits.cpu", "limits.ephemeral-storage", "limits.memory",
                         "requests.cpu", "requests.ephemeral-storage", "requests.memory")
_SUBSCRIPT_RE = re.compile(r"(metadata\.(?:labels|annotations))\['(.*)'\]\Z")


def _container_ports(ports: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, port in enumerate(ports or []):
        at = f"{path}[{i}]"
        name = port.get("name") or ""
        if name:
            msgs = names.is_valid_port_name(name)
            if msgs:
                causes.extend(_invalids(f"{at}.name", name, msgs))
            elif name in seen:
                causes.append(field.duplicate(f"{at}.name", name))
            else:
                seen.add(name)
        container_port = port.get("containerPort") or 0
        if not container_port:
            causes.append(field.required(f"{at}.containerPort"))
        else:
            causes.extend(_invalids(f"{at}.containerPort", container_port,
                                    names.is_valid_port_num(container_port)))
        host_port = port.get("hostPort") or 0
        if host_port:
            causes.extend(_invalids(f"{at}.hostPort", host_port,
                                    names.is_valid_port_num(host_port)))
        protocol = port.get("protocol") or ""
        if not protocol:
            causes.append(field.required(f"{at}.protocol"))
        elif protocol not in _PROTOCOLS:
            causes.append(field.not_supported(f"{at}.protocol", protocol, _PROTOCOLS))
    return causes


def _field_selector(ref: Obj, path: str, allowed: tuple[str, ...]) -> list[Cause]:
    api_version = ref.get("apiVersion") or ""
    field_path = ref.get("fieldPath") or ""
    if not api_version:
        return [field.required(f"{path}.apiVersion")]
    if not field_path:
        return [field.required(f"{path}.fieldPath")]
    if api_version != "v1":
        msg = f"error converting fieldPath: unsupported pod version: {api_version}"
        return [field.invalid(f"{path}.fieldPath", field_path, msg)]
    m = _SUBSCRIPT_RE.match(field_path)
    if m:
        key = m.group(2).lower() if m.group(1).endswith("annotations") else m.group(2)
        return metav.validate_label_name(key, path)
    if field_path not in allowed:
        return [field.not_supported(f"{path}.fieldPath", field_path, allowed)]
    return []


def _key_selector(ref: Obj, path: str) -> list[Cause]:
    name = ref.get("name") or ""
    causes = _invalids(f"{path}.name", name, names.is_dns1123_subdomain(name))
    key = ref.get("key") or ""
    if not key:
        causes.append(field.required(f"{path}.key"))
    else:
        causes.extend(_invalids(f"{path}.key", key, names.is_config_map_key(key)))
    return causes


def _env(env: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, var in enumerate(env or []):
        at = f"{path}[{i}]"
        name = var.get("name") or ""
        if not name:
            causes.append(field.required(f"{at}.name"))
        else:
            causes.extend(_invalids(f"{at}.name", name, names.is_relaxed_env_var_name(name)))
        source = var.get("valueFrom")
        if source is None:
            continue
        from_at = f"{at}.valueFrom"
        count = 0
        if source.get("fieldRef") is not None:
            count += 1
            causes.extend(_field_selector(source["fieldRef"], f"{from_at}.fieldRef",
                                          _ENV_FIELD_PATHS))
        if source.get("resourceFieldRef") is not None:
            count += 1
            resource = source["resourceFieldRef"].get("resource") or ""
            rf_at = f"{from_at}.resourceFieldRef.resource"
            if not resource:
                causes.append(field.required(rf_at))
            elif resource not in _RESOURCE_FIELD_PATHS and not resource.startswith(
                    ("limits.hugepages-", "requests.hugepages-")):
                causes.append(field.not_supported(rf_at, resource, _RESOURCE_FIELD_PATHS))
        for key in ("configMapKeyRef", "secretKeyRef"):
            if source.get(key) is not None:
                count += 1
                causes.extend(_key_selector(source[key], f"{from_at}.{key}"))
        if count == 0:
            causes.append(field.invalid(from_at, "", "must specify one of: `fieldRef`, "
                                        "`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
        elif var.get("value"):
            causes.append(field.invalid(from_at, "",
                                        "may not be specified when `value` is not empty"))
        elif count > 1:
            causes.append(field.invalid(from_at, "",
                                        "may not have more than one field specified at a time"))
    return causes


def _env_from(sources: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, src in enumerate(sources or []):
        at = f"{path}[{i}]"
        prefix = src.get("prefix") or ""
        if prefix:
            causes.extend(_invalids(f"{at}.prefix", prefix, names.is_relaxed_env_var_name(prefix)))
        count = 0
        for key in ("configMapRef", "secretRef"):
            ref = src.get(key)
            if ref is None:
                continue
            count += 1
            name = ref.get("name") or ""
            if not name:
                causes.append(field.required(f"{at}.{key}.name"))
            else:
                causes.extend(dns1123_subdomain(name, f"{at}.{key}.name"))
        if count == 0:
            causes.append(field.invalid(path, "", "must specify one of: `configMapRef` or "
                                                  "`secretRef`"))
        elif count > 1:
            causes.append(field.invalid(path, "",
                                        "may not have more than one field specified at a time"))
    return causes


def _volume_mounts(mounts: Any, devices: Any, volumes: dict[str, Obj], path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    device_names = {d.get("name") for d in devices or []}
    device_paths = {d.get("devicePath") for d in devices or []}
    for i, mnt in enumerate(mounts or []):
        at = f"{path}[{i}]"
        name = mnt.get("name") or ""
        if not name:
            causes.append(field.required(f"{at}.name"))
        if name not in volumes:
            causes.append(not_found(f"{at}.name", name))
        mount_path = mnt.get("mountPath") or ""
        if not mount_path:
            causes.append(field.required(f"{at}.mountPath"))
        if mount_path in seen:
            causes.append(field.invalid(f"{at}.mountPath", mount_path, "must be unique"))
        seen.add(mount_path)
        if name in device_names:
            causes.append(field.invalid(f"{at}.name", name,
                                        "must not already exist in volumeDevices"))
        if mount_path in device_paths:
            causes.append(field.invalid(f"{at}.mountPath", mount_path,
                                        "must not already exist as a path in volumeDevices"))
        sub_path = mnt.get("subPath") or ""
        if sub_path:
            causes.extend(local_descending_path(sub_path, f"{path}.subPath"))
        sub_expr = mnt.get("subPathExpr") or ""
        if sub_expr:
            if sub_path:
                causes.append(field.invalid(f"{at}.subPathExpr", sub_expr,
                                            "subPathExpr and subPath are mutually exclusive"))
            causes.extend(local_descending_path(sub_expr, f"{path}.subPathExpr"))
        propagation = mnt.get("mountPropagation")
        supported = ("Bidirectional", "HostToContainer", "None")
        if propagation is not None and propagation not in supported:
            causes.append(field.not_supported(f"{at}.mountPropagation", propagation, supported))
    return causes


def _handler(handler: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    count = 0
    for key in ("exec", "httpGet", "tcpSocket", "grpc", "sleep"):
        action = handler.get(key)
        if action is None:
            continue
        at = f"{path}.{key}"
        if count:
            causes.append(field.forbidden(at, "may not specify more than 1 handler type"))
            continue
        count += 1
        if key == "exec" and not action.get("command"):
            causes.append(field.required(f"{at}.command"))
        elif key == "httpGet":
            if not action.get("path"):
                causes.append(field.required(f"{at}.path"))
            causes.extend(port_num_or_name(action.get("port"), f"{at}.port"))
            scheme = action.get("scheme") or ""
            if scheme not in ("HTTP", "HTTPS"):
                causes.append(field.not_supported(f"{at}.scheme", scheme, ("HTTP", "HTTPS")))
            for j, header in enumerate(action.get("httpHeaders") or []):
                hname = header.get("name") or ""
                causes.extend(_invalids(f"{at}.httpHeaders[{j}].name", hname,
                                        names.is_http_header_name(hname)))
        elif key == "tcpSocket":
            causes.extend(port_num_or_name(action.get("port"), f"{at}.port"))
        elif key == "grpc":
            port = action.get("port") or 0
            causes.extend(_invalids(f"{at}.port", port, names.is_valid_port_num(port)))
        elif key == "sleep":
            seconds = action.get("seconds") or 0
            if seconds <= 0:
                causes.append(field.invalid(f"{at}.seconds", seconds, "must be greater than 0"))
    if count == 0:
        causes.append(field.required(path, "must specify a handler type"))
    return causes


def _probe(probe: Any, path: str, kind: str) -> list[Cause]:
    if probe is None:
        return []
    causes = _handler(probe, path)
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                "failureThreshold"):
        causes.extend(nonnegative(probe.get(key), f"{path}.{key}"))
    grace = probe.get("terminationGracePeriodSeconds")
    if kind == "readiness":
        if grace is not None:
            causes.append(field.invalid(f"{path}.terminationGracePeriodSeconds", grace,
                                        "must not be set for readinessProbes"))
    else:
        if grace is not None and grace <= 0:
            causes.append(field.invalid(f"{path}.terminationGracePeriodSeconds", grace,
                                        "must be greater than 0"))
        success = probe.get("successThreshold")
        if success is not None and success != 1:
            causes.append(field.invalid(f"{path}.successThreshold", success, "must be 1"))
    return causes


def _lifecycle(lifecycle: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(lifecycle, dict):
        return causes
    for key in ("postStart", "preStop"):
        if lifecycle.get(key) is not None:
            causes.extend(_handler(lifecycle[key], f"{path}.{key}"))
    return causes


def _security_context(sc: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(sc, dict):
        return causes
    for key in ("runAsUser", "runAsGroup"):
        if isinstance(sc.get(key), int):
            causes.extend(_invalids(f"{path}.{key}", sc[key], names.is_valid_user_id(sc[key])))
    if sc.get("privileged") and sc.get("allowPrivilegeEscalation") is False:
        causes.append(field.invalid(path, sc, "cannot set `allowPrivilegeEscalation` to false "
                                              "and `privileged` to true"))
    return causes


def _container_common(ctr: Obj, volumes: dict[str, Obj], path: str) -> list[Cause]:
    causes: list[Cause] = []
    name = ctr.get("name") or ""
    if not name:
        causes.append(field.required(f"{path}.name"))
    else:
        causes.extend(dns1123_label(name, f"{path}.name"))
    if not ctr.get("image"):
        causes.append(field.required(f"{path}.image"))
    policy = ctr.get("terminationMessagePolicy") or ""
    policy_msg = "must be 'File' or 'FallbackToLogsOnError'"
    if not policy:
        causes.append(field.required(f"{path}.terminationMessagePolicy", policy_msg))
    elif policy not in ("File", "FallbackToLogsOnError"):
        causes.append(field.invalid(f"{path}.terminationMessagePolicy", policy, policy_msg))
    causes.extend(_container_ports(ctr.get("ports"), f"{path}.ports"))
    causes.extend(_env(ctr.get("env"), f"{path}.env"))
    causes.extend(_env_from(ctr.get("envFrom"), f"{path}.envFrom"))
    causes.extend(_volume_mounts(ctr.get("volumeMounts"), ctr.get("volumeDevices"), volumes,
                                 f"{path}.volumeMounts"))
    pull = ctr.get("imagePullPolicy") or ""
    if not pull:
        causes.append(field.required(f"{path}.imagePullPolicy"))
    elif pull not in _PULL_POLICIES:
        causes.append(field.not_supported(f"{path}.imagePullPolicy", pull, _PULL_POLICIES))
    causes.extend(validate_resource_requirements(ctr.get("resources"), f"{path}.resources"))
    causes.extend(_security_context(ctr.get("securityContext"), f"{path}.securityContext"))
    return causes


def _host_port_conflicts(containers: list[Obj], path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for ci, ctr in enumerate(containers):
        for pi, port in enumerate(ctr.get("ports") or []):
            host_port = port.get("hostPort") or 0
            if not host_port:
                continue
            key = f"{port.get('protocol') or ''}/{port.get('hostIP') or ''}/{host_port}"
            if key in seen:
                causes.append(field.duplicate(f"{path}[{ci}].ports[{pi}].hostPort", key))
            seen.add(key)
    return causes


def _containers(containers: list[Obj], volumes: dict[str, Obj], path: str) -> list[Cause]:
    if not containers:
        return [field.required(path)]
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, ctr in enumerate(containers):
        at = f"{path}[{i}]"
        causes.extend(_container_common(ctr, volumes, at))
        name = ctr.get("name") or ""
        if name in seen:
            causes.append(field.duplicate(f"{at}.name", name))
        seen.add(name)
        causes.extend(_lifecycle(ctr.get("lifecycle"), f"{at}.lifecycle"))
        causes.extend(_probe(ctr.get("livenessProbe"), f"{at}.livenessProbe", "liveness"))
        causes.extend(_probe(ctr.get("readinessProbe"), f"{at}.readinessProbe", "readiness"))
        causes.extend(_probe(ctr.get("startupProbe"), f"{at}.startupProbe", "startup"))
        if ctr.get("restartPolicy") is not None:
            causes.append(field.forbidden(f"{at}.restartPolicy",
                                          "may not be set for non-init containers"))
    causes.extend(_host_port_conflicts(containers, path))
    return causes


def _init_containers(inits: list[Obj], regular: list[Obj], volumes: dict[str, Obj],
                     path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen = {c.get("name") for c in regular}
    for i, ctr in enumerate(inits):
        at = f"{path}[{i}]"
        causes.extend(_container_common(ctr, volumes, at))
        policy = ctr.get("restartPolicy")
        sidecar = policy == "Always"
        if policy is not None and not sidecar:
            causes.append(field.not_supported(f"{at}.restartPolicy", policy, ["Always"]))
        name = ctr.get("name") or ""
        if name in seen:
            causes.append(field.duplicate(f"{at}.name", name))
        elif name:
            seen.add(name)
        if sidecar:
            causes.extend(_lifecycle(ctr.get("lifecycle"), f"{at}.lifecycle"))
            causes.extend(_probe(ctr.get("livenessProbe"), f"{at}.livenessProbe", "liveness"))
            causes.extend(_probe(ctr.get("readinessProbe"), f"{at}.readinessProbe",
                                 "readiness"))
            causes.extend(_probe(ctr.get("startupProbe"), f"{at}.startupProbe", "startup"))
        else:
            for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if ctr.get(key) is not None:
                    causes.append(field.forbidden(
                        f"{at}.{key}",
                        "may not be set for init containers without restartPolicy=Always"))
    causes.extend(_host_port_conflicts(inits, path))
    return causes


# -- pod spec --------------------------------------------------------------------------------

_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
MAX_DNS_NAMESERVERS = 3
MAX_DNS_SEARCH_PATHS = 32


def _enum(value: Any, path: str, allowed: tuple[str, ...]) -> list[Cause]:
    if not value:
        return [field.required(path)]
    if value not in allowed:
        return [field.not_supported(path, value, allowed)]
    return []


def validate_tolerations(tolerations: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, tol in enumerate(tolerations or []):
        at = f"{path}[{i}]"
        key = tol.get("key") or ""
        operator = tol.get("operator") or ""
        effect = tol.get("effect") or ""
        if key:
            causes.extend(metav.validate_label_name(key, f"{at}.key"))
        elif operator != "Exists":
            causes.append(field.invalid(f"{at}.operator", operator,
                                        "operator must be Exists when `key` is empty, which "
                                        'means "match all values and all keys"'))
        if tol.get("tolerationSeconds") is not None and effect != "NoExecute":
            causes.append(field.invalid(f"{at}.effect", effect, "effect must be 'NoExecute' "
                                                                "when `tolerationSeconds` is set"))
        value = tol.get("value") or ""
        if operator in ("", "Equal"):
            msgs = names.is_valid_label_value(value)
            if msgs:
                causes.append(field.invalid(f"{at}.operator", value, ";".join(msgs)))
        elif operator == "Exists":
            if value:
                causes.append(field.invalid(f"{at}.operator", tol,
                                            "value must be empty when `operator` is 'Exists'"))
        else:
            causes.append(field.not_supported(f"{at}.operator", operator, ("Equal", "Exists")))
        if effect and effect not in _TAINT_EFFECTS:
            causes.append(field.not_supported(f"{at}.effect", effect, _TAINT_EFFECTS))
    return causes


def _dns_config(config: Any, policy: str, path: str) -> list[Cause]:
    if policy == "None" and config is None:
        return [field.required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
    if not isinstance(config, dict):
        return []
    causes: list[Cause] = []
    servers = config.get("nameservers") or []
    if len(servers) > MAX_DNS_NAMESERVERS:
        causes.append(field.invalid(f"{path}.nameservers", servers,
                                    f"must not have more than {MAX_DNS_NAMESERVERS} nameservers"))
    for i, ip in enumerate(servers):
        causes.extend(_invalids(f"{path}.nameservers[{i}]", ip, names.is_valid_ip(ip)))
    if policy == "None" and not servers:
        causes.append(field.required(f"{path}.nameservers", "must provide at least one DNS "
                                                            "nameserver when `dnsPolicy` is None"))
    searches = config.get("searches") or []
    if len(searches) > MAX_DNS_SEARCH_PATHS:
        causes.append(field.invalid(f"{path}.searches", searches,
                                    f"must not have more than {MAX_DNS_SEARCH_PATHS} search paths"))
    for i, search in enumerate(searches):
        if search == ".":
            continue
        causes.extend(dns1123_subdomain(search.removesuffix("."), f"{path}.searches[{i}]"))
    for i, option in enumerate(config.get("options") or []):
        if not option.get("name"):
            causes.append(field.required(f"{path}.options[{i}]", "Option.Name must not be empty"))
    return causes


def _topology_spread(constraints: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[tuple[str, str]] = set()
    for i, c in enumerate(constraints or []):
        at = f"{path}[{i}]"
        skew = c.get("maxSkew") or 0
        if skew <= 0:
            causes.append(field.invalid(f"{at}.maxSkew", skew, "must be greater than zero"))
        key = c.get("topologyKey") or ""
        if not key:
            causes.append(field.required(f"{at}.topologyKey", "can not be empty"))
        else:
            causes.extend(metav.validate_label_name(key, f"{at}.topologyKey"))
        when = c.get("whenUnsatisfiable") or ""
        if when not in ("DoNotSchedule", "ScheduleAnyway"):
            causes.append(field.not_supported(f"{at}.whenUnsatisfiable", when,
                                              ("DoNotSchedule", "ScheduleAnyway")))
        if (key, when) in seen:
            causes.append(field.duplicate(f"{at}.{{topologyKey, whenUnsatisfiable}}",
                                          f"{{{key}, {when}}}"))
        seen.add((key, when))
        causes.extend(metav.validate_label_selector(c.get("labelSelector"),
                                                    f"{at}.labelSelector"))
    return causes


def _affinity(affinity: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(affinity, dict):
        return causes
    for kind in ("podAffinity", "podAntiAffinity"):
        section = affinity.get(kind)
        if not isinstance(section, dict):
            continue
        at = f"{path}.{kind}"
        required_at = f"{at}.requiredDuringSchedulingIgnoredDuringExecution"
        for i, term in enumerate(section.get("requiredDuringSchedulingIgnoredDuringExecution")
                                 or []):
            causes.extend(_affinity_term(term, f"{required_at}[{i}]"))
        preferred_at = f"{at}.preferredDuringSchedulingIgnoredDuringExecution"
        for i, weighted in enumerate(
                section.get("preferredDuringSchedulingIgnoredDuringExecution") or []):
            weight = weighted.get("weight") or 0
            if weight <= 0 or weight > 100:
                causes.append(field.invalid(f"{preferred_at}[{i}].weight", weight,
                                            "must be in the range 1-100"))
            causes.extend(_affinity_term(weighted.get("podAffinityTerm") or {},
                                         f"{preferred_at}[{i}].podAffinityTerm"))
    return causes


def _affinity_term(term: Obj, path: str) -> list[Cause]:
    causes = metav.validate_label_selector(term.get("labelSelector"), f"{path}.labelSelector")
    for i, ns in enumerate(term.get("namespaces") or []):
        causes.extend(dns1123_label(ns, f"{path}.namespace[{i}]"))
    key = term.get("topologyKey") or ""
    if not key:
        causes.append(field.required(f"{path}.topologyKey", "can not be empty"))
    else:
        causes.extend(metav.validate_label_name(key, f"{path}.topologyKey"))
    return causes


def _pod_security_context(sc: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(sc, dict):
        return causes
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        if isinstance(sc.get(key), int):
            causes.extend(_invalids(f"{path}.{key}", sc[key], names.is_valid_user_id(sc[key])))
    for i, gid in enumerate(sc.get("supplementalGroups") or []):
        causes.extend(_invalids(f"{path}.supplementalGroups[{i}]", gid,
                                names.is_valid_group_id(gid)))
    return causes


def validate_pod_spec(spec: Obj, path: str) -> list[Cause]:
    """Rules of a PodSpec shared by pods and pod templates (``path`` names the spec)."""
    causes: list[Cause] = []
    volumes, vol_errs = validate_volumes(spec.get("volumes"), f"{path}.volumes")
    causes.extend(vol_errs)
    containers = list(spec.get("containers") or [])
    causes.extend(_containers(containers, volumes, f"{path}.containers"))
    causes.extend(_init_containers(list(spec.get("initContainers") or []), containers, volumes,
                                   f"{path}.initContainers"))
    causes.extend(_enum(spec.get("restartPolicy"), f"{path}.restartPolicy", _RESTART_POLICIES))
    policy = spec.get("dnsPolicy") or ""
    causes.extend(_enum(policy, f"{path}.dnsPolicy", _DNS_POLICIES))
    causes.extend(metav.validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector"))
    causes.extend(_pod_security_context(spec.get("securityContext"), f"{path}.securityContext"))
    causes.extend(_affinity(spec.get("affinity"), f"{path}.affinity"))
    causes.extend(_dns_config(spec.get("dnsConfig"), policy, f"{path}.dnsConfig"))
    for i, gate in enumerate(spec.get("readinessGates") or []):
        causes.extend(metav.validate_label_name(gate.get("conditionType") or "",
                                                f"{path}.readinessGates[{i}].conditionType"))
    causes.extend(_topology_spread(spec.get("topologySpreadConstraints"),
                                   f"{path}.topologySpreadConstraints"))
    for key in ("serviceAccountName", "nodeName", "priorityClassName"):
        value = spec.get(key) or ""
        if value:
            causes.extend(dns1123_subdomain(value, f"{path}.{key}"))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and not 1 <= deadline <= MAX_INT32:
        causes.append(field.invalid(f"{path}.activeDeadlineSeconds", deadline,
                                    names.inclusive_range_error(1, MAX_INT32)))
    for key in ("hostname", "subdomain"):
        value = spec.get(key) or ""
        if value:
            causes.extend(dns1123_label(value, f"{path}.{key}"))
    causes.extend(validate_tolerations(spec.get("tolerations"), f"{path}.tolerations"))
    for i, alias in enumerate(spec.get("hostAliases") or []):
        ip = alias.get("ip") or ""
        causes.extend(_invalids(f"{path}.hostAliases[{i}].ip", ip, names.is_valid_ip(ip)))
        for j, host in enumerate(alias.get("hostnames") or []):
            causes.extend(dns1123_subdomain(host, f"{path}.hostAliases[{i}].hostnames[{j}]"))
    os_spec = spec.get("os")
    if isinstance(os_spec, dict):
        causes.extend(_enum(os_spec.get("name"), f"{path}.os.name", ("linux", "windows")))
    gates_seen: set[str] = set()
    for i, gate in enumerate(spec.get("schedulingGates") or []):
        gate_name = gate.get("name") or ""
        causes.extend(metav.validate_label_name(gate_name, f"{path}.schedulingGates[{i}].name"))
        if gate_name in gates_seen:
            causes.append(field.duplicate(f"{path}.schedulingGates[{i}]", gate_name))
        gates_seen.add(gate_name)
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and not isinstance(grace, int):
        causes.append(field.invalid(f"{path}.terminationGracePeriodSeconds", grace,
                                    "must be an integer"))
    return causes


def validate_pod_template_spec(tmpl: Obj, path: str) -> list[Cause]:
    """A PodTemplateSpec inside a workload (``path`` is e.g. ``spec.template``)."""
    meta = tmpl.get("metadata") or {}
    causes = metav.validate_labels(meta.get("labels"), f"{path}.labels")
    causes.extend(metav.validate_annotations(meta.get("annotations"), f"{path}.annotations"))
    spec = tmpl.get("spec") or {}
    causes.extend(validate_pod_spec(spec, f"{path}.spec"))
    if spec.get("ephemeralContainers"):
        causes.append(field.forbidden(f"{path}.spec.ephemeralContainers",
                                      "ephemeral containers not allowed in pod template"))
    return causes


_UPDATABLE_POD_FIELDS = (
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
    "negative)",
)


def _changed_keys(old: Obj, new: Obj) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def validate_pod_spec_update(new: Obj, old: Obj, path: str = "spec") -> list[Cause]:
    """What a pod update may change: images, a shorter deadline, added tolerations, ..."""
    causes: list[Cause] = []
    for key in ("containers", "initContainers"):
        new_list, old_list = new.get(key) or [], old.get(key) or []
        if len(new_list) != len(old_list):
            causes.append(field.forbidden(f"{path}.{key}",
                                          "pod updates may not add or remove containers"))
            return causes
        for i, ctr in enumerate(new_list):
            if not ctr.get("image"):
                causes.append(field.required(f"{path}.{key}[{i}].image"))
    deadline = new.get("activeDeadlineSeconds")
    old_deadline = old.get("activeDeadlineSeconds")
    at = f"{path}.activeDeadlineSeconds"
    if deadline is not None:
        if not 0 <= deadline <= MAX_INT32:
            causes.append(field.invalid(at, deadline, names.inclusive_range_error(0, MAX_INT32)))
            return causes
        if old_deadline is not None and old_deadline < deadline:
            causes.append(field.invalid(at, deadline,
                                        "must be less than or equal to previous value"))
            return causes
    elif old_deadline is not None:
        causes.append(field.invalid(at, None,
                                    "must not update from a positive integer to nil value"))
    old_tolerations = old.get("tolerations") or []
    new_tolerations = new.get("tolerations") or []
    def _sans_seconds(tol: Obj) -> Obj:
        return {k: v for k, v in tol.items() if k != "tolerationSeconds"}

    kept = [_sans_seconds(t) for t in new_tolerations]
    if any(_sans_seconds(t) not in kept for t in old_tolerations):
        causes.append(field.forbidden(
            f"{path}.tolerations",
            "existing toleration can not be modified except its tolerationSeconds"))
    if new == old:
        return causes
    munged = dict(new)
    for key in ("containers", "initContainers"):
        if key in new:
            munged[key] = [{**ctr, "image": old_ctr.get("image")} for ctr, old_ctr
                           in zip(new[key], old.get(key) or [], strict=True)]
    for key in ("activeDeadlineSeconds", "tolerations", "schedulingGates"):
        munged.pop(key, None)
        if key in old:
            munged[key] = old[key]
    old_grace = old.get("terminationGracePeriodSeconds")
    if (isinstance(old_grace, int) and old_grace < 0
            and munged.get("terminationGracePeriodSeconds") == 1):
        munged["terminationGracePeriodSeconds"] = old_grace
    if munged != old:
        changed = ", ".join(f"{path}.{k}" for k in _changed_keys(old, munged))
        causes.append(field.forbidden(
            path, "pod updates may not change fields other than "
            + ",".join(_UPDATABLE_POD_FIELDS) + f"\n  changed: {changed}"))
    return causes


# -- Pod -------------------------------------------------------------------------------------

def _pod_only(spec: Obj) -> list[Cause]:
    causes: list[Cause] = []
    for key in ("containers", "initContainers"):
        for i, ctr in enumerate(spec.get(key) or []):
            image = ctr.get("image") or ""
            if image != image.strip():
                causes.append(field.invalid(f"spec.{key}[{i}].image", image,
                                            "must not have leading or trailing whitespace"))
    return causes


@on_create("", "Pod")
def validate_pod_create(pod: Obj) -> list[Cause]:
    spec = pod.get("spec") or {}
    causes = validate_pod_spec(spec, "spec")
    causes.extend(_pod_only(spec))
    if spec.get("ephemeralContainers"):
        causes.append(field.forbidden("spec.ephemeralContainers", "cannot be set on create"))
    if spec.get("nodeName") and spec.get("schedulingGates"):
        causes.append(field.forbidden("spec.nodeName",
                                      "cannot be set until all schedulingGates have been cleared"))
    return causes


@on_update("", "Pod")
def validate_pod_update(new: Obj, old: Obj) -> list[Cause]:
    spec = new.get("spec") or {}
    causes = validate_pod_spec(spec, "spec")
    causes.extend(_pod_only(spec))
    causes.extend(validate_pod_spec_update(spec, old.get("spec") or {}, "spec"))
    return causes


@on_status_update("", "Pod")
def validate_pod_status_update(new: Obj, old: Obj) -> list[Cause]:
    causes: list[Cause] = []
    status = new.get("status") or {}
    if (new.get("spec") or {}).get("nodeName") != (old.get("spec") or {}).get("nodeName"):
        causes.append(field.immutable("spec.nodeName", (new.get("spec") or {}).get("nodeName")))
    for key in ("containerStatuses", "initContainerStatuses"):
        for i, st in enumerate(status.get(key) or []):
            for count in ("restartCount",):
                causes.extend(nonnegative(st.get(count), f"status.{key}[{i}].{count}"))
    for i, entry in enumerate(status.get("podIPs") or []):
        ip = entry.get("ip") or ""
        causes.extend(_invalids(f"status.podIPs[{i}].ip", ip, names.is_valid_ip(ip)))
    return causes


# -- Namespace, Node -------------------------------------------------------------------------

@on_create("", "Namespace")
def validate_namespace(ns: Obj) -> list[Cause]:
    causes: list[Cause] = []
    for name in (ns.get("spec") or {}).get("finalizers") or []:
        causes.extend(_invalids("spec.finalizers", name, names.is_qualified_name(name)))
        if "/" not in name and name != "kubernetes":
            causes.append(field.invalid("spec.finalizers", name, "name is neither a standard "
                                                                 "finalizer name nor is it fully "
                                                                 "qualified"))
    return causes


@on_update("", "Namespace")
def validate_namespace_update(new: Obj, old: Obj) -> list[Cause]:
    return []


def _taints(taints: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(taints or []):
        at = f"{path}[{i}]"
        key = taint.get("key") or ""
        causes.extend(metav.validate_label_name(key, f"{at}.key"))
        value = taint.get("value") or ""
        msgs = names.is_valid_label_value(value)
        if msgs:
            causes.append(field.invalid(f"{at}.value", value, ";".join(msgs)))
        effect = taint.get("effect") or ""
        causes.extend(_enum(effect, f"{at}.effect", _TAINT_EFFECTS))
        if (key, effect) in seen:
            dup = field.duplicate(at, taint)
            dup["message"] += ": taints must be unique by key and effect pair"
            causes.append(dup)
        seen.add((key, effect))
    return causes


def _node_resources(node: Obj) -> list[Cause]:
    causes: list[Cause] = []
    status = node.get("status") or {}
    for section in ("capacity", "allocatable"):
        for name, value in (status.get(section) or {}).items():
            at = f"status.{section}.{name}"
            causes.extend(metav.validate_label_name(name, at))
            causes.extend(quantity_value(name, value, at))
    return causes


@on_create("", "Node")
def validate_node(node: Obj) -> list[Cause]:
    spec = node.get("spec") or {}
    causes = _taints(spec.get("taints"), "metadata.taints")
    causes.extend(_node_resources(node))
    cidrs = spec.get("podCIDRs") or []
    for i, cidr in enumerate(cidrs):
        causes.extend(_invalids(f"spec.podCIDRs[{i}]", cidr, names.is_valid_cidr(cidr)))
    if len(cidrs) > 2:
        causes.append(field.invalid("spec.podCIDRs", spec,
                                    "may specify no more than one CIDR for each IP family"))
    return causes


@on_update("", "Node")
def validate_node_update(new: Obj, old: Obj) -> list[Cause]:
    causes = validate_node(new)
    spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    seen: list[Any] = []
    for i, addr in enumerate((new.get("status") or {}).get("addresses") or []):
        if addr in seen:
            causes.append(field.duplicate(f"status.addresses[{i}]", addr))
        seen.append(addr)
    cidr_msg = 'node updates may not change podCIDR except from "" to valid'
    if old_spec.get("podCIDRs") and old_spec.get("podCIDRs") != spec.get("podCIDRs"):
        causes.append(field.forbidden("spec.podCIDRs", cidr_msg))
    if old_spec.get("providerID") and old_spec.get("providerID") != spec.get("providerID"):
        causes.append(field.forbidden("spec.providerID", 'node updates may not change '
                                                         'providerID except from "" to valid'))
    free = {"unschedulable", "taints", "configSource", "podCIDR", "podCIDRs", "providerID"}
    if {k: v for k, v in spec.items() if k not in free} != {
            k: v for k, v in old_spec.items() if k not in free}:
        causes.append(field.forbidden("", "node updates may only change labels, taints, or "
                                          "capacity (or configSource, if the "
                                          "DynamicKubeletConfig feature gate is enabled)"))
    return causes


@on_status_update("", "Node")
def validate_node_status_update(new: Obj, old: Obj) -> list[Cause]:
    return _node_resources(new)


# -- Service, Endpoints ----------------------------------------------------------------------

_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
_IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
_IP_FAMILIES = ("IPv4", "IPv6")
_TRAFFIC_POLICIES = ("Cluster", "Local")
MAX_CLIENT_IP_AFFINITY_SECONDS = 86400


def _is_headless(spec: Obj) -> bool:
    return spec.get("clusterIP") == "None"


def _service_port(port: Obj, require_name: bool, seen: set[str], path: str) -> list[Cause]:
    causes: list[Cause] = []
    name = port.get("name") or ""
    if require_name and not name:
        causes.append(field.required(f"{path}.name"))
    elif name:
        causes.extend(dns1123_label(name, f"{path}.name"))
        if name in seen:
            causes.append(field.duplicate(f"{path}.name", name))
        seen.add(name)
    number = port.get("port") or 0
    causes.extend(_invalids(f"{path}.port", number, names.is_valid_port_num(number)))
    protocol = port.get("protocol") or ""
    if not protocol:
        causes.append(field.required(f"{path}.protocol"))
    elif protocol not in _PROTOCOLS:
        causes.append(field.not_supported(f"{path}.protocol", protocol, _PROTOCOLS))
    causes.extend(port_num_or_name(port.get("targetPort"), f"{path}.targetPort"))
    return causes


def _cluster_ips(spec: Obj) -> list[Cause]:
    causes: list[Cause] = []
    cluster_ip = spec.get("clusterIP") or ""
    ips = spec.get("clusterIPs") or []
    if cluster_ip:
        if not ips:
            causes.append(field.required("spec.clusterIPs"))
        elif ips[0] != cluster_ip:
            causes.append(field.invalid("spec.clusterIPs", ips, "first value must match "
                                                                "`clusterIP`"))
    elif ips:
        causes.append(field.invalid("spec.clusterIPs", ips,
                                    "must be empty when `clusterIP` is not specified"))
    families = spec.get("ipFamilies") or []
    for i, family in enumerate(families):
        if family not in _IP_FAMILIES:
            causes.append(field.not_supported(f"spec.ipFamilies[{i}]", family, _IP_FAMILIES))
        if family in families[:i]:
            causes.append(field.duplicate(f"spec.ipFamilies[{i}]", family))
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in _IP_FAMILY_POLICIES:
        causes.append(field.not_supported("spec.ipFamilyPolicy", policy, _IP_FAMILY_POLICIES))
    bad = False
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if len(ips) > 1:
                bad = True
                causes.append(field.invalid("spec.clusterIPs", ips,
                                            "'None' must be the first and only value"))
            continue
        msgs = names.is_valid_ip(ip)
        bad = bad or bool(msgs)
        causes.extend(_invalids(f"spec.clusterIPs[{i}]", ip, msgs))
    if len(ips) > 2:
        causes.append(field.invalid("spec.clusterIPs", ips, "may only hold up to 2 values"))
    if bad:
        return causes
    if len(ips) == 2 and (":" in ips[0]) == (":" in ips[1]):
        causes.append(field.invalid("spec.clusterIPs", ips,
                                    "may specify no more than one IP for each IP family"))
    if not _is_headless(spec):
        for i, (ip, family) in enumerate(zip(ips, families, strict=False)):
            want_v6 = family == "IPv6"
            if (":" in ip) != want_v6:
                causes.append(field.invalid(
                    f"spec.clusterIPs[{i}]", ip,
                    f"expected an {family} value as indicated by `ipFamilies[{i}]`"))
    return causes


@on_create("", "Service")
def validate_service(svc: Obj) -> list[Cause]:
    spec = svc.get("spec") or {}
    causes: list[Cause] = []
    kind = spec.get("type") or ""
    ports = spec.get("ports") or []
    if not ports and not _is_headless(spec) and kind != "ExternalName":
        causes.append(field.required("spec.ports"))
    if kind == "ExternalName":
        if spec.get("clusterIPs"):
            causes.append(field.forbidden("spec.clusterIPs",
                                          "may not be set for ExternalName services"))
        if spec.get("ipFamilies"):
            causes.append(field.forbidden("spec.ipFamilies",
                                          "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy") is not None:
            causes.append(field.forbidden("spec.ipFamilyPolicy",
                                          "may not be set for ExternalName services"))
        cname = (spec.get("externalName") or "").removesuffix(".")
        if cname:
            causes.extend(dns1123_subdomain(cname, "spec.externalName"))
        else:
            causes.append(field.required("spec.externalName"))
    seen: set[str] = set()
    for i, port in enumerate(ports):
        causes.extend(_service_port(port, len(ports) > 1, seen, f"spec.ports[{i}]"))
    if spec.get("selector") is not None:
        causes.extend(metav.validate_labels(spec["selector"], "spec.selector"))
    affinity = spec.get("sessionAffinity") or ""
    if not affinity:
        causes.append(field.required("spec.sessionAffinity"))
    elif affinity not in ("ClientIP", "None"):
        causes.append(field.not_supported("spec.sessionAffinity", affinity, ("ClientIP", "None")))
    config = spec.get("sessionAffinityConfig")
    if affinity == "ClientIP":
        timeout = ((config or {}).get("clientIP") or {}).get("timeoutSeconds")
        if timeout is None or not 0 < timeout <= MAX_CLIENT_IP_AFFINITY_SECONDS:
            causes.append(field.invalid(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
                f"must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_SECONDS}"))
    elif affinity == "None" and config is not None:
        causes.append(field.invalid("spec.sessionAffinityConfig", config,
                                    "must not be set when session affinity is None"))
    if kind != "ExternalName":
        causes.extend(_cluster_ips(spec))
    for i, ip in enumerate(spec.get("externalIPs") or []):
        causes.extend(_invalids(f"spec.externalIPs[{i}]", ip, names.is_valid_ip(ip)))
    if not kind:
        causes.append(field.required("spec.type"))
    elif kind not in _SERVICE_TYPES:
        causes.append(field.not_supported("spec.type", kind, _SERVICE_TYPES))
    if kind in ("LoadBalancer", "NodePort") and _is_headless(spec):
        causes.append(field.invalid("spec.clusterIPs[0]", "None",
                                    f"may not be set to 'None' for {kind} services"))
    node_ports: set[tuple[str, int]] = set()
    pairs: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        node_port = port.get("nodePort") or 0
        protocol = port.get("protocol") or ""
        if node_port:
            if kind == "ClusterIP":
                causes.append(field.forbidden(f"spec.ports[{i}].nodePort",
                                              "may not be used when `type` is 'ClusterIP'"))
            if (protocol, node_port) in node_ports:
                causes.append(field.duplicate(f"spec.ports[{i}].nodePort", node_port))
            node_ports.add((protocol, node_port))
        key = (protocol, port.get("port") or 0)
        if key in pairs:
            causes.append(field.duplicate(f"spec.ports[{i}]",
                                          {"port": key[1], "protocol": key[0]}))
        pairs.add(key)
    external_policy = spec.get("externalTrafficPolicy") or ""
    if kind in ("LoadBalancer", "NodePort"):
        causes.extend(_enum(external_policy, "spec.externalTrafficPolicy", _TRAFFIC_POLICIES))
    elif external_policy:
        causes.append(field.invalid("spec.externalTrafficPolicy", external_policy,
                                    "may only be set for externally-accessible services"))
    internal_policy = spec.get("internalTrafficPolicy")
    if internal_policy is None:
        if kind != "ExternalName":
            causes.append(field.required("spec.internalTrafficPolicy"))
    elif internal_policy not in _TRAFFIC_POLICIES:
        causes.append(field.not_supported("spec.internalTrafficPolicy", internal_policy,
                                          _TRAFFIC_POLICIES))
    return causes


@on_update("", "Service")
def validate_service_update(new: Obj, old: Obj) -> list[Cause]:
    causes: list[Cause] = []
    spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    external = "ExternalName" in (spec.get("type"), old_spec.get("type"))
    old_ips, ips = old_spec.get("clusterIPs") or [], spec.get("clusterIPs") or []
    if not external and old_ips and (not ips or ips[0] != old_ips[0]):
        causes.append(field.invalid("spec.clusterIPs[0]", ips[0] if ips else "",
                                    "may not change once set"))
    old_families, families = old_spec.get("ipFamilies") or [], spec.get("ipFamilies") or []
    if not external and old_families and families and families[0] != old_families[0]:
        causes.append(field.invalid("spec.ipFamilies[0]", families[0],
                                    "may not change once set"))
    causes.extend(validate_service(new))
    return causes


@on_status_update("", "Service")
def validate_service_status_update(new: Obj, old: Obj) -> list[Cause]:
    causes: list[Cause] = []
    ingress = ((new.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    for i, entry in enumerate(ingress):
        ip = entry.get("ip") or ""
        if ip:
            causes.extend(_invalids(f"status.loadBalancer.ingress[{i}].ip", ip,
                                    names.is_valid_ip(ip)))
        hostname = entry.get("hostname") or ""
        if hostname:
            causes.extend(dns1123_subdomain(hostname,
                                            f"status.loadBalancer.ingress[{i}].hostname"))
    return causes


def non_special_ip(ip: str, path: str) -> list[Cause]:
    parsed = names.parse_ip(ip)
    if parsed is None:
        return []
    if parsed.is_unspecified:
        return [field.invalid(path, ip, "may not be unspecified (0.0.0.0)")]
    if parsed.is_loopback:
        return [field.invalid(path, ip, "may not be in the loopback range (127.0.0.0/8, "
                                        "::1/128)")]
    if parsed.is_link_local:
        return [field.invalid(path, ip, "may not be in the link-local range (169.254.0.0/16, "
                                        "fe80::/10)")]
    text = str(parsed)
    if text.startswith("224.0.0.") or text.startswith("ff02:"):
        return [field.invalid(path, ip, "may not be in the link-local multicast range "
                                        "(224.0.0.0/24, ff02::/10)")]
    return []


def _endpoint_address(addr: Obj, path: str) -> list[Cause]:
    ip = addr.get("ip") or ""
    causes = _invalids(f"{path}.ip", ip, names.is_valid_ip(ip))
    if addr.get("hostname"):
        causes.extend(dns1123_label(addr["hostname"], f"{path}.hostname"))
    if addr.get("nodeName"):
        causes.extend(dns1123_subdomain(addr["nodeName"], f"{path}.nodeName"))
    causes.extend(non_special_ip(ip, f"{path}.ip"))
    return causes


@on_create("", "Endpoints")
def validate_endpoints(ep: Obj) -> list[Cause]:
    causes: list[Cause] = []
    for i, subset in enumerate(ep.get("subsets") or []):
        at = f"subsets[{i}]"
        addresses = subset.get("addresses") or []
        not_ready = subset.get("notReadyAddresses") or []
        if not addresses and not not_ready:
            causes.append(field.required(at, "must specify `addresses` or `notReadyAddresses`"))
        for j, addr in enumerate(addresses):
            causes.extend(_endpoint_address(addr, f"{at}.addresses[{j}]"))
        for j, addr in enumerate(not_ready):
            causes.extend(_endpoint_address(addr, f"{at}.notReadyAddresses[{j}]"))
        ports = subset.get("ports") or []
        for j, port in enumerate(ports):
            port_at = f"{at}.ports[{j}]"
            name = port.get("name") or ""
            if len(ports) > 1 and not name:
                causes.append(field.required(f"{port_at}.name"))
            elif name:
                causes.extend(dns1123_label(name, f"{port_at}.name"))
            number = port.get("port") or 0
            causes.extend(_invalids(f"{port_at}.port", number, names.is_valid_port_num(number)))
            causes.extend(_enum(port.get("protocol"), f"{port_at}.protocol", _PROTOCOLS))
    return causes


# -- ConfigMap, Secret, ServiceAccount, Event ------------------------------------------------

MAX_SECRET_SIZE = 1024 * 1024
_IMMUTABLE_MSG = "field is immutable when `immutable` is set"


def _decoded_len(value: Any, path: str, causes: list[Cause]) -> int:
    if not isinstance(value, str):
        causes.append(field.invalid(path, "<secret contents redacted>", "must be a base64 string"))
        return 0
    try:
        return len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        bad = next((i for i, ch in enumerate(value)
                    if not (ch.isalnum() or ch in "+/=")), len(value))
        causes.append(field.invalid(path, "<secret contents redacted>",
                                    f"illegal base64 data at input byte {bad}"))
        return 0


@on_create("", "ConfigMap")
def validate_config_map(cm: Obj) -> list[Cause]:
    causes: list[Cause] = []
    data = cm.get("data") or {}
    binary = cm.get("binaryData") or {}
    total = 0
    for key, value in data.items():
        causes.extend(_invalids(f"data[{key}]", key, names.is_config_map_key(key)))
        if key in binary:
            causes.append(field.invalid(f"data[{key}]", key,
                                        "duplicate of key present in binaryData"))
        total += len(str(value).encode())
    for key, value in binary.items():
        causes.extend(_invalids(f"binaryData[{key}]", key, names.is_config_map_key(key)))
        total += _decoded_len(value, f"binaryData[{key}]", causes)
    if total > MAX_SECRET_SIZE:
        causes.append(field.too_long("", MAX_SECRET_SIZE))
    return causes


def _immutable_data(new: Obj, old: Obj, keys: tuple[str, ...]) -> list[Cause]:
    causes: list[Cause] = []
    if not old.get("immutable"):
        return causes
    if not new.get("immutable"):
        causes.append(field.forbidden("immutable", _IMMUTABLE_MSG))
    for key in keys:
        if (new.get(key) or {}) != (old.get(key) or {}):
            causes.append(field.forbidden(key, _IMMUTABLE_MSG))
    return causes


@on_update("", "ConfigMap")
def validate_config_map_update(new: Obj, old: Obj) -> list[Cause]:
    causes = _immutable_data(new, old, ("data", "binaryData"))
    causes.extend(validate_config_map(new))
    return causes


_SA_NAME_KEY = "kubernetes.io/service-account.name"


@on_create("", "Secret")
def validate_secret(secret: Obj) -> list[Cause]:
    causes: list[Cause] = []
    data = secret.get("data") or {}
    total = 0
    for key, value in data.items():
        causes.extend(_invalids(f"data[{key}]", key, names.is_config_map_key(key)))
        total += _decoded_len(value, f"data[{key}]", causes)
    if total > MAX_SECRET_SIZE:
        causes.append(field.too_long("data", MAX_SECRET_SIZE))
    kind = secret.get("type") or ""
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    if kind == "kubernetes.io/service-account-token":
        if not annotations.get(_SA_NAME_KEY):
            causes.append(field.required(f"metadata.annotations[{_SA_NAME_KEY}]"))
    elif kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        key = ".dockercfg" if kind.endswith("dockercfg") else ".dockerconfigjson"
        if key not in data:
            causes.append(field.required(f"data[{key}]"))
        else:
            causes.extend(_json_object(data[key], f"data[{key}]"))
    elif kind == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            causes.append(field.required("data[username]"))
            causes.append(field.required("data[password]"))
    elif kind == "kubernetes.io/ssh-auth":
        if not data.get("ssh-privatekey"):
            causes.append(field.required("data[ssh-privatekey]"))
    elif kind == "kubernetes.io/tls":
        for key in ("tls.crt", "tls.key"):
            if key not in data:
                causes.append(field.required(f"data[{key}]"))
    return causes


def _json_object(value: Any, path: str) -> list[Cause]:
    try:
        parsed = orjson.loads(base64.b64decode(value or ""))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        return [field.invalid(path, "<secret contents redacted>", str(exc))]
    if not isinstance(parsed, dict):
        return [field.invalid(path, "<secret contents redacted>",
                              "json: cannot unmarshal into Go value of type "
                              "map[string]interface {}")]
    return []


@on_update("", "Secret")
def validate_secret_update(new: Obj, old: Obj) -> list[Cause]:
    causes: list[Cause] = []
    if (new.get("type") or "") != (old.get("type") or ""):
        causes.append(field.immutable("type", new.get("type") or ""))
    causes.extend(_immutable_data(new, old, ("data",)))
    causes.extend(validate_secret(new))
    return causes


@on_create("", "ServiceAccount")
def validate_service_account(sa: Obj) -> list[Cause]:
    causes: list[Cause] = []
    for i, ref in enumerate(sa.get("imagePullSecrets") or []):
        name = ref.get("name") or ""
        if name:
            causes.extend(dns1123_subdomain(name, f"imagePullSecrets[{i}].name"))
    return causes


@on_create("", "Event")
def validate_event(ev: Obj) -> list[Cause]:
    causes: list[Cause] = []
    namespace = (ev.get("metadata") or {}).get("namespace") or ""
    involved = ev.get("involvedObject") or {}
    involved_ns = involved.get("namespace") or ""
    if involved_ns:
        mismatch = namespace != involved_ns
    else:
        mismatch = namespace not in ("", "default")
    if mismatch:
        causes.append(field.invalid("involvedObject.namespace", involved_ns,
                                    "does not match event.namespace"))
    if ev.get("eventTime"):
        controller = ev.get("reportingComponent") or ""
        if not controller:
            causes.append(field.required("reportingComponent"))
        causes.extend(_invalids("reportingComponent", controller,
                                names.is_qualified_name(controller)))
        for key in ("reportingInstance", "action", "reason", "type"):
            if not ev.get(key):
                causes.append(field.required(key))
    kind = ev.get("type") or ""
    if kind and kind not in ("Normal", "Warning") and ev.get("eventTime"):
        causes.append(field.invalid("type", kind, "has invalid value: " + kind))
    return causes


# -- ReplicationController -------------------------------------------------------------------

@on_create("", "ReplicationController")
def validate_replication_controller(rc: Obj) -> list[Cause]:
    spec = rc.get("spec") or {}
    causes = nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    selector = spec.get("selector") or {}
    if not selector:
        causes.append(field.required("spec.selector"))
    else:
        causes.extend(metav.validate_labels(selector, "spec.selector"))
    causes.extend(nonnegative(spec.get("replicas"), "spec.replicas"))
    tmpl = spec.get("template")
    if tmpl is None:
        causes.append(field.required("spec.template"))
        return causes
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    if selector and not metav.validate_label_selector_matches(selector, labels):
        causes.append(field.invalid("spec.template.metadata.labels", labels,
                                    "`selector` does not match template `labels`"))
    causes.extend(validate_pod_template_spec(tmpl, "spec.template"))
    tspec = tmpl.get("spec") or {}
    if tspec.get("restartPolicy") != "Always":
        causes.append(field.not_supported("spec.template.spec.restartPolicy",
                                          tspec.get("restartPolicy") or "", ["Always"]))
    if tspec.get("activeDeadlineSeconds") is not None:
        causes.append(field.forbidden("spec.template.spec.activeDeadlineSeconds",
                                      "activeDeadlineSeconds in ReplicationController is not "
                                      "Supported"))
    return causes


@on_status_update("", "ReplicationController")
def validate_replication_controller_status(new: Obj, old: Obj) -> list[Cause]:
    status = new.get("status") or {}
    causes: list[Cause] = []
    for key in ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas",
                "observedGeneration"):
        causes.extend(nonnegative(status.get(key), f"status.{key}"))
    replicas = status.get("replicas") or 0
    ready = status.get("readyReplicas") or 0
    for key in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
        value = status.get(key) or 0
        if value > replicas:
            causes.append(field.invalid(f"status.{key}", value,
                                        "cannot be greater than status.replicas"))
    available = status.get("availableReplicas") or 0
    if available > ready:
        causes.append(field.invalid("status.availableReplicas", available,
                                    "cannot be greater than readyReplicas"))
    return causes


# -- PersistentVolume, PersistentVolumeClaim -------------------------------------------------

_ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
_VOLUME_MODES = ("Block", "Filesystem")
_RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
_PV_SOURCES = (
    "gcePersistentDisk", "awsElasticBlockStore", "hostPath", "glusterfs", "nfs", "rbd",
    "iscsi", "cinder", "cephfs", "fc", "flocker", "flexVolume", "azureFile", "vsphereVolume",
    "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume", "scaleIO", "local",
    "storageos", "csi",
)


def _access_modes(modes: list[str], path: str, required_detail: str) -> list[Cause]:
    causes: list[Cause] = []
    if not modes:
        causes.append(field.required(path, required_detail))
    for mode in modes:
        if mode not in _ACCESS_MODES:
            causes.append(field.not_supported(path, mode, _ACCESS_MODES))
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        causes.append(field.forbidden(path, "may not use ReadWriteOncePod with other access "
                                            "modes"))
    return causes


def _positive_quantity(value: Any, path: str) -> list[Cause]:
    number = parse_quantity(value)
    if number is None:
        return [field.invalid(path, value, _QUANTITY_MSG)]
    if number <= 0:
        return [field.invalid(path, value, "must be greater than zero")]
    return []


@on_create("", "PersistentVolume")
def validate_persistent_volume(pv: Obj) -> list[Cause]:
    spec = pv.get("spec") or {}
    causes = _access_modes(spec.get("accessModes") or [], "spec.accessModes", "")
    capacity = spec.get("capacity") or {}
    if not capacity:
        causes.append(field.required("spec.capacity"))
    if "storage" not in capacity or len(capacity) > 1:
        causes.append(field.not_supported("spec.capacity", capacity, ["storage"]))
    for name, value in capacity.items():
        causes.extend(_positive_quantity(value, f"spec.capacity[{name}]"))
    if spec.get("storageClassName"):
        causes.extend(dns1123_subdomain(spec["storageClassName"], "spec.storageClassName"))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in _VOLUME_MODES:
        causes.append(field.not_supported("spec.volumeMode", mode, _VOLUME_MODES))
    policy = spec.get("persistentVolumeReclaimPolicy") or ""
    if policy and policy not in _RECLAIM_POLICIES:
        causes.append(field.not_supported("spec.persistentVolumeReclaimPolicy", policy,
                                          _RECLAIM_POLICIES))
    present = [key for key in _PV_SOURCES if spec.get(key) is not None]
    if not present:
        causes.append(field.required("spec", "must specify a volume type"))
    for key in present[1:]:
        causes.append(field.forbidden(f"spec.{key}", "may not specify more than 1 volume type"))
    host = spec.get("hostPath")
    if isinstance(host, dict):
        if not host.get("path"):
            causes.append(field.required("spec.hostPath.path"))
        else:
            causes.extend(_no_backsteps(host["path"], "spec.hostPath.path"))
        if host.get("type") not in (None, *_HOST_PATH_TYPES):
            causes.append(field.not_supported("spec.hostPath.type", host["type"],
                                              _HOST_PATH_TYPES))
    local = spec.get("local")
    if isinstance(local, dict):
        if not local.get("path"):
            causes.append(field.required("spec.local.path"))
        if spec.get("nodeAffinity") is None:
            causes.append(field.required("spec.nodeAffinity", "Local volume requires node "
                                                              "affinity"))
    nfs = spec.get("nfs")
    if isinstance(nfs, dict):
        if not nfs.get("server"):
            causes.append(field.required("spec.nfs.server"))
        if not nfs.get("path"):
            causes.append(field.required("spec.nfs.path"))
        elif not nfs["path"].startswith("/"):
            causes.append(field.invalid("spec.nfs.path", nfs["path"], "must be an absolute path"))
    csi = spec.get("csi")
    if isinstance(csi, dict):
        if not csi.get("driver"):
            causes.append(field.required("spec.csi.driver"))
        if not csi.get("volumeHandle"):
            causes.append(field.required("spec.csi.volumeHandle"))
    return causes


@on_update("", "PersistentVolume")
def validate_persistent_volume_update(new: Obj, old: Obj) -> list[Cause]:
    causes = validate_persistent_volume(new)
    spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    changed = [k for k in _PV_SOURCES if spec.get(k) != old_spec.get(k)]
    if changed:
        causes.append(field.forbidden("spec.persistentvolumesource",
                                      "spec.persistentvolumesource is immutable after creation"
                                      f"\n  changed: {', '.join(changed)}"))
    if spec.get("volumeMode") != old_spec.get("volumeMode"):
        causes.append(field.immutable("volumeMode", spec.get("volumeMode")))
    if old_spec.get("nodeAffinity") is not None and \
            spec.get("nodeAffinity") != old_spec["nodeAffinity"]:
        causes.append(field.immutable("nodeAffinity", spec.get("nodeAffinity")))
    return causes


_PV_PHASES = ("Available", "Bound", "Failed", "Pending", "Released")
_PVC_PHASES = ("Bound", "Lost", "Pending")


@on_status_update("", "PersistentVolume")
def validate_persistent_volume_status(new: Obj, old: Obj) -> list[Cause]:
    phase = (new.get("status") or {}).get("phase")
    if phase and phase not in _PV_PHASES:
        return [field.not_supported("status.phase", phase, _PV_PHASES)]
    return []


def validate_pvc_spec(spec: Obj, path: str) -> list[Cause]:
    """A PersistentVolumeClaimSpec (also inside StatefulSet claim templates)."""
    causes = _access_modes(spec.get("accessModes") or [], f"{path}.accessModes",
                           "at least 1 access mode is required")
    if spec.get("selector") is not None:
        causes.extend(metav.validate_label_selector(spec["selector"], f"{path}.selector"))
    requests = (spec.get("resources") or {}).get("requests") or {}
    if "storage" not in requests:
        causes.append(field.required(f"{path}.resources[storage]"))
    else:
        errs = _positive_quantity(requests["storage"], f"{path}.resources[storage]")
        causes.extend(errs or quantity_value("storage", requests["storage"],
                                             f"{path}.resources[storage]"))
    if spec.get("storageClassName"):
        causes.extend(dns1123_subdomain(spec["storageClassName"], f"{path}.storageClassName"))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in _VOLUME_MODES:
        causes.append(field.not_supported(f"{path}.volumeMode", mode, _VOLUME_MODES))
    return causes


@on_create("", "PersistentVolumeClaim")
def validate_persistent_volume_claim(pvc: Obj) -> list[Cause]:
    return validate_pvc_spec(pvc.get("spec") or {}, "spec")


@on_update("", "PersistentVolumeClaim")
def validate_persistent_volume_claim_update(new: Obj, old: Obj) -> list[Cause]:
    causes = validate_persistent_volume_claim(new)
    spec, old_spec = dict(new.get("spec") or {}), dict(old.get("spec") or {})
    if not old_spec.get("volumeName"):
        old_spec["volumeName"] = spec.get("volumeName")
    new_size = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    old_size = ((old_spec.get("resources") or {}).get("requests") or {}).get("storage")
    bound = (new.get("status") or {}).get("phase") == "Bound"
    for s in (spec, old_spec):
        s.pop("volumeAttributesClassName", None)
        if bound:
            resources = dict(s.get("resources") or {})
            resources["requests"] = {k: v for k, v in (resources.get("requests") or {}).items()
                                     if k != "storage"}
            s["resources"] = resources
    if {k: v for k, v in spec.items() if v is not None} != {
            k: v for k, v in old_spec.items() if v is not None}:
        causes.append(field.forbidden(
            "spec", "spec is immutable after creation except resources.requests and "
                    "volumeAttributesClassName for bound claims"))
    new_q, old_q = parse_quantity(new_size), parse_quantity(old_size)
    if new_q is not None and old_q is not None and new_q < old_q:
        causes.append(field.forbidden("spec.resources.requests.storage",
                                      "field can not be less than previous value"))
    if spec.get("volumeMode") != old_spec.get("volumeMode"):
        causes.append(field.immutable("volumeMode", spec.get("volumeMode")))
    return causes


@on_status_update("", "PersistentVolumeClaim")
def validate_persistent_volume_claim_status(new: Obj, old: Obj) -> list[Cause]:
    status = new.get("status") or {}
    causes = _access_modes(status.get("accessModes") or [], "status.accessModes", "") \
        if status.get("accessModes") else []
    phase = status.get("phase")
    if phase and phase not in _PVC_PHASES:
        causes.append(field.not_supported("status.phase", phase, _PVC_PHASES))
    for name, value in (status.get("capacity") or {}).items():
        causes.extend(quantity_value(name, value, f"status.capacity[{name}]"))
    return causes


# -- ResourceQuota, LimitRange ---------------------------------------------------------------

_QUOTA_SCOPES = ("BestEffort", "CrossNamespacePodAffinity", "NotBestEffort", "NotTerminating",
                 "PriorityClass", "Terminating")
_LIMIT_TYPES = ("Container", "Pod", "PersistentVolumeClaim")


def _quota_resource_name(name: str, path: str) -> list[Cause]:
    causes = metav.validate_label_name(name, path)
    standard = name in _STANDARD_RESOURCES or name.startswith(
        ("requests.hugepages-", "count/"))
    if "/" not in name and not standard:
        causes.append(field.invalid(path, name, "must be a standard resource for quota"))
    return causes


def _quota_list(res: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for name, value in (res or {}).items():
        at = f"{path}[{name}]"
        causes.extend(_quota_resource_name(name, at))
        causes.extend(quantity_value(name, value, at))
    return causes


@on_create("", "ResourceQuota")
def validate_resource_quota(rq: Obj) -> list[Cause]:
    spec = rq.get("spec") or {}
    causes = _quota_list(spec.get("hard"), "spec.hard")
    for scope in spec.get("scopes") or []:
        if scope not in _QUOTA_SCOPES:
            causes.append(field.invalid("spec.scopes", scope, "unsupported scope"))
    scopes = set(spec.get("scopes") or [])
    if {"BestEffort", "NotBestEffort"} <= scopes or {"Terminating", "NotTerminating"} <= scopes:
        causes.append(field.invalid("spec.scopes", spec.get("scopes"),
                                    "conflicting scopes"))
    status = rq.get("status") or {}
    causes.extend(_quota_list(status.get("hard"), "status.hard"))
    causes.extend(_quota_list(status.get("used"), "status.used"))
    return causes


@on_update("", "ResourceQuota")
def validate_resource_quota_update(new: Obj, old: Obj) -> list[Cause]:
    causes = validate_resource_quota(new)
    scopes = (new.get("spec") or {}).get("scopes") or []
    if sorted(scopes) != sorted((old.get("spec") or {}).get("scopes") or []):
        causes.append(field.immutable("spec.scopes", scopes))
    return causes


@on_status_update("", "ResourceQuota")
def validate_resource_quota_status(new: Obj, old: Obj) -> list[Cause]:
    status = new.get("status") or {}
    causes = _quota_list(status.get("hard"), "status.hard")
    causes.extend(_quota_list(status.get("used"), "status.used"))
    return causes


def _limit_range_item(item: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    kind = item.get("type") or ""
    causes.extend(metav.validate_label_name(kind, f"{path}.type"))
    if "/" not in kind and kind not in _LIMIT_TYPES:
        causes.append(field.invalid(f"{path}.type", kind,
                                    "must be a standard limit type or fully qualified"))
    sections = {key: dict(item.get(key) or {}) for key in
                ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")}
    for key, values in sections.items():
        for name, value in values.items():
            at = f"{path}.{key}[{name}]"
            causes.extend(metav.validate_label_name(name, at))
            causes.extend(quantity_value(name, value, at))
    if kind == "Pod":
        for key in ("default", "defaultRequest"):
            if sections[key]:
                causes.append(field.forbidden(f"{path}.{key}",
                                              "may not be specified when `type` is 'Pod'"))
    if kind == "PersistentVolumeClaim" and "storage" not in sections["min"] \
            and "storage" not in sections["max"]:
        causes.append(field.required(f"{path}.limits", "either minimum or maximum storage value "
                                                       "is required, but neither was provided"))
    keys: set[str] = set()
    for values in sections.values():
        keys.update(values)
    for name in sorted(keys):
        q = {key: parse_quantity(values[name]) for key, values in sections.items()
             if name in values}
        raw = {key: values[name] for key, values in sections.items() if name in values}
        lo, hi, dflt, req = q.get("min"), q.get("max"), q.get("default"), q.get("defaultRequest")
        ratio = q.get("maxLimitRequestRatio")
        if lo is not None and hi is not None and lo > hi:
            causes.append(field.invalid(f"{path}.min[{name}]", raw["min"],
                                        f"min value {raw['min']} is greater than max value "
                                        f"{raw['max']}"))
        if req is not None and lo is not None and lo > req:
            causes.append(field.invalid(f"{path}.defaultRequest[{name}]", raw["defaultRequest"],
                                        f"min value {raw['min']} is greater than default "
                                        f"request value {raw['defaultRequest']}"))
        if req is not None and hi is not None and req > hi:
            causes.append(field.invalid(f"{path}.defaultRequest[{name}]", raw["defaultRequest"],
                                        f"default request value {raw['defaultRequest']} is "
                                        f"greater than max value {raw['max']}"))
        if req is not None and dflt is not None and req > dflt:
            causes.append(field.invalid(f"{path}.defaultRequest[{name}]", raw["defaultRequest"],
                                        f"default request value {raw['defaultRequest']} is "
                                        f"greater than default limit value {raw['default']}"))
        if dflt is not None and lo is not None and lo > dflt:
            causes.append(field.invalid(f"{path}.default[{name}]", raw["min"],
                                        f"min value {raw['min']} is greater than default "
                                        f"value {raw['default']}"))
        if dflt is not None and hi is not None and dflt > hi:
            causes.append(field.invalid(f"{path}.default[{name}]", raw["max"],
                                        f"default value {raw['default']} is greater than max "
                                        f"value {raw['max']}"))
        if ratio is not None and ratio < 1:
            causes.append(field.invalid(f"{path}.maxLimitRequestRatio[{name}]",
                                        raw["maxLimitRequestRatio"],
                                        f"ratio {raw['maxLimitRequestRatio']} is less than 1"))
    return causes


@on_create("", "LimitRange")
def validate_limit_range(lr: Obj) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, item in enumerate((lr.get("spec") or {}).get("limits") or []):
        at = f"spec.limits[{i}]"
        causes.extend(_limit_range_item(item, at))
        kind = item.get("type") or ""
        if kind in seen:
            causes.append(field.duplicate(f"{at}.type", kind))
        seen.add(kind)
    return causes
