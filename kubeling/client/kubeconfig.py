"""Reading a kubeconfig file: where the API server is and how to prove who we are.

Components started against a remote API server (``kubeling scheduler``,
``kubeling controller-manager``, ``kubeling hollow-nodes``) find it the way
kubectl does: ``$KUBECONFIG`` (the first file of the list that exists), else
``~/.kube/config``, then the current context's cluster and user. Only what
those components need is understood: the server URL, the cluster CA, client
certificates and bearer tokens, inline (``*-data``) or as files. Exec and
auth-provider plugins are not.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class KubeconfigError(ValueError):
    """The kubeconfig is missing or does not say how to reach a server."""


@dataclass(frozen=True)
class Credentials:
    """A cluster and a user out of a kubeconfig. PEM data is bytes, file paths absolute."""

    server: str
    token: str = ""
    ca_file: str | None = None
    ca_data: bytes | None = None
    cert_file: str | None = None
    cert_data: bytes | None = None
    key_file: str | None = None
    key_data: bytes | None = None
    insecure: bool = False


def default_path() -> Path:
    """The kubeconfig kubectl would read: the first existing file of $KUBECONFIG, else
    ``~/.kube/config``."""
    env = os.environ.get("KUBECONFIG", "")
    for part in env.split(os.pathsep):
        if part and Path(part).expanduser().exists():
            return Path(part).expanduser()
    return Path.home() / ".kube" / "config"


def _named(entries: Any, name: str, what: str) -> dict[str, Any]:
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(what)
            return value if isinstance(value, dict) else {}
    raise KubeconfigError(f"kubeconfig has no {what} named {name!r}")


def load(path: str | Path | None = None, *, context: str = "") -> Credentials:
    """The credentials of ``context`` (default: current-context) in the kubeconfig at ``path``."""
    file = Path(path).expanduser() if path else default_path()
    try:
        config = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise KubeconfigError(f"cannot read kubeconfig {file}: {exc}") from exc
    if not isinstance(config, dict):
        raise KubeconfigError(f"kubeconfig {file} is not a mapping")
    name = context or config.get("current-context") or ""
    if not name:
        raise KubeconfigError(f"kubeconfig {file} has no current-context")
    ctx = _named(config.get("contexts"), name, "context")
    cluster = _named(config.get("clusters"), ctx.get("cluster", ""), "cluster")
    user = _named(config.get("users"), ctx["user"], "user") if ctx.get("user") else {}
    server = cluster.get("server") or ""
    if not server:
        raise KubeconfigError(f"cluster {ctx.get('cluster')!r} in {file} has no server")
    base = file.parent

    def path_of(value: Any) -> str | None:
        return str((base / Path(value).expanduser()).resolve()) if value else None

    def data_of(value: Any) -> bytes | None:
        return base64.b64decode(value) if value else None

    token = str(user.get("token") or "")
    if not token and user.get("tokenFile"):
        token_path = path_of(user["tokenFile"])
        assert token_path is not None
        token = Path(token_path).read_text().strip()
    return Credentials(
        server=server.rstrip("/"),
        token=token,
        ca_file=path_of(cluster.get("certificate-authority")),
        ca_data=data_of(cluster.get("certificate-authority-data")),
        cert_file=path_of(user.get("client-certificate")),
        cert_data=data_of(user.get("client-certificate-data")),
        key_file=path_of(user.get("client-key")),
        key_data=data_of(user.get("client-key-data")),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )
