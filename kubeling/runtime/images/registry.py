"""Pulls images from registries over the OCI distribution API.

The kubelet's pull policies need images from where a pod's spec names them,
not only from archives imported by hand. This module speaks the distribution
API (``/v2/<repo>/manifests/<ref>``, ``/v2/<repo>/blobs/<digest>``) with the
registries' two ways of authenticating (a Bearer token fetched from the realm
a ``401`` names, or plain Basic), picks the host platform's manifest out of a
manifest list, and trusts nothing it downloads: the manifest's bytes are
checked against the digest asked for and the one the registry announces, and
every blob goes through the store's verifying writer, so a corrupted or
substituted layer never lands in the store.

Errors are ``PullError``: one user-facing message (it becomes the pod's
``ErrImagePull`` event) and ``unreachable``, which tells the kubelet that the
registry could not be reached at all, so a local copy may still serve.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import os
import re
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from kubeling.runtime.images.reference import InvalidReference, Reference, parse
from kubeling.runtime.images.store import (
    DigestMismatch,
    Image,
    ImageError,
    ImageStore,
    host_platform,
)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
INDEXES = (OCI_INDEX, DOCKER_LIST)
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((*MANIFESTS, *INDEXES))
MAX_MANIFEST = 4 << 20  # registries refuse bigger manifests too
PARALLEL_BLOBS = 3
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
SECURE, INSECURE, PLAIN = "https", "insecure", "http"  # how a registry is spoken to
TOKEN_MARGIN = 10.0  # seconds before a token's expiry when it is no longer used
DEFAULT_TOKEN_LIFETIME = 60.0
USER_AGENT = "kubeling/0.1"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_CHALLENGE_TOKEN = re.compile(
    r'[\s,]*(?:([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))|([A-Za-z][\w-]*))')

Progress = Callable[[str], None]


class PullError(Exception):
    """A pull that failed; ``message`` is for users, ``unreachable`` says the registry
    could not be reached at all (connection refused, DNS failure, timeout)."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.unreachable = unreachable


# Bearer tokens by (registry, scope, credentials fingerprint): several pulls of one image
# (pods starting together, restarts with pull policy Always) fetch one token.
_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}


async def pull(store: ImageStore, ref: str, *, auth: Mapping[str, str] | None = None,
               insecure_registries: Iterable[str] = (),
               platform: tuple[str, str] | None = None,
               progress: Progress | None = None, timeout: float = 30.0) -> Image:
    """Pull ``ref`` into ``store`` and record it: named by its tag (when it has one) and
    by ``<repository>@<manifest digest>``. ``auth`` holds a pull secret's entry
    (``username``/``password``, ``auth`` = base64 "user:pass", ``identitytoken`` or
    ``registrytoken``). ``platform`` is (os, architecture), the host's by default, for
    choosing out of a manifest list."""
    if platform is None:
        host_os, host_arch, _variant = host_platform()
        platform = (host_os, host_arch)
    try:
        reference = parse(ref)
    except InvalidReference as exc:
        raise PullError(str(exc)) from None
    session = _Session(reference, dict(auth or {}), _transport(reference, insecure_registries))
    limits = httpx.Timeout(timeout, connect=min(timeout, 10.0))
    verify: ssl.SSLContext | bool = session.mode != INSECURE and _ssl_context()
    try:
        async with httpx.AsyncClient(verify=verify, timeout=limits,
                                     follow_redirects=True,
                                     headers={"User-Agent": USER_AGENT}) as client:
            session.client = client
            return await _Puller(store, session, progress or (lambda _line: None),
                                 platform).run()
    except (httpx.NetworkError, httpx.TimeoutException) as exc:
        if _cert_error(exc):
            raise PullError(f'failed to pull "{reference.name}": {_where(exc, session)}: '
                            f"tls: failed to verify the registry's certificate "
                            f"({_describe(exc)}); install its CA in the system trust store or "
                            f"list {reference.registry} as an insecure registry") from None
        if _ssl_error(exc):
            raise PullError(f'failed to pull "{reference.name}": {_where(exc, session)}: '
                            f"tls handshake failed ({_describe(exc)}); if the registry speaks "
                            f"plain HTTP, list {reference.registry} as an insecure "
                            "registry") from None
        raise PullError(f'failed to pull "{reference.name}": cannot reach the registry at '
                        f"{_where(exc, session)}: {_describe(exc)}", unreachable=True) from None
    except httpx.HTTPError as exc:
        raise PullError(f'failed to pull "{reference.name}": {_where(exc, session)}: '
                        f"{_describe(exc)}") from None
    except OSError as exc:  # the store's disk: full, read-only, ...
        raise PullError(f'failed to pull "{reference.name}": {exc}') from None


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first leaf of an exception group (nested by TaskGroup): the error to report."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _where(exc: httpx.HTTPError, session: _Session) -> str:
    try:
        url = exc.request.url
    except RuntimeError:
        return session.host
    return f"{url.scheme}://{url.netloc.decode()}{url.path}"


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.split("\n", 1)[0]


