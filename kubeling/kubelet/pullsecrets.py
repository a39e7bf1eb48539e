"""Registry credentials for a pod's image, from its ``imagePullSecrets``.

As the kubelet's keyring does: every secret the pod names of type
``kubernetes.io/dockerconfigjson`` (``{"auths": {...}}``) or
``kubernetes.io/dockercfg`` (the bare map) is read from the agent's cache, and
the entry whose registry matches the image's registry (host, with or without
``https://``, ``/v1/`` or ``/v2/``; docker.io also as ``index.docker.io``)
gives ``username``/``password`` or ``auth`` for the runtime's pull.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from kubeling.client.interface import Obj
from kubeling.kubelet.context import ObjectSource

log = logging.getLogger("kubeling.kubelet.pullsecrets")

DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")


def registry_of(image: str) -> str:
    """The registry host of an image reference, as docker normalizes it."""
    first, sep, _rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _host(key: str) -> str:
    key = key.removeprefix("https://").removeprefix("http://")
    return key.split("/", 1)[0]


def _entries(secret: Obj) -> dict[str, Any]:
    data = secret.get("data") or {}
    kind = secret.get("type", "")
    field = ".dockerconfigjson" if kind == "kubernetes.io/dockerconfigjson" else \
        ".dockercfg" if kind == "kubernetes.io/dockercfg" else ""
    if not field or field not in data:
        return {}
    try:
        doc = json.loads(base64.b64decode(data[field]))
    except (ValueError, TypeError):
        return {}
    auths = doc.get("auths", {}) if field == ".dockerconfigjson" else doc
    return auths if isinstance(auths, dict) else {}


def credentials(pod: Obj, image: str, objects: ObjectSource) -> dict[str, str] | None:
    """The first matching credentials among the pod's pull secrets, or None."""
    namespace = pod["metadata"].get("namespace", "")
    wanted = registry_of(image)
    names = {wanted, *(DOCKER_HUB if wanted in DOCKER_HUB else ())}
    for ref in (pod.get("spec") or {}).get("imagePullSecrets") or ():
        secret = objects.secret(namespace, str(ref.get("name", "")))
        if secret is None:
            log.warning("pull secret %s/%s of pod %s not found", namespace, ref.get("name"),
                        pod["metadata"].get("name"))
            continue
        for key, entry in _entries(secret).items():
            if _host(key) in names and isinstance(entry, dict):
                found = {k: str(v) for k, v in entry.items()
                         if k in ("username", "password", "auth", "identitytoken",
                                  "registrytoken") and v}
                if found:
                    return found
    return None
