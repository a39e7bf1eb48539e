"""A container's environment and argv, computed as the kubelet computes them.

Kubernetes builds the environment in two passes: every ``envFrom`` source
first (later sources override earlier ones), then ``env`` in order, where a
plain ``value`` may refer to what came before with ``$(VAR)`` and a
``valueFrom`` reads a ConfigMap or Secret key, a pod field or a resource
figure. ``command`` and ``args`` are expanded against the result. A missing
ConfigMap or Secret stops the container from being created
(``CreateContainerConfigError``) unless the reference is optional.

Service variables (``<SVC>_SERVICE_HOST``...) arrive with Services: callers
pass them as ``service_env``; they take part in expansion and are appended
after the container's own variables, which win on a clash.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping

from kubeling.client.interface import Obj
from kubeling.kubelet.context import ObjectSource
from kubeling.kubelet.downward import format_map, resource_field

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


class EnvError(Exception):
    """The container's environment cannot be built; its waiting reason is ``reason``."""

    reason = "CreateContainerConfigError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: ``$$`` is a literal ``$``; a reference to an
    unknown variable, an unclosed ``$(`` and a ``$`` before anything else stay as written."""
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:
                out.append("$(")
                i += 2
            else:
                name = text[i + 2:close]
                out.append(env[name] if name in env else f"$({name})")
                i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def argv(container: Obj, env: Mapping[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The container's command and args, ``$(VAR)``-expanded, kept apart: the runtime merges
    them with its image's entrypoint and cmd."""
    command = tuple(expand(c, env) for c in container.get("command") or ())
    args = tuple(expand(a, env) for a in container.get("args") or ())
    return command, args


def is_env_var_name(name: str) -> bool:
    return bool(_ENV_NAME.match(name))


def _optional(ref: Obj) -> bool:
    return bool(ref.get("optional"))


class _Lookups:
    """ConfigMaps and Secrets read once per container, as the kubelet caches them."""

    def __init__(self, namespace: str, objects: ObjectSource) -> None:
        self.namespace = namespace
        self.objects = objects
        self._configmaps: dict[str, Obj | None] = {}
        self._secrets: dict[str, Obj | None] = {}

    def configmap(self, name: str) -> Obj | None:
        if name not in self._configmaps:
            self._configmaps[name] = self.objects.configmap(self.namespace, name)
        return self._configmaps[name]

    def secret(self, name: str) -> Obj | None:
        if name not in self._secrets:
            self._secrets[name] = self.objects.secret(self.namespace, name)
        return self._secrets[name]


def configmap_values(cm: Obj) -> dict[str, str]:
    return dict(cm.get("data") or {})


def secret_values(secret: Obj) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, encoded in (secret.get("data") or {}).items():
        try:
            raw = base64.b64decode(encoded or "", validate=True)
        except (binascii.Error, ValueError):
            raw = (encoded or "").encode()
        values[key] = raw.decode("utf-8", errors="replace")
    for key, text in (secret.get("stringData") or {}).items():
        values.setdefault(key, text)
    return values


def make_env(pod: Obj, container: Obj, *, objects: ObjectSource, node_name: str,
             host_ip: str, pod_ip: str, pod_ips: list[str],
             host_ips: list[str] | None = None,
             service_env: Mapping[str, str] | None = None,
             invalid: list[str] | None = None) -> list[tuple[str, str]]:
    """The container's environment in Kubernetes' order and precedence. Raises EnvError.

    ``invalid`` (when given) receives one message per envFrom source whose keys were
    skipped as invalid variable names, worded for an ``InvalidEnvironmentVariableNames``
    Warning event."""
    meta = pod.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    lookups = _Lookups(namespace, objects)
    services = dict(service_env or {})
    env: dict[str, str] = {}

    for source in container.get("envFrom") or ():
        prefix = source.get("prefix") or ""
        if source.get("configMapRef") is not None:
            ref, kind, label = source["configMapRef"], "configmap", "configMap"
            obj = lookups.configmap(ref.get("name", ""))
            values = configmap_values(obj) if obj is not None else None
        elif source.get("secretRef") is not None:
            ref, kind, label = source["secretRef"], "secret", "secret"
            obj = lookups.secret(ref.get("name", ""))
            values = secret_values(obj) if obj is not None else None
        else:
            continue
        name = ref.get("name", "")
        if values is None:
            if _optional(ref):
                continue
            raise EnvError(f'{kind} "{name}" not found')
        bad: list[str] = []
        for key, value in values.items():
            full = prefix + key
            if not is_env_var_name(full):
                bad.append(full)
                continue
            env[full] = value
        if bad and invalid is not None:
            invalid.append(f"Keys [{', '.join(sorted(bad))}] from the EnvFrom {label} "
                           f"{namespace}/{name} were skipped since they are considered "
                           "invalid environment variable names.")

    for var in container.get("env") or ():
        name = var.get("name", "")
        value = var.get("value") or ""
        source = var.get("valueFrom")
        if value:
            value = expand(value, {**services, **env})
        elif source:
            resolved = _value_from(source, pod, container, lookups, node_name=node_name,
                                   host_ip=host_ip, host_ips=host_ips, pod_ip=pod_ip,
                                   pod_ips=pod_ips, objects=objects)
            if resolved is None:
                continue
            value = resolved
        env[name] = value

    result = list(env.items())
    result.extend((k, v) for k, v in services.items() if k not in env)
    return result


def _value_from(source: Obj, pod: Obj, container: Obj, lookups: _Lookups, *,
                node_name: str, host_ip: str, host_ips: list[str] | None, pod_ip: str,
                pod_ips: list[str], objects: ObjectSource) -> str | None:
    """The value of one ``valueFrom``; None to leave the variable out (optional, absent)."""
    namespace = lookups.namespace
    if source.get("fieldRef") is not None:
        return field_value(source["fieldRef"].get("fieldPath", ""), pod, node_name=node_name,
                           host_ip=host_ip, host_ips=host_ips, pod_ip=pod_ip, pod_ips=pod_ips)
    if source.get("resourceFieldRef") is not None:
        return resource_value(source["resourceFieldRef"], pod, container,
                              allocatable=_allocatable(objects))
    for field, lookup, values, kind in (
            ("configMapKeyRef", lookups.configmap, configmap_values, "ConfigMap"),
            ("secretKeyRef", lookups.secret, secret_values, "Secret")):
        ref = source.get(field)
        if ref is not None:
            return _key_value(ref, lookup, values, kind, namespace)
    return ""


def _key_value(ref: Obj, lookup: Callable[[str], Obj | None],
               values: Callable[[Obj], dict[str, str]], kind: str, namespace: str) -> str | None:
    """One key of a ConfigMap or Secret (``configMapKeyRef``/``secretKeyRef``); None when an
    optional reference finds nothing."""
    name, key = ref.get("name", ""), ref.get("key", "")
    obj = lookup(name)
    if obj is None:
        if _optional(ref):
            return None
        raise EnvError(f'{kind.lower()} "{name}" not found')
    data = values(obj)
    if key not in data:
        if _optional(ref):
            return None
        raise EnvError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return data[key]


def field_value(path: str, pod: Obj, *, node_name: str, host_ip: str,
                host_ips: list[str] | None, pod_ip: str, pod_ips: list[str]) -> str:
    """A pod field as the downward API gives it (env vars and downwardAPI volumes)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    ips = list(pod_ips) or ([pod_ip] if pod_ip else [])
    match path:
        case "metadata.name":
            return str(meta.get("name", ""))
        case "metadata.namespace":
            return str(meta.get("namespace", ""))
        case "metadata.uid":
            return str(meta.get("uid", ""))
        case "metadata.labels" | "metadata.annotations":
            items = meta.get(path.split(".")[1]) or {}
            return format_map(dict(items))
        case "spec.nodeName":
            return str(spec.get("nodeName") or node_name)
        case "spec.serviceAccountName":
            return str(spec.get("serviceAccountName", ""))
        case "status.hostIP":
            return (host_ips or [host_ip])[0]
        case "status.hostIPs":
            return ",".join(host_ips or [host_ip])
        case "status.podIP":
            return ips[0] if ips else ""
        case "status.podIPs":
            return ",".join(ips)
    sub = _SUBSCRIPT.match(path)
    if sub:
        return str((meta.get(sub.group(1)) or {}).get(sub.group(2), ""))
    raise EnvError(f"unsupported fieldPath: {path}")


def _allocatable(objects: ObjectSource) -> Mapping[str, str]:
    node = objects.node()
    if node is None:
        return {}
    return ((node.get("status") or {}).get("allocatable") or {})


def resource_value(ref: Obj, pod: Obj, container: Obj, *,
                   allocatable: Mapping[str, str]) -> str:
    """``resourceFieldRef``: a request or limit divided by ``divisor`` and rounded up; an
    unset limit is the node's allocatable amount, as the kubelet defaults it."""
    target = container
    other = ref.get("containerName")
    if other and other != container.get("name"):
        spec = pod.get("spec") or {}
        found = [c for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                 if c.get("name") == other]
        if not found:
            raise EnvError(f"container {other} not found")
        target = found[0]
    node = {"status": {"allocatable": dict(allocatable)}}
    try:
        return resource_field(pod, ref, node, container=target)
    except ValueError as err:
        raise EnvError(str(err)) from None
