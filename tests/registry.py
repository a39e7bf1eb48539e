"""A real registry for tests: Debian's ``docker-registry`` (distribution 2.8) on loopback.

Pull tests must talk to the registry implementation the world runs, not to a
fake that shares our misreadings of the distribution API. ``Registry`` runs
``docker-registry serve`` on 127.0.0.1 with filesystem storage in a test's
directory and, when given users, token authentication as Docker Hub does it:
the registry answers ``401`` with a ``Bearer realm=...`` challenge, and a
small token server here (a thread) checks Basic credentials and issues JWTs
signed with an EC key whose self-signed certificate is the registry's
``rootcertbundle`` (the token header carries it as ``x5c``; the registry
checks ``iss``, ``aud``, ``exp``/``nbf`` and the ``access`` claim).

``push`` uploads an image built by ``tests/imagebuild.py`` through the
registry's own API (monolithic blob uploads, then the manifest), and
``push_index`` a manifest list over several platforms' manifests.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import ipaddress
import json
import secrets
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.cluster import free_port, require
from tests.imagebuild import BuiltImage, sha256

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
SERVICE = "kubeling-test-registry"
ISSUER = "kubeling-test-token-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def self_signed(key: ec.EllipticCurvePrivateKey, common_name: str,
                ips: Sequence[str] = ()) -> x509.Certificate:
    """A self-signed certificate (its own CA) for ``key``, valid for ``ips`` as a server."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True))
    if ips:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]), critical=False)
    return builder.sign(key, hashes.SHA256())


