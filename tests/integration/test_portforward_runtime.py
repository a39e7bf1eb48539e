"""Runtime.port_forward against both runtimes (the conformance fixtures of tests/runtime):
a server listening on 127.0.0.1 only, inside the pod, is reached (for the OCI runtime that
proves the connection is made in the pod's own network namespace), and a closed port is
refused with the kubelet's wording."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kubeling.runtime.protocol import ContainerStatus, RuntimeFailure
from tests.cluster import free_port
from tests.runtime import conftest as runtime_fixtures
from tests.runtime.conftest import Harness, eventually

# The conformance suite's fixtures, by name: one rt per runtime.
rt = runtime_fixtures.rt
runtime_name = runtime_fixtures.runtime_name
network_bridge = runtime_fixtures.network_bridge
busybox_built = runtime_fixtures.busybox_built
busybox_image = runtime_fixtures.busybox_image
busybox_registry = runtime_fixtures.busybox_registry


@pytest.fixture
def www(tmp_path: Path) -> Path:
    """The served directory (on the host's disk under the process runtime; inside the
    container's own root under the OCI runtime)."""
    return tmp_path / "www"


async def _listening(rt: Harness, port: int, www: Path) -> tuple[str, ContainerStatus]:
    script = (f"mkdir -p {www} && echo hello from the pod > {www}/index.html && "
              f"exec busybox httpd -f -p 127.0.0.1:{port} -h {www}")
    cid, _ = await rt.run("sh", "-c", script, name="server")
    status = await rt.runtime.container_status(cid)
    return status.sandbox_id, status


async def test_reaches_a_loopback_only_server_in_the_pod(rt: Harness, www: Path) -> None:
    port = free_port()
    sandbox, _ = await _listening(rt, port, www)

    async def answered() -> bytes | None:
        try:
            reader, writer = await rt.runtime.port_forward(sandbox, port)
        except RuntimeFailure:
            return None
        try:
            writer.write(b"GET /index.html HTTP/1.0\r\n\r\n")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), 5)
            return data.partition(b"\r\n\r\n")[2] or None
        finally:
            writer.close()

    assert await eventually("the pod's server answers", answered) == b"hello from the pod\n"
    if rt.name == "oci":  # the pod's loopback is not the host's
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)


async def test_a_closed_port_is_refused(rt: Harness, www: Path) -> None:
    sandbox, _ = await _listening(rt, free_port(), www)
    closed = free_port()
    with pytest.raises(RuntimeFailure) as failure:
        await rt.runtime.port_forward(sandbox, closed)
    assert failure.value.reason == "PortForwardError"
    assert f"127.0.0.1:{closed}: connect: connection refused" in failure.value.message


async def test_an_unknown_sandbox_is_not_found(rt: Harness) -> None:
    with pytest.raises(RuntimeFailure):
        await rt.runtime.port_forward("0" * 64, 80)
