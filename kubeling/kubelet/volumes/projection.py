"""The files a configMap, secret, downwardAPI or projected volume holds, as payloads.

Each function turns a volume source and the objects it names into the payload
the atomic writer publishes (relative path → bytes and mode), or raises
``VolumeError`` worded like the kubelet's ``MountVolume.SetUp`` failures. They
read only what they are given, so the background refresh can call them as often
as it likes and the atomic writer decides whether anything changed.
"""

from __future__ import annotations

import base64
import binascii

from kubeling.client.interface import Obj
from kubeling.kubelet.atomicwriter import FileProjection
from kubeling.kubelet.context import ObjectSource
from kubeling.kubelet.downward import pod_field, resource_field
from kubeling.kubelet.interfaces import VolumeError

DEFAULT_MODE = 0o644
Payload = dict[str, FileProjection]


def _mode(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _items(source: Obj, data: dict[str, bytes], *, default_mode: int, optional: bool,
           missing_key: str) -> Payload:
    payload: Payload = {}
    items = source.get("items") or []
    if not items:
        for key, value in data.items():
            payload[key] = FileProjection(value, default_mode)
        return payload
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if optional:
                continue
            raise VolumeError(f"{missing_key}: {key}")
        payload[item.get("path") or key] = FileProjection(
            data[key], _mode(item.get("mode"), default_mode))
    return payload


def configmap_data(cm: Obj) -> dict[str, bytes]:
    data = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    for key, value in (cm.get("binaryData") or {}).items():
        data[key] = _b64(value)
    return data


def secret_data(secret: Obj) -> dict[str, bytes]:
    data = {k: _b64(v) for k, v in (secret.get("data") or {}).items()}
    for key, value in (secret.get("stringData") or {}).items():
        data[key] = str(value).encode()
    return data


def _b64(value: object) -> bytes:
    try:
        return base64.b64decode(str(value or ""), validate=True)
    except (binascii.Error, ValueError):
        return str(value or "").encode()


def configmap_payload(source: Obj, namespace: str, objects: ObjectSource, *,
                      default_mode: int | None = None) -> Payload:
    name = source.get("name", "")
    optional = bool(source.get("optional"))
    mode = _mode(source.get("defaultMode"), default_mode if default_mode is not None
                 else DEFAULT_MODE)
    cm = objects.configmap(namespace, name)
    if cm is None:
        if optional:
            return {}
        raise VolumeError(f'configmap "{name}" not found')
    return _items(source, configmap_data(cm), default_mode=mode, optional=optional,
                  missing_key="configmap references non-existent config key")


def secret_payload(source: Obj, namespace: str, objects: ObjectSource, *,
                   default_mode: int | None = None, name_field: str = "secretName") -> Payload:
    name = source.get(name_field, "")
    optional = bool(source.get("optional"))
    mode = _mode(source.get("defaultMode"), default_mode if default_mode is not None
                 else DEFAULT_MODE)
    secret = objects.secret(namespace, name)
    if secret is None:
        if optional:
            return {}
        raise VolumeError(f'secret "{name}" not found')
    return _items(source, secret_data(secret), default_mode=mode, optional=optional,
                  missing_key="references non-existent secret key")


def downward_payload(source: Obj, pod: Obj, node: Obj | None, *,
                     default_mode: int | None = None) -> Payload:
    mode = _mode(source.get("defaultMode"), default_mode if default_mode is not None
                 else DEFAULT_MODE)
    payload: Payload = {}
    for item in source.get("items") or []:
        path = item.get("path", "")
        try:
            if item.get("fieldRef"):
                text = pod_field(pod, item["fieldRef"].get("fieldPath", ""))
            elif item.get("resourceFieldRef"):
                text = resource_field(pod, item["resourceFieldRef"], node)
            else:
                continue
        except ValueError as e:
            raise VolumeError(f"downwardAPI item {path!r}: {e}") from None
        payload[path] = FileProjection(text.encode(), _mode(item.get("mode"), mode))
    return payload


def projected_payload(source: Obj, pod: Obj, objects: ObjectSource) -> Payload:
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    mode = _mode(source.get("defaultMode"), DEFAULT_MODE)
    payload: Payload = {}
    for src in source.get("sources") or []:
        if "configMap" in src:
            payload.update(configmap_payload({**src["configMap"], "defaultMode": None},
                                             namespace, objects, default_mode=mode))
        elif "secret" in src:
            payload.update(secret_payload({**src["secret"], "defaultMode": None}, namespace,
                                          objects, default_mode=mode, name_field="name"))
        elif "downwardAPI" in src:
            payload.update(downward_payload({**src["downwardAPI"], "defaultMode": None}, pod,
                                            objects.node(), default_mode=mode))
        elif "serviceAccountToken" in src:
            raise VolumeError("projected serviceAccountToken sources are not supported yet: "
                              "kubeling has no TokenRequest API")
        elif "clusterTrustBundle" in src:
            if src["clusterTrustBundle"].get("optional"):
                continue
            raise VolumeError("projected clusterTrustBundle sources are not supported yet: "
                              "kubeling serves no ClusterTrustBundle objects")
    return payload
