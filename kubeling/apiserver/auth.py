"""Authentication: who is calling, from a bearer token or a verified client certificate.

TLS verifies client certificates against the cluster CA (optional at the
handshake, so token clients connect too); the certificate's CN is the user and
its O entries the groups, as Kubernetes reads them. Until RBAC arrives every
authenticated user may do everything; the anonymous get only the public
endpoints (health, version and the CA a joining agent checks against its
token), like Kubernetes' public-info-viewer role. Node agents authenticate
with the cluster's node secret as a bearer token, as ``NODE_USER``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version", "/version/",
                          "/cacerts"})


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()


NODES_GROUP = "system:nodes"
# Who a node agent that joined with the cluster's node secret is (one shared secret, so
# one user for every such agent; Kubernetes' per-node ``system:node:<name>`` users come
# with per-node credentials).
NODE_USER = User("kubeling-node", (NODES_GROUP, "system:authenticated"))


def user_from_peercert(cert: dict[str, Any] | None) -> User | None:
    if not cert:
        return None
    cn = ""
    orgs: list[str] = []
    for rdn in cert.get("subject", ()):
        for attr, value in rdn:
            if attr == "commonName":
                cn = value
            elif attr == "organizationName":
                orgs.append(value)
    if not cn:
        return None
    return User(cn, (*orgs, "system:authenticated"))


class Authenticator:
    def __init__(self, tokens: dict[str, User]) -> None:
        self._tokens = tokens

    def authenticate(self, authorization: bytes | None, peer: User | None) -> User | None:
        if authorization:
            scheme, _, token = authorization.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token:
                token = token.strip()
                for known, user in self._tokens.items():
                    if hmac.compare_digest(known, token):
                        return user
        return peer


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(("/healthz/", "/livez/", "/readyz/"))
