"""Image references, normalized as docker and the kubelet do.

A pod says ``busybox`` and a registry, the image store and ``kubeling images
ls`` must all agree that this is ``docker.io/library/busybox:latest``: one
normalized name per image is what lets a name point at exactly one image and
a pull find what an import already brought. The grammar follows the
distribution project's reference grammar (domain, path components, tag,
digest); only sha256 digests are accepted, as the store addresses blobs by
sha256.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
DEFAULT_API_HOST = "registry-1.docker.io"
LEGACY_REGISTRIES = ("index.docker.io", "registry-1.docker.io")
DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$")
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_ANY_DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class InvalidReference(ValueError):
    """A string that is not an image reference."""


@dataclass(frozen=True)
class Reference:
    """A parsed, normalized image reference."""

    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def repo(self) -> str:
        """``registry/repository``: the key digests are recorded under."""
        return f"{self.registry}/{self.repository}"

    @property
    def name(self) -> str:
        """The normalized string: ``registry/repository[:tag][@digest]``, ``:latest`` when
        the reference has neither tag nor digest."""
        tag = self.tag or ("" if self.digest else DEFAULT_TAG)
        out = self.repo
        if tag:
            out += f":{tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def api_host(self) -> str:
        """The host (and port) the distribution API is reached at."""
        return DEFAULT_API_HOST if self.registry == DEFAULT_REGISTRY else self.registry

    @property
    def reference(self) -> str:
        """What to ask a registry's manifest endpoint for: the digest, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def familiar(self) -> str:
        """The short form people type (``busybox:1.36``) for listings; the repository
        part alone is ``familiar_repository``."""
        out = self.familiar_repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def familiar_repository(self) -> str:
        if self.registry != DEFAULT_REGISTRY:
            return self.repo
        return self.repository.removeprefix("library/")

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.repository, tag, "")

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, "", digest)

    def __str__(self) -> str:
        return self.name


def _split_domain(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if not slash or (not any(c in first for c in ".:") and first != "localhost"
                     and first.lower() == first):
        registry, path = DEFAULT_REGISTRY, name
    else:
        registry, path = first, rest
    if registry in LEGACY_REGISTRIES:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    return registry, path


def parse(ref: str) -> Reference:
    """Parse and normalize ``ref``; ``InvalidReference`` says why one is refused."""
    if not isinstance(ref, str) or not ref:
        raise InvalidReference("invalid reference format: empty image reference")
    if ref != ref.strip() or any(c.isspace() for c in ref):
        raise InvalidReference(f"invalid reference format: {ref!r} contains whitespace")
    if _HEX64.match(ref):
        raise InvalidReference(
            f"invalid reference format: {ref!r} looks like an image id, not a name "
            "(cannot use a 64-character hexadecimal string as a repository name)")
    rest, at, digest = ref.partition("@")
    if at:
        if not _ANY_DIGEST.match(digest):
            raise InvalidReference(f"invalid reference format: bad digest {digest!r} in {ref!r}")
        if not _DIGEST.match(digest):
            raise InvalidReference(
                f"invalid reference format: unsupported digest {digest!r} in {ref!r} "
                "(only sha256:<64 lowercase hex> is supported)")
    tag = ""
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidReference(f"invalid reference format: bad tag {tag!r} in {ref!r}")
    if not rest:
        raise InvalidReference(f"invalid reference format: no repository in {ref!r}")
    registry, path = _split_domain(rest)
    if not _DOMAIN.match(registry):
        raise InvalidReference(f"invalid reference format: bad registry {registry!r} in {ref!r}")
    if path.lower() != path:
        raise InvalidReference(
            f"invalid reference format: repository name must be lowercase ({ref!r})")
    components = path.split("/")
    for component in components:
        if not _PATH_COMPONENT.match(component):
            raise InvalidReference(
                f"invalid reference format: bad repository component {component!r} in {ref!r}")
    if len(f"{registry}/{path}") > MAX_NAME_LENGTH:
        raise InvalidReference(
            f"invalid reference format: repository name longer than {MAX_NAME_LENGTH} "
            f"characters ({ref!r})")
    if not tag and not digest:
        tag = DEFAULT_TAG
    return Reference(registry=registry, repository=path, tag=tag, digest=digest)


def normalize(ref: str) -> str:
    """The normalized name of ``ref`` (``busybox`` → ``docker.io/library/busybox:latest``)."""
    return parse(ref).name


def normalize_repository(repo: str) -> str:
    """A repository without tag or digest, normalized (``busybox`` →
    ``docker.io/library/busybox``)."""
    parsed = parse(repo)
    if parsed.digest or repo.rpartition("/")[2].count(":"):
        raise InvalidReference(f"invalid repository {repo!r}: has a tag or digest")
    return parsed.repo
