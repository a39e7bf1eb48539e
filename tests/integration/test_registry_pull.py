"""Pulls from a real ``docker-registry`` (distribution 2.8) on loopback.

Images are built by the tests from busybox-static and pushed through the
registry's API; ``kubeling.runtime.images.registry.pull`` brings them into a
fresh image store. Covered: tags, digests, manifest lists (platform choice),
Docker schema 2 manifests, digest verification (a corrupted blob in the
registry's storage, a lying ``Docker-Content-Digest``), token auth (right and
wrong passwords, anonymous, token reuse), redirects to another server for
blobs, HTTPS (verified against the trust store; insecure registries: HTTPS
unverified, then plain HTTP), and the errors the kubelet shows (not found,
access denied, unreachable).
"""

from __future__ import annotations

import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubeling.runtime.images.registry import PullError, parse_challenge, pull
from kubeling.runtime.images.store import ImageStore
from tests.cluster import free_port
from tests.imagebuild import BuiltImage, build_image, multilayer_layers
from tests.registry import Registry, as_docker, retarget

USERS = {"alice": "wonderland"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with Registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with Registry(tmp_path_factory.mktemp("auth-registry"), users=USERS) as reg:
        yield reg


@pytest.fixture(scope="module")
def busybox(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    return build_image(tmp_path_factory.mktemp("img") / "busybox.tar", compress=True)


@pytest.fixture(scope="module")
def multilayer(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    return build_image(tmp_path_factory.mktemp("img") / "multi.tar", multilayer_layers(),
                       name="multi:1", cmd=["sleep", "3600"])


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


async def test_pull_by_tag(registry: Registry, busybox: BuiltImage, store: ImageStore) -> None:
    digest = registry.push(busybox, "test/busybox", "1.36")
    lines: list[str] = []
    image = await pull(store, f"{registry.host}/test/busybox:1.36", progress=lines.append)
    assert image.id == busybox.config_digest
    assert image.manifest_digest == digest == busybox.manifest_digest
    assert image.names == (f"{registry.host}/test/busybox:1.36",)
    assert image.digests == (f"{registry.host}/test/busybox@{digest}",)
    assert image.layers == tuple(d for _m, _b, d in busybox.layers)
    assert image.config.cmd == ("sh",)
    for _media, blob, layer_digest in busybox.layers:
        assert store.blob_path(layer_digest).read_bytes() == blob
    assert store.resolve(f"{registry.host}/test/busybox:1.36") == image
    assert len([line for line in lines if ": pulled " in line]) == 3  # config, layer, image


async def test_second_pull_reuses_blobs(registry: Registry, busybox: BuiltImage,
                                        store: ImageStore) -> None:
    registry.push(busybox, "test/reuse", "1")
    ref = f"{registry.host}/test/reuse:1"
    await pull(store, ref)
    pulled = [busybox.config_digest, *(d for _m, _b, d in busybox.layers)]
    blobs = {d: store.blob_path(d).stat().st_mtime_ns for d in pulled}
    lines: list[str] = []
    image = await pull(store, ref, progress=lines.append)
    assert image.id == busybox.config_digest
    assert [line for line in lines if "already present" in line] == [
        f"config {busybox.config_digest[7:19]}: already present",
        *(f"layer {d[7:19]}: already present" for _m, _b, d in busybox.layers)]
    assert {d: store.blob_path(d).stat().st_mtime_ns for d in pulled} == blobs  # not rewritten


async def test_pull_by_digest(registry: Registry, multilayer: BuiltImage,
                              store: ImageStore) -> None:
    digest = registry.push(multilayer, "test/multi", "1")
    image = await pull(store, f"{registry.host}/test/multi@{digest}")
    assert image.id == multilayer.config_digest
    assert image.names == ()  # a digest names no tag
    assert store.resolve(f"{registry.host}/test/multi@{digest}") == image
    assert len(image.layers) == 3 and image.config.cmd == ("sleep", "3600")


@pytest.mark.skipif(os.geteuid() != 0, reason="unpacking whiteouts needs root")
async def test_pulled_layers_unpack(registry: Registry, tmp_path: Path,
                                    store: ImageStore) -> None:
    gz = build_image(tmp_path / "gz.tar", multilayer_layers(), compress=True, cmd=["true"])
    registry.push(gz, "test/multigz", "1")
    image = await pull(store, f"{registry.host}/test/multigz:1")
    dirs = store.layer_dirs(image)
    assert len(dirs) == 3
    assert (dirs[0] / "bin" / "busybox").is_file()
    assert (dirs[2] / "etc" / "layer3").read_text() == "third layer\n"


async def test_docker_schema2_manifest(registry: Registry, busybox: BuiltImage,
                                       store: ImageStore) -> None:
    docker = as_docker(busybox)
    digest = registry.push(docker, "test/docker", "v2")
    image = await pull(store, f"{registry.host}/test/docker:v2")
    assert image.id == busybox.config_digest
    assert image.manifest_digest == digest == docker.manifest_digest


async def test_index_picks_the_platform(registry: Registry, busybox: BuiltImage,
                                        tmp_path: Path) -> None:
    arm = retarget(busybox, "arm64")
    _index, index_digest = registry.push_index([(arm, "arm64"), (busybox, "amd64")],
                                               "test/multiarch", "1")
    ref = f"{registry.host}/test/multiarch:1"
    amd_store = ImageStore(tmp_path / "amd64")
    image = await pull(amd_store, ref, platform=("linux", "amd64"))
    assert image.id == busybox.config_digest
    assert image.manifest_digest == busybox.manifest_digest
    assert image.names == (ref,)
    assert not amd_store.has_blob(arm.config_digest)  # the other platform is not fetched

    arm_store = ImageStore(tmp_path / "arm64")
    image = await pull(arm_store, f"{registry.host}/test/multiarch@{index_digest}",
                       platform=("linux", "arm64"))
    assert image.id == arm.config_digest
    found = arm_store.resolve(f"{registry.host}/test/multiarch@{index_digest}")
    assert found is not None and found.id == arm.config_digest  # present for IfNotPresent

    with pytest.raises(PullError) as err:
        await pull(ImageStore(tmp_path / "s390x"), ref, platform=("linux", "s390x"))
    assert err.value.message == ("no matching manifest for linux/s390x in the manifest "
                                 "list entries")
    assert not err.value.unreachable


async def test_corrupted_blob_is_refused(tmp_path: Path, multilayer: BuiltImage,
                                         store: ImageStore) -> None:
    # A registry of its own: the corrupted blob would poison every repository sharing it.
    with Registry(tmp_path / "registry") as reg:
        reg.push(multilayer, "test/corrupt", "1")
        bad = multilayer.layers[1][2]
        reg.corrupt(bad)
        with pytest.raises(PullError) as err:
            await pull(store, f"{reg.host}/test/corrupt:1")
    assert bad in err.value.message
    assert "verification" in err.value.message
    assert not err.value.unreachable
    assert store.list() == []
    assert not store.has_blob(bad)
    assert list(store.tmp_dir.iterdir()) == []  # the partial blob is gone too


async def test_token_auth(auth_registry: Registry, busybox: BuiltImage,
                          tmp_path: Path) -> None:
    auth_registry.push(busybox, "private/busybox", "1")
    ref = f"{auth_registry.host}/private/busybox:1"
    assert auth_registry.tokens is not None
    issued = len(auth_registry.tokens.requests)

    image = await pull(ImageStore(tmp_path / "a"), ref,
                       auth={"username": "alice", "password": "wonderland"})
    assert image.id == busybox.config_digest
    assert auth_registry.tokens.requests[issued:] == [
        ("alice", ["repository:private/busybox:pull"])]

    # The same credentials again: the cached token serves, no new one is fetched.
    await pull(ImageStore(tmp_path / "b"), ref, auth={"auth": "YWxpY2U6d29uZGVybGFuZA=="})
    await pull(ImageStore(tmp_path / "c"), ref,
               auth={"username": "alice", "password": "wonderland"})
    assert len(auth_registry.tokens.requests) == issued + 2  # "auth" form is its own key

    for auth in ({"username": "alice", "password": "wrong"}, None):
        denied_store = ImageStore(tmp_path / "denied")
        with pytest.raises(PullError) as err:
            await pull(denied_store, ref, auth=auth)
        assert "pull access denied, repository does not exist or may require " \
               "authorization" in err.value.message
        assert not err.value.unreachable
        assert denied_store.list() == []


async def test_missing_repository(registry: Registry, store: ImageStore) -> None:
    with pytest.raises(PullError) as err:
        await pull(store, f"{registry.host}/nosuch/image")
    name = f"{registry.host}/nosuch/image:latest"
    assert err.value.message == f'failed to resolve reference "{name}": {name}: not found'
    assert not err.value.unreachable


async def test_unreachable_registry(store: ImageStore) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(PullError) as err:
        await pull(store, f"127.0.0.1:{port}/test/busybox:1")
    assert err.value.unreachable
    assert f"127.0.0.1:{port}" in err.value.message


async def test_silent_registry_times_out(store: ImageStore) -> None:
    with socket.socket() as listener:  # accepts connections (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        with pytest.raises(PullError) as err:
            await pull(store, f"127.0.0.1:{port}/test/busybox:1", timeout=0.5)
    assert err.value.unreachable
    assert f"127.0.0.1:{port}" in err.value.message


async def test_invalid_reference(store: ImageStore) -> None:
    with pytest.raises(PullError) as err:
        await pull(store, "Not/Valid:ref!")
    assert "invalid reference format" in err.value.message


class Front:
    """A server in front of the registry: proxies manifests (optionally announcing a wrong
    ``Docker-Content-Digest``) and answers blob GETs with a 307 to the registry itself, as
    registries on object storage redirect to it."""

    def __init__(self, upstream: str, *, lie: bool = False) -> None:
        front = self
        self.upstream, self.lie, self.redirects = upstream, lie, 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                front.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        if "/blobs/" in req.path:
            self.redirects += 1
            req.send_response(307)
            req.send_header("Location", f"{self.upstream}{req.path}")
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        upstream = httpx.get(f"{self.upstream}{req.path}",
                             headers={"Accept": req.headers.get("Accept", "")})
        req.send_response(upstream.status_code)
        for name in ("Content-Type", "Docker-Content-Digest"):
            if name in upstream.headers:
                value = upstream.headers[name]
                if name == "Docker-Content-Digest" and self.lie:
                    value = "sha256:" + "0" * 64
                req.send_header(name, value)
        req.send_header("Content-Length", str(len(upstream.content)))
        req.end_headers()
        req.wfile.write(upstream.content)

    def __enter__(self) -> Front:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


async def test_blob_redirects_are_followed(registry: Registry, busybox: BuiltImage,
                                           store: ImageStore) -> None:
    registry.push(busybox, "test/redirect", "1")
    with Front(registry.url) as front:
        image = await pull(store, f"{front.host}/test/redirect:1")
    assert image.id == busybox.config_digest
    assert front.redirects == 2  # config and layer


async def test_announced_manifest_digest_is_checked(registry: Registry, busybox: BuiltImage,
                                                    store: ImageStore) -> None:
    registry.push(busybox, "test/lie", "1")
    with Front(registry.url, lie=True) as front:
        with pytest.raises(PullError) as err:
            await pull(store, f"{front.host}/test/lie:1")
    assert "manifest digest mismatch" in err.value.message
    assert busybox.manifest_digest in err.value.message
    assert store.list() == []


def test_parse_challenge() -> None:
    header = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
              'scope="repository:library/busybox:pull,push"')
    assert parse_challenge(header) == {"bearer": {
        "realm": "https://auth.docker.io/token", "service": "registry.docker.io",
        "scope": "repository:library/busybox:pull,push"}}
    assert parse_challenge('Basic realm="Registry Realm", Bearer realm="x\\"y",error=bad') == {
        "basic": {"realm": "Registry Realm"}, "bearer": {"realm": 'x"y', "error": "bad"}}


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    # 127.0.0.2 is not a loopback *name* the puller trusts with plain HTTP: it is spoken
    # to over HTTPS, as any registry.
    with Registry(tmp_path_factory.mktemp("tls-registry"), address="127.0.0.2",
                  tls=True) as reg:
        yield reg


async def test_https_verified_against_the_trust_store(
        tls_registry: Registry, busybox: BuiltImage, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    tls_registry.push(busybox, "test/tls", "1")
    ref = f"{tls_registry.host}/test/tls:1"
    with pytest.raises(PullError) as err:
        await pull(ImageStore(tmp_path / "untrusted"), ref)
    assert "failed to verify the registry's certificate" in err.value.message
    assert not err.value.unreachable

    monkeypatch.setenv("SSL_CERT_FILE", str(tls_registry.ca_path))  # the system trust store
    image = await pull(ImageStore(tmp_path / "trusted"), ref)
    assert image.id == busybox.config_digest


async def test_insecure_registry_https_unverified(tls_registry: Registry, busybox: BuiltImage,
                                                  store: ImageStore) -> None:
    tls_registry.push(busybox, "test/insecure-tls", "1")
    image = await pull(store, f"{tls_registry.host}/test/insecure-tls:1",
                       insecure_registries=[tls_registry.host])
    assert image.id == busybox.config_digest


async def test_insecure_registry_plain_http(tmp_path: Path, busybox: BuiltImage,
                                            store: ImageStore) -> None:
    with Registry(tmp_path / "registry", address="127.0.0.2") as reg:
        reg.push(busybox, "test/plain", "1")
        ref = f"{reg.host}/test/plain:1"
        with pytest.raises(PullError) as err:
            await pull(store, ref)  # HTTPS to a plain HTTP server
        assert "tls handshake failed" in err.value.message
        assert "insecure registry" in err.value.message
        image = await pull(store, ref, insecure_registries=[reg.host])
    assert image.id == busybox.config_digest
