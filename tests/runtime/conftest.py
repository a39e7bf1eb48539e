"""The runtime fixtures: one ``rt`` per runtime in RUNTIMES, so every conformance test runs
against every runtime through the Runtime protocol only.

Adding a runtime is one line in RUNTIMES (its name and the host tools it needs; a missing
tool skips, or fails under CI=true). Container commands use only what a busybox image has
(sh, cat, sleep, stty, tty...), so that the suite runs unchanged where containers run images.

The OCI runtime needs root, an image and a pod network: its store gets the busybox image
(built once per session from busybox-static, tests/imagebuild.py) before each test, and its
network a bridge and pod CIDR of this pytest process's own (10.88.<n>.0/24 on klrt<n>).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kubeling.runtime import RuntimeOptions, open_runtime
from kubeling.runtime.protocol import (
    ContainerConfig,
    ContainerState,
    ContainerStatus,
    PodSandboxConfig,
    Runtime,
    StreamSession,
)
from tests.cluster import require
from tests.imagebuild import BuiltImage

# runtime name -> host tools it needs
RUNTIMES: dict[str, tuple[str, ...]] = {
    "process": ("sh",),
    "oci": ("runc", "busybox"),
}

IMAGE = "busybox:1.36"
LOG_MAX_BYTES = 64 * 1024
LOG_MAX_FILES = 3


@dataclass
class Harness:
    """A runtime over a temporary root, with shorthands for the sandboxes and containers a
    test makes. Everything it made is removed at the end of the test."""

    runtime: Runtime
    name: str
    root: Path
    logs: Path
    options: RuntimeOptions
    sandboxes: list[str] = field(default_factory=list)
    counter: int = 0
    pullable: str = IMAGE  # a reference pull_image really fetches (a local registry for oci)

    async def ensure_image(self, image: str = IMAGE) -> str:
        """The image present, pulled only when it is not (the kubelet's IfNotPresent)."""
        info = await self.runtime.image_status(image)
        return info.id if info is not None else await self.runtime.pull_image(image)

    def sandbox_config(self, name: str = "pod", **kw: object) -> PodSandboxConfig:
        self.counter += 1
        uid = f"uid-{self.counter}"
        return PodSandboxConfig(
            uid=uid, namespace="default", name=name,
            log_directory=str(self.logs / f"default_{name}_{uid}"),
            labels={"io.kubernetes.pod.name": name, "io.kubernetes.pod.uid": uid},
            annotations={"note": "kept"}, **kw)  # type: ignore[arg-type]

    async def sandbox(self, name: str = "pod") -> tuple[str, PodSandboxConfig]:
        config = self.sandbox_config(name)
        sid = await self.runtime.run_pod_sandbox(config)
        self.sandboxes.append(sid)
        return sid, config

    def container_config(self, sandbox: PodSandboxConfig, command: tuple[str, ...],
                         name: str = "c", **kw: object) -> ContainerConfig:
        attempt = int(kw.pop("attempt", 0))  # type: ignore[call-overload]
        return ContainerConfig(
            name=name, attempt=attempt, image=IMAGE, command=command,
            log_path=f"{sandbox.log_directory}/{name}/{attempt}.log",
            labels={"io.kubernetes.container.name": name},
            annotations={"io.kubernetes.container.restartCount": str(attempt)},
            **kw)  # type: ignore[arg-type]

    async def run(self, *command: str, name: str = "c", start: bool = True,
                  **kw: object) -> tuple[str, ContainerConfig]:
        """A new sandbox with one container running ``command``."""
        sid, sandbox = await self.sandbox(f"pod-{name}-{self.counter + 1}")
        await self.ensure_image(IMAGE)
        config = self.container_config(sandbox, tuple(command), name=name, **kw)
        cid = await self.runtime.create_container(sid, config, sandbox)
        if start:
            await self.runtime.start_container(cid)
        return cid, config

    async def wait_state(self, cid: str, state: ContainerState,
                         timeout: float = 10.0) -> ContainerStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = await self.runtime.container_status(cid)
            if status.state == state:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"container {status.name} is {status.state}, not {state}")
            await asyncio.sleep(0.02)

    async def exited(self, cid: str, timeout: float = 10.0) -> ContainerStatus:
        return await self.wait_state(cid, ContainerState.EXITED, timeout)


async def eventually(what: str, check: Callable[[], Awaitable[object] | object],
                     timeout: float = 10.0) -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if isinstance(last, Awaitable):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def read_until(session: StreamSession, wanted: bytes, timeout: float = 10.0,
                     stream: int | None = None) -> bytes:
    """Output of ``session`` until it contains ``wanted`` (or the session ends)."""
    seen = b""

    async def pump() -> bytes:
        nonlocal seen
        while wanted not in seen:
            got, data = await session.read()
            if got == 0:
                break
            if stream is None or got == stream:
                seen += data
        return seen

    try:
        return await asyncio.wait_for(pump(), timeout)
    except TimeoutError:
        raise AssertionError(f"no {wanted!r} in the output; got {seen!r}") from None


