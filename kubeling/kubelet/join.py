"""Joining a cluster with a node token: trust the right CA, then talk to the API with the secret.

The token is k3s's: ``K10<sha256 of the CA certificate>::<user>:<secret>``.
The agent fetches the CA from the server's public ``/cacerts`` without
verifying the connection (it has nothing to verify with yet), and accepts it
only if its hash is the one in the token: a server that is not the cluster's
cannot pass. A bare secret carries no hash; then the CA is trusted on first
use, with a warning. The result is a kubeconfig in the agent's data dir that
every later start reuses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import ssl
from pathlib import Path

import httpx
import yaml

log = logging.getLogger("kubeling.kubelet.join")

TOKEN_PREFIX = "K10"
KUBECONFIG_NAME = "kubeconfig.yaml"
CA_NAME = "ca.crt"
_HASH = re.compile(r"[0-9a-fA-F]{64}")


class JoinError(Exception):
    """Joining failed in a way retrying will not fix (bad token, wrong CA, refused)."""


def parse_token(token: str) -> tuple[str | None, str]:
    """(CA hash or None, secret) of a join token, full (``K10<hash>::<user>:<secret>``) or a
    bare secret. Raises JoinError for a token that starts as a full one but is malformed."""
    token = token.strip()
    if not token:
        raise JoinError("the join token is empty")
    if not token.startswith(TOKEN_PREFIX) or "::" not in token:
        return None, token
    ca_hash, _, creds = token[len(TOKEN_PREFIX):].partition("::")
    if not _HASH.fullmatch(ca_hash):
        raise JoinError("malformed join token: the CA hash after K10 must be 64 hex digits")
    _user, sep, secret = creds.partition(":")
    if not sep:
        secret = creds  # K10<hash>::<secret>: the user is implied
    if not secret:
        raise JoinError("malformed join token: no secret after the user")
    return ca_hash.lower(), secret


def ca_hash(ca_pem: bytes) -> str:
    return hashlib.sha256(ca_pem).hexdigest()


def _unverified() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def fetch_ca(server: str, expected_hash: str | None, *, timeout: float = 10.0,
                   transport: httpx.AsyncBaseTransport | None = None) -> bytes:
    """The cluster CA from ``<server>/cacerts``, checked against ``expected_hash``."""
    url = server.rstrip("/") + "/cacerts"
    try:
        async with httpx.AsyncClient(verify=_unverified(), timeout=timeout,
                                     transport=transport) as http:
            resp = await http.get(url)
    except httpx.HTTPError as exc:
        raise ConnectionError(f"cannot reach {url}: {exc}") from exc
    if resp.status_code != 200 or b"BEGIN CERTIFICATE" not in resp.content:
        raise JoinError(f"{url} answered {resp.status_code} without a CA certificate")
    got = ca_hash(resp.content)
    if expected_hash is None:
        log.warning("the join token has no CA hash: trusting the CA %s serves (sha256 %s) on "
                    "first use; use the full K10... token to verify it", server, got)
    elif not hmac.compare_digest(got, expected_hash.lower()):
        raise JoinError(f"the CA certificate served by {server} (sha256 {got}) does not match "
                        f"the hash in the join token ({expected_hash}); refusing to join")
    return resp.content


async def check_credentials(server: str, ca_pem: bytes, secret: str, *, timeout: float = 10.0,
                            transport: httpx.AsyncBaseTransport | None = None) -> None:
    """Ask the API for something only an authenticated caller may see; JoinError if refused."""
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    ctx.check_hostname = False  # the server's name may not be in its certificate
    url = server.rstrip("/") + "/api/v1/namespaces/kube-node-lease"
    try:
        async with httpx.AsyncClient(verify=ctx, timeout=timeout, transport=transport) as http:
            resp = await http.get(url, headers={"Authorization": f"Bearer {secret}"})
    except httpx.HTTPError as exc:
        raise ConnectionError(f"cannot reach {server}: {exc}") from exc
    if resp.status_code in (401, 403):
        raise JoinError(f"{server} refused the join token ({resp.status_code}); check it "
                        "against the server's pki/node-token")


def write_kubeconfig(path: Path, *, server: str, ca_pem: bytes, token: str,
                     name: str = "kubeling") -> None:
    """A kubeconfig (0600) for the agent: the server, its CA inline, the node secret."""
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": name, "cluster": {
            "server": server.rstrip("/"),
            "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": f"{name}-node", "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-node"}}],
        "current-context": name,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    os.replace(tmp, path)


async def join(server: str, token: str, data_dir: Path, *,
               transport: httpx.AsyncBaseTransport | None = None) -> Path:
    """Verify the server against the token, check the token is accepted, and write
    ``<data_dir>/kubeconfig.yaml`` and ``<data_dir>/pki/ca.crt``; returns the kubeconfig."""
    expected, secret = parse_token(token)
    ca_pem = await fetch_ca(server, expected, transport=transport)
    await check_credentials(server, ca_pem, secret, transport=transport)
    pki = data_dir / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    (pki / CA_NAME).write_bytes(ca_pem)
    path = data_dir / KUBECONFIG_NAME
    write_kubeconfig(path, server=server, ca_pem=ca_pem, token=secret)
    log.info("joined %s (CA sha256 %s)", server, ca_hash(ca_pem))
    return path
