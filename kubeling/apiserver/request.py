"""A request as the handlers see it, and what its path means (Kubernetes' RequestInfo)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote

from kubeling.apiserver.auth import User

# Subresources of a namespace that look like a resource under /namespaces/{ns}/.
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    user: User | None = None

    def q(self, name: str, default: str = "") -> str:
        v = self.query.get(name)
        return v[-1] if v else default

    def qbool(self, name: str) -> bool:
        return self.q(name).lower() in ("true", "1")

    def qint(self, name: str, default: int = 0) -> int:
        from kubeling.api import errors

        raw = self.q(name)
        if raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise errors.bad_request(f"invalid value for {name}: {raw!r}") from None


@dataclass
class RequestInfo:
    """What a resource path names. ``resource`` empty means not a resource request."""

    api_prefix: str = ""  # "api" | "apis"
    group: str = ""
    version: str = ""
    namespace: str | None = None
    resource: str = ""
    name: str = ""
    subresource: str = ""
    subpath: str = ""
    legacy_watch: bool = False
    parts: list[str] = field(default_factory=list)


def parse_query(raw: bytes) -> dict[str, list[str]]:
    if not raw:
        return {}
    return parse_qs(raw.decode("latin-1"), keep_blank_values=True)


def parse_path(path: str) -> RequestInfo | None:
    """Parse ``/api/v1/namespaces/ns/pods/name/log`` and friends; None if not under /api(s)."""
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    if not parts or parts[0] not in ("api", "apis"):
        return None
    info = RequestInfo(api_prefix=parts[0], parts=parts)
    if parts[0] == "api":
        if len(parts) < 2:
            return info
        info.version = parts[1]
        rest = parts[2:]
    else:
        if len(parts) < 2:
            return info
        info.group = parts[1]
        if len(parts) < 3:
            return info
        info.version = parts[2]
        rest = parts[3:]
    if rest and rest[0] == "watch":
        info.legacy_watch = True
        rest = rest[1:]
    if not rest:
        return info
    if rest[0] == "namespaces" and len(rest) > 1:
        info.namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
        else:
            info.namespace = None
            info.resource = "namespaces"
            info.name = rest[1]
            if len(rest) > 2:
                info.subresource = rest[2]
            return info
    info.resource = rest[0]
    if len(rest) > 1:
        info.name = rest[1]
    if len(rest) > 2:
        info.subresource = rest[2]
    if len(rest) > 3:
        info.subpath = "/".join(rest[3:])
    return info