async def read_all(session: StreamSession, timeout: float = 10.0) -> dict[int, bytes]:
    out: dict[int, bytes] = {1: b"", 2: b""}

    async def pump() -> None:
        while True:
            got, data = await session.read()
            if got == 0:
                return
            out[got] += data

    await asyncio.wait_for(pump(), timeout)
    return out


def log_bytes(path: str | Path) -> bytes:
    """The raw log file, b"" while it does not exist."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return b""


def log_entries(path: str | Path) -> list[tuple[str, str, bool, bytes]]:
    from kubeling.runtime.crilog import parse_line

    with open(path, "rb") as f:
        return [parse_line(line) for line in f]


@pytest.fixture(params=sorted(RUNTIMES))
def runtime_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    for tool in RUNTIMES[name]:
        require(tool)
    return name


def make_options(root: Path) -> RuntimeOptions:
    return RuntimeOptions(root_dir=root, node_ip="127.0.0.1", log_max_bytes=LOG_MAX_BYTES,
                          log_max_files=LOG_MAX_FILES)


@dataclass(frozen=True)
class PodNet:
    bridge: str
    cidr: str


def pod_net() -> PodNet:
    """A bridge and a /24 of this test process's own: pytest processes running at once
    (xdist workers, or suites run side by side) never share a bridge, and none takes the
    agent's default bridge, whose CIDR the e2e clusters own."""
    n = os.getpid() % 250
    return PodNet(bridge=f"klrt{n}", cidr=f"10.88.{n}.0/24")


def pod_cidr() -> str:
    return pod_net().cidr


@pytest.fixture(scope="session")
def network_bridge() -> Iterator[PodNet]:
    net = pod_net()
    yield net
    subprocess.run(["ip", "link", "del", "dev", net.bridge], capture_output=True, check=False)


@pytest.fixture(scope="session")
def busybox_built(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    from tests.imagebuild import build_image

    return build_image(tmp_path_factory.mktemp("images") / "busybox.tar", name=IMAGE)


@pytest.fixture(scope="session")
def busybox_image(busybox_built: BuiltImage) -> Path:
    return busybox_built.path


@pytest.fixture(scope="session")
def busybox_registry(tmp_path_factory: pytest.TempPathFactory,
                     busybox_built: BuiltImage) -> Iterator[str]:
    """A real registry on loopback serving the busybox image; its reference."""
    require("docker-registry")
    from tests.registry import Registry

    with Registry(tmp_path_factory.mktemp("registry")) as registry:
        registry.push(busybox_built, "library/busybox", "1.36")
        yield f"{registry.host}/library/busybox:1.36"


async def prepare(name: str, options: RuntimeOptions, runtime: Runtime,
                  request: pytest.FixtureRequest) -> None:
    """What a runtime needs before the suite's tests: for oci, the image and a pod CIDR."""
    if name != "oci":
        return
    if os.geteuid() != 0:
        pytest.skip("the OCI runtime needs root")
    from kubeling.runtime.images import ImageStore
    from kubeling.runtime.network import conflist

    image: Path = request.getfixturevalue("busybox_image")
    ImageStore(options.images_dir or options.root_dir / "images").import_archive(image)
    # The test network, as a user's CNI configuration sorting before the runtime's own.
    net: PodNet = request.getfixturevalue("network_bridge")
    conf_dir = options.cni_conf_dir or options.root_dir / "cni" / "net.d"
    conf_dir.mkdir(parents=True, exist_ok=True)
    doc = conflist.kubeling_conflist(net.cidr, bridge=net.bridge,
                                     ipam_dir=options.root_dir / "net" / "ipam")
    (conf_dir / "05-tests.conflist").write_text(json.dumps(doc))
    await runtime.update_runtime_config(net.cidr)


@pytest.fixture
async def rt(runtime_name: str, tmp_path: Path,
             request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    options = make_options(tmp_path / "runtime")
    harness = Harness(runtime=open_runtime(runtime_name, options), name=runtime_name,
                      root=tmp_path / "runtime", logs=tmp_path / "logs", options=options)
    await prepare(runtime_name, options, harness.runtime, request)
    if runtime_name == "oci":
        harness.pullable = request.getfixturevalue("busybox_registry")
    try:
        yield harness
    finally:
        cleanup = open_runtime(runtime_name, options)
        for sandbox in await cleanup.list_pod_sandboxes():
            await cleanup.remove_pod_sandbox(sandbox.id)
        await cleanup.close()
        await harness.runtime.close()