class TokenIssuer:
    """An EC P-256 key and its self-signed certificate; mints registry tokens (ES256 JWTs
    whose header carries the certificate as ``x5c``)."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = self_signed(self.key, ISSUER)

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def mint(self, subject: str, access: Sequence[Mapping[str, Any]],
             lifetime: int = 300) -> str:
        header = {"typ": "JWT", "alg": "ES256", "x5c": [
            base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + lifetime,
                  "nbf": now - 5, "iat": now, "jti": secrets.token_hex(16),
                  "access": [dict(a) for a in access]}
        signing_input = (_b64url(json.dumps(header).encode()) + "."
                         + _b64url(json.dumps(claims).encode()))
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


class TokenServer:
    """The realm: ``GET /token?service=&scope=repository:<name>:<actions>`` with Basic
    credentials. Known users get what they ask for; anonymous callers get a token that
    grants nothing; a wrong password gets 401."""

    def __init__(self, issuer: TokenIssuer, users: Mapping[str, str]) -> None:
        self.issuer = issuer
        self.users = dict(users)
        self.requests: list[tuple[str, list[str]]] = []  # (user, scopes) per issued token
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="token-server",
                                       daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlsplit(req.path)
        if url.path != "/token":
            return self._reply(req, 404, {"details": "not found"})
        query = urllib.parse.parse_qs(url.query)
        user = ""
        header = req.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return self._reply(req, 400, {"details": "bad basic credentials"})
            if self.users.get(user) != password:
                return self._reply(req, 401, {"details": "incorrect username or password"})
        if query.get("service", [SERVICE])[0] != SERVICE:
            return self._reply(req, 400, {"details": "unknown service"})
        scopes = query.get("scope", [])
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if user and kind == "repository":
                access.append({"type": kind, "name": name,
                               "actions": [a for a in actions.split(",") if a]})
        self.requests.append((user, scopes))
        token = self.issuer.mint(user, access)
        self._reply(req, 200, {"token": token, "access_token": token, "expires_in": 300,
                               "issued_at": datetime.datetime.now(datetime.UTC).isoformat()})

    @staticmethod
    def _reply(req: http.server.BaseHTTPRequestHandler, status: int,
               body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        if status == 401:
            req.send_header("WWW-Authenticate", 'Basic realm="kubeling test tokens"')
        req.end_headers()
        req.wfile.write(data)


class Registry:
    """``docker-registry serve`` on ``address``:<free port> (127.0.0.1: a loopback name the
    puller speaks plain HTTP to; another 127/8 address is spoken to over HTTPS); token auth
    when ``users`` are given (user → password); HTTPS with a self-signed certificate
    (``ca_path``) when ``tls``. Use as a context manager."""

    def __init__(self, workdir: Path, *, users: Mapping[str, str] | None = None,
                 address: str = "127.0.0.1", tls: bool = False) -> None:
        self.workdir = Path(workdir)
        self.storage = self.workdir / "storage"
        self.address = address
        self.port = free_port()
        self.host = f"{address}:{self.port}"
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://{self.host}"
        self.ca_path = self.workdir / "registry-ca.pem"
        self.log_path = self.workdir / "registry.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.issuer: TokenIssuer | None = None
        self.tokens: TokenServer | None = None
        if users is not None:
            self.issuer = TokenIssuer()
            self.tokens = TokenServer(self.issuer, users)

    def __enter__(self) -> Registry:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text"},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)},
                        "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
        }
        if self.tls:
            key = ec.generate_private_key(ec.SECP256R1())
            key_path = self.workdir / "registry-key.pem"
            key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
            cert = self_signed(key, "kubeling test registry", [self.address])
            self.ca_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            config["http"]["tls"] = {"certificate": str(self.ca_path), "key": str(key_path)}
        if self.issuer is not None and self.tokens is not None:
            bundle = self.workdir / "token-root.pem"
            bundle.write_bytes(self.issuer.cert_pem())
            config["auth"] = {"token": {"realm": self.tokens.realm, "service": SERVICE,
                                        "issuer": ISSUER, "rootcertbundle": str(bundle)}}
        return config

    def start(self) -> None:
        binary = require("docker-registry")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(exist_ok=True)
        config_path = self.workdir / "config.yml"
        config_path.write_text(json.dumps(self.config(), indent=1))  # JSON is YAML
        if self.tokens is not None:
            self.tokens.start()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([binary, "serve", str(config_path)], stdout=log,
                                         stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"docker-registry exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            try:
                status = httpx.get(f"{self.url}/v2/", timeout=1, verify=False).status_code
                if status in (200, 401):
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("docker-registry did not answer on /v2/ within 15 s:\n"
                                   + self.log_tail())
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.tokens is not None and self.tokens.thread.is_alive():
            self.tokens.stop()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no registry log)"

    # -- pushing ----------------------------------------------------------------------------

    def _headers(self, repo: str) -> dict[str, str]:
        if self.issuer is None:
            return {}
        token = self.issuer.mint("pusher", [{"type": "repository", "name": repo,
                                             "actions": ["pull", "push"]}])
        return {"Authorization": f"Bearer {token}"}

    def push_blob(self, repo: str, data: bytes, client: httpx.Client) -> str:
        digest = sha256(data)
        headers = self._headers(repo)
        if client.head(f"{self.url}/v2/{repo}/blobs/{digest}", headers=headers).status_code \
                == 200:
            return digest
        started = client.post(f"{self.url}/v2/{repo}/blobs/uploads/", headers=headers)
        assert started.status_code == 202, (started.status_code, started.text)
        location = httpx.URL(self.url).join(started.headers["Location"])
        done = client.put(location.copy_merge_params({"digest": digest}), content=data,
                          headers={**headers, "Content-Type": "application/octet-stream"})
        assert done.status_code == 201, (done.status_code, done.text)
        return digest

    def push_manifest(self, repo: str, reference: str, manifest: bytes, media_type: str,
                      client: httpx.Client) -> str:
        response = client.put(f"{self.url}/v2/{repo}/manifests/{reference}", content=manifest,
                              headers={**self._headers(repo), "Content-Type": media_type})
        assert response.status_code == 201, (response.status_code, response.text)
        digest = sha256(manifest)
        assert response.headers.get("Docker-Content-Digest") == digest
        return digest

    def push(self, image: BuiltImage, repo: str, tag: str) -> str:
        """Push ``image`` (its blobs, then its manifest as ``repo:tag``; ``tag`` may be a
        digest); returns the manifest digest."""
        media = json.loads(image.manifest).get("mediaType") or OCI_MANIFEST
        with httpx.Client(timeout=30, verify=False) as client:
            self.push_blob(repo, image.config, client)
            for _media, blob, _digest in image.layers:
                self.push_blob(repo, blob, client)
            return self.push_manifest(repo, tag, image.manifest, media, client)

    def push_index(self, images: Sequence[tuple[BuiltImage, str]], repo: str,
                   tag: str) -> tuple[bytes, str]:
        """Push each (image, architecture) by digest, then an OCI index over them as
        ``repo:tag``; returns (index bytes, index digest)."""
        entries = []
        for image, arch in images:
            digest = self.push(image, repo, image.manifest_digest)
            entries.append({"mediaType": json.loads(image.manifest).get("mediaType",
                                                                         OCI_MANIFEST),
                            "digest": digest, "size": len(image.manifest),
                            "platform": {"architecture": arch, "os": "linux"}})
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                            "manifests": entries}).encode()
        with httpx.Client(timeout=30, verify=False) as client:
            return index, self.push_manifest(repo, tag, index, OCI_INDEX, client)

    # -- the storage, for tests that tamper with it -------------------------------------------

    def blob_file(self, digest: str) -> Path:
        hex_digest = digest.removeprefix("sha256:")
        return (self.storage / "docker" / "registry" / "v2" / "blobs" / "sha256"
                / hex_digest[:2] / hex_digest / "data")

    def corrupt(self, digest: str) -> None:
        """Flip a byte in the middle of a stored blob (same size: the registry serves it as
        if nothing happened)."""
        path = self.blob_file(digest)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


def retarget(image: BuiltImage, architecture: str) -> BuiltImage:
    """The same layers as an image for another architecture (a new config and manifest)."""
    config = json.loads(image.config)
    config["architecture"] = architecture
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = json.loads(image.manifest)
    manifest["config"] = {**manifest["config"], "digest": sha256(config_bytes),
                          "size": len(config_bytes)}
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    return replace(image, config=config_bytes, config_digest=sha256(config_bytes),
                   manifest=manifest_bytes, manifest_digest=sha256(manifest_bytes))


def as_docker(image: BuiltImage) -> BuiltImage:
    """The image with a Docker schema 2 manifest (Docker's media types) instead of OCI's."""
    manifest = json.loads(image.manifest)
    manifest["mediaType"] = DOCKER_MANIFEST
    manifest["config"]["mediaType"] = DOCKER_CONFIG
    for layer in manifest["layers"]:
        layer["mediaType"] = DOCKER_LAYER_GZIP if layer["mediaType"].endswith("gzip") \
            else DOCKER_LAYER
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    return replace(image, manifest=manifest_bytes, manifest_digest=sha256(manifest_bytes))