def _host_only(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _transport(ref: Reference, insecure: Iterable[str]) -> str:
    """PLAIN for loopback registries, INSECURE (HTTPS without verification, then plain HTTP)
    for the insecure ones (``host[:port]``, as docker's ``insecure-registries``), else
    verified HTTPS."""
    listed = set(insecure)
    if ref.api_host in listed or ref.registry in listed:
        return INSECURE
    return PLAIN if _host_only(ref.api_host) in LOCAL_HOSTS else SECURE


def _cert_error(exc: BaseException) -> bool:
    return _caused_by(exc, ssl.SSLCertVerificationError)


def _ssl_error(exc: BaseException) -> bool:
    return _caused_by(exc, ssl.SSLError)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _ssl_context() -> ssl.SSLContext:
    """The system's trust store (where an admin installs a private registry's CA;
    ``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured), certifi's when the system has none."""
    return _ssl_context_for(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=4)
def _ssl_context_for(_cert_file: str | None, _cert_dir: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not context.cert_store_stats().get("x509_ca"):
        try:
            import certifi

            context.load_verify_locations(certifi.where())
        except ImportError:
            pass
    return context


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1000
    return f"{size}B"


def _server_message(response: httpx.Response) -> str:
    """The registry's own words from an error body (``{"errors": [{code, message}]}``)."""
    try:
        errors = json.loads(response.content).get("errors") or []
        parts = [f"{e.get('code', '').lower()}: {e.get('message', '')}".strip(": ")
                 for e in errors if isinstance(e, dict)]
    except (ValueError, AttributeError):
        parts = []
    return "; ".join(p for p in parts if p) or f"{response.status_code} {response.reason_phrase}"


def parse_challenge(header: str) -> dict[str, dict[str, str]]:
    """``WWW-Authenticate`` → {scheme (lowercase): {param: value}}. A header may hold
    several challenges (``Basic realm="x", Bearer realm="y"``); a scheme starts each."""
    challenges: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    pos = 0
    while pos < len(header):
        match = _CHALLENGE_TOKEN.match(header, pos)
        if match is None or match.end() == pos:
            pos += 1
            continue
        pos = match.end()
        key, quoted, bare, scheme = match.groups()
        if scheme:
            current = challenges.setdefault(scheme.lower(), {})
        elif key and current is not None:
            value = quoted if quoted is not None else bare or ""
            current[key.lower()] = re.sub(r"\\(.)", r"\1", value)
    return challenges


@dataclass
class _Session:
    """One registry conversation: where it is, who we are, the authorization to send."""

    ref: Reference
    auth: dict[str, str]
    mode: str  # SECURE, INSECURE or PLAIN
    client: httpx.AsyncClient | None = None
    authorization: str = ""
    scope: str = field(init=False)
    scheme: str = field(init=False)
    settled: bool = field(init=False)  # the scheme answered once: no more fallback

    def __post_init__(self) -> None:
        self.scope = f"repository:{self.ref.repository}:pull"
        self.authorization = self._cached(self.scope)
        self.scheme = "http" if self.mode == PLAIN else "https"
        self.settled = self.mode != INSECURE

    @property
    def host(self) -> str:
        return self.ref.api_host

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}/v2/{self.ref.repository}"

    def credentials(self) -> tuple[str, str] | None:
        if self.auth.get("username") or self.auth.get("password"):
            return self.auth.get("username", ""), self.auth.get("password", "")
        if self.auth.get("auth"):
            try:
                decoded = base64.b64decode(self.auth["auth"]).decode()
            except ValueError:
                raise PullError("invalid registry credentials: \"auth\" is not base64 of "
                                "user:password") from None
            user, _, password = decoded.partition(":")
            return user, password
        return None

    def _fingerprint(self) -> str:
        data = json.dumps(sorted(self.auth.items())).encode()
        return hashlib.sha256(data).hexdigest()

    def _cached(self, scope: str) -> str:
        entry = _tokens.get((self.host, scope, self._fingerprint()))
        if entry and entry[1] > time.monotonic():
            return f"Bearer {entry[0]}"
        return ""

    async def send(self, url: str, headers: Mapping[str, str]) -> httpx.Response:
        """GET ``url`` (streamed; the caller closes it), authenticating once on a 401."""
        assert self.client is not None
        for attempt in range(2):
            request_headers = dict(headers)
            if self.authorization:
                request_headers["Authorization"] = self.authorization
            request = self.client.build_request("GET", url, headers=request_headers)
            try:
                response = await self.client.send(request, stream=True)
            except (httpx.ConnectError, httpx.RemoteProtocolError):
                if self.settled:
                    raise
                # An insecure registry that does not speak TLS: plain HTTP, as docker does.
                self.scheme, self.settled = "http", True
                url = "http://" + url.removeprefix("https://")
                request = self.client.build_request("GET", url, headers=request_headers)
                response = await self.client.send(request, stream=True)
            self.settled = True
            if response.status_code != 401 or attempt:
                return response
            await response.aread()
            await response.aclose()
            if not await self._authenticate(response):
                return response
        raise AssertionError("unreachable")

    async def read(self, url: str, headers: Mapping[str, str]) -> httpx.Response:
        response = await self.send(url, headers)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def _authenticate(self, response: httpx.Response) -> bool:
        """Answer a 401's challenge; False when there is nothing better to send."""
        challenges = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if "bearer" in challenges:
            params = challenges["bearer"]
            scope = params.get("scope") or self.scope
            cached = self._cached(scope)
            if cached and cached != self.authorization:
                self.authorization = cached
                return True
            if self.auth.get("registrytoken"):
                self.authorization = f"Bearer {self.auth['registrytoken']}"
                return True
            token, lifetime = await self._fetch_token(params, scope)
            _tokens[(self.host, scope, self._fingerprint())] = (
                token, time.monotonic() + max(lifetime - TOKEN_MARGIN, 1.0))
            self.authorization = f"Bearer {token}"
            return True
        if "basic" in challenges:
            creds = self.credentials()
            if creds is None:
                return False
            raw = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            self.authorization = f"Basic {raw}"
            return True
        return False

    async def _fetch_token(self, params: Mapping[str, str], scope: str) -> tuple[str, float]:
        assert self.client is not None
        realm = params.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise PullError(f"registry {self.host} asks for a token from an invalid realm "
                            f"{realm!r}")
        query = {k: v for k, v in (("service", params.get("service", "")), ("scope", scope))
                 if v}
        identity = self.auth.get("identitytoken") or self.auth.get("identity_token")
        if identity:
            form = {"grant_type": "refresh_token", "refresh_token": identity,
                    "client_id": "kubeling", **query}
            response = await self.client.post(realm, data=form)
        else:
            creds = self.credentials()
            response = await self.client.get(realm, params=query,
                                             auth=creds if creds else None)
        if response.status_code in (401, 403):
            raise PullError(
                f'failed to resolve reference "{self.ref.name}": pull access denied, '
                "repository does not exist or may require authorization: failed to fetch "
                f"a token from {realm}: {_server_message(response)}")
        if response.status_code != 200:
            raise PullError(f"failed to fetch a token from {realm}: "
                            f"{_server_message(response)}")
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
            lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            token = None
            lifetime = 0.0
        if not isinstance(token, str) or not token:
            raise PullError(f"the token server {realm} answered without a token")
        return token, lifetime


@dataclass
class _Puller:
    store: ImageStore
    session: _Session
    progress: Progress
    platform: tuple[str, str]

    @property
    def name(self) -> str:
        return self.session.ref.name

    async def run(self) -> Image:
        ref = self.session.ref
        body, digest, doc, media = await self.manifest(ref.reference, ref.digest)
        index_digest = digest if media in INDEXES else ""
        for _depth in range(3):
            if media not in INDEXES:
                break
            entry = choose_platform(doc, self.platform)
            body, digest, doc, media = await self.manifest(entry["digest"], entry["digest"])
        if media in DOCKER_SCHEMA1:
            raise PullError(f'failed to pull "{self.name}": Docker schema 1 manifests are not '
                            "supported; push the image again with a current client")
        if media not in MANIFESTS:
            raise PullError(f'failed to pull "{self.name}": unsupported manifest media type '
                            f"{media!r}")
        descriptors = [_descriptor(doc.get("config"), "config")]
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise PullError(f'failed to pull "{self.name}": manifest {digest} has no layers')
        descriptors += [_descriptor(layer, "layer") for layer in layers]
        limit = asyncio.Semaphore(PARALLEL_BLOBS)
        try:
            async with asyncio.TaskGroup() as group:
                for desc in descriptors:
                    group.create_task(self.blob(desc, limit))
        except BaseExceptionGroup as failed:
            raise _first(failed) from None
        names = [ref.with_tag(ref.tag).name] if ref.tag else []
        try:
            image = await asyncio.to_thread(self.store.add_image, body, names=names,
                                            digest_repos=[ref.repo],
                                            index_digest=index_digest)
        except (ImageError, DigestMismatch) as exc:
            raise PullError(f'failed to pull "{self.name}": {exc}') from None
        self.progress(f"{self.name}: pulled image {image.id} ({_human(image.size)})")
        return image

    async def manifest(self, reference: str, expected: str) -> tuple[bytes, str,
                                                                     dict[str, Any], str]:
        """Fetch a manifest or index; verify its digest; → (bytes, digest, doc, media)."""
        url = f"{self.session.base}/manifests/{reference}"
        response = await self.session.read(url, {"Accept": ACCEPT})
        self._check(response, f"{self.name}: not found")
        body = response.content
        if len(body) > MAX_MANIFEST:
            raise PullError(f'failed to pull "{self.name}": manifest larger than '
                            f"{MAX_MANIFEST} bytes")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        announced = response.headers.get("Docker-Content-Digest", "")
        for claim, what in ((expected, "requested"), (announced, "announced by the registry")):
            if claim and claim.startswith("sha256:") and claim != digest:
                raise PullError(f'failed to pull "{self.name}": manifest digest mismatch: '
                                f"{what} {claim}, content is {digest}")
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise PullError(f'failed to pull "{self.name}": manifest {digest} is not a JSON '
                            "object")
        media = doc.get("mediaType") or response.headers.get("Content-Type", "").split(";")[0]
        if not media and isinstance(doc.get("manifests"), list):
            media = OCI_INDEX
        if not media and "config" in doc:
            media = OCI_MANIFEST
        return body, digest, doc, str(media).strip()

    async def blob(self, desc: tuple[str, int, str], limit: asyncio.Semaphore) -> None:
        digest, size, kind = desc
        short = digest[7:19]
        if self.store.has_blob(digest):
            self.progress(f"{kind} {short}: already present")
            return
        async with limit:
            response = await self.session.send(f"{self.session.base}/blobs/{digest}",
                                               {"Accept-Encoding": "identity"})
            try:
                if response.status_code != 200:
                    await response.aread()
                self._check(response, f"blob {digest} not found")
                received = await self._store_blob(response, digest, size)
            finally:
                await response.aclose()
        self.progress(f"{kind} {short}: pulled {_human(received)}")

    async def _store_blob(self, response: httpx.Response, digest: str, size: int) -> int:
        """Stream the body into the store's verifying writer; the commit (hash check, fsync,
        rename) runs in a thread, off the agent's event loop."""
        received = 0
        writer = self.store.blob_writer(digest)
        try:
            async for chunk in response.aiter_bytes():
                received += len(chunk)
                if received > size:
                    raise PullError(f'failed to pull "{self.name}": blob {digest} is '
                                    f"longer than the {size} bytes its manifest says")
                writer.write(chunk)
            if received != size:
                raise PullError(f'failed to pull "{self.name}": blob {digest} has '
                                f"{received} bytes, its manifest says {size}")
        except BaseException:
            writer.abort()
            raise
        try:
            await asyncio.to_thread(writer.commit)
        except DigestMismatch as exc:
            raise PullError(f'failed to pull "{self.name}": blob {digest} failed '
                            f"verification: {exc}") from None
        return received

    def _check(self, response: httpx.Response, missing: str) -> None:
        status = response.status_code
        if status == 200:
            return
        if status == 404:
            raise PullError(f'failed to resolve reference "{self.name}": {missing}')
        if status in (401, 403):
            raise PullError(f'failed to resolve reference "{self.name}": pull access denied, '
                            "repository does not exist or may require authorization: "
                            f"{_server_message(response)}")
        raise PullError(f'failed to pull "{self.name}": {response.request.url}: '
                        f"{_server_message(response)}")


def _descriptor(desc: object, kind: str) -> tuple[str, int, str]:
    if not isinstance(desc, dict):
        raise PullError(f"invalid manifest: {kind} descriptor is not an object")
    digest, size = desc.get("digest"), desc.get("size")
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise PullError(f"invalid manifest: {kind} digest {digest!r} is not sha256:<64 hex>")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise PullError(f"invalid manifest: {kind} {digest} has no valid size")
    return digest, size, kind


def choose_platform(index: Mapping[str, Any], platform: tuple[str, str]) -> dict[str, Any]:
    """The manifest list entry for ``platform`` ((os, architecture), the architecture
    optionally with a variant as "arm/v7"). Without a variant asked for, an entry without
    one is preferred, then the first."""
    want_os, want_arch = platform
    want_arch, _, want_variant = want_arch.partition("/")
    matches: list[dict[str, Any]] = []
    for entry in index.get("manifests") or []:
        if not isinstance(entry, dict):
            continue
        plat = entry.get("platform") or {}
        if plat.get("os") == want_os and plat.get("architecture") == want_arch:
            matches.append(entry)
    if want_variant:
        matches = [m for m in matches if (m.get("platform") or {}).get("variant") in
                   (want_variant, None, "")] or []
        matches.sort(key=lambda m: (m.get("platform") or {}).get("variant") != want_variant)
    else:
        matches.sort(key=lambda m: bool((m.get("platform") or {}).get("variant")))
    if not matches:
        raise PullError(f"no matching manifest for {want_os}/{platform[1]} in the manifest "
                        "list entries")
    chosen = matches[0]
    if not isinstance(chosen.get("digest"), str) or not _DIGEST.match(chosen["digest"]):
        raise PullError(f"invalid manifest list: entry digest {chosen.get('digest')!r}")
    return chosen
