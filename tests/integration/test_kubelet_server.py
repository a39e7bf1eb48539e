"""The kubelet API over a real process runtime, alone and behind the API server's node proxy.

A registry, the API server on HTTPS, a KubeletServer on HTTPS (client certificates
required) over a ProcessRuntime, a Node pointing at it and a pod bound to it: logs and
exec then go the way kubectl's do, through the API server to the kubelet, driven by the
official Python client and by a plain WebSocket client speaking v5.channel.k8s.io.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from kubernetes import client as k8s
from kubernetes.stream import stream as k8s_stream
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from kubeling.apiserver.app import ApiServer
from kubeling.apiserver.auth import Authenticator, User
from kubeling.apiserver.certs import Pki, ensure_pki, issue
from kubeling.apiserver.server import Server, make_config
from kubeling.client.events import EventRecorder
from kubeling.client.informer import Informers
from kubeling.kubelet.context import (
    CONTAINER_NAME,
    POD_NAME,
    POD_NAMESPACE,
    POD_UID,
    KubeletContext,
    KubeletOptions,
)
from kubeling.kubelet.server import KubeletServer
from kubeling.runtime import RuntimeOptions, open_runtime
from kubeling.runtime.protocol import ContainerConfig, PodSandboxConfig, Runtime
from tests.apiharness import client, kind, node, running_registry

pytestmark = pytest.mark.skipif(shutil.which("sh") is None, reason="needs sh")


class NoObjects:
    def configmap(self, namespace: str, name: str) -> None:
        return None

    def secret(self, namespace: str, name: str) -> None:
        return None

    def pvc(self, namespace: str, name: str) -> None:
        return None

    def pv(self, name: str) -> None:
        return None

    def node(self) -> None:
        return None


@dataclass
class Setup:
    pki: Pki
    api_port: int
    kubelet_port: int
    runtime: Runtime
    options: KubeletOptions
    sandbox: PodSandboxConfig
    sandbox_id: str

    def python_client(self) -> k8s.CoreV1Api:
        conf = k8s.Configuration()
        conf.host = f"https://127.0.0.1:{self.api_port}"
        conf.ssl_ca_cert = str(self.pki.ca_cert)
        conf.cert_file = str(self.pki.admin_cert)
        conf.key_file = str(self.pki.admin_key)
        return k8s.CoreV1Api(k8s.ApiClient(conf))

    def ca_ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki.ca_cert))

    def admin_ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        ctx.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return ctx

    async def run(self, name: str, *command: str, attempt: int = 0) -> str:
        log_path = self.options.container_log_path(
            "default", "web", self.sandbox.uid, name, attempt)
        config = ContainerConfig(name=name, attempt=attempt, image="busybox",
                                 command=command, log_path=str(log_path),
                                 labels={CONTAINER_NAME: name, POD_UID: self.sandbox.uid,
                                         POD_NAME: "web", POD_NAMESPACE: "default"})
        cid = await self.runtime.create_container(self.sandbox_id, config, self.sandbox)
        await self.runtime.start_container(cid)
        return cid


async def wait_for_log(path: Path, text: bytes) -> None:
    for _ in range(500):
        if path.exists() and text in path.read_bytes():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} never showed {text!r}")


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    pki = ensure_pki(tmp_path / "server")
    kubelet_cert, kubelet_key = tmp_path / "kubelet.crt", tmp_path / "kubelet.key"
    issue(pki, kubelet_cert, kubelet_key, common_name="node-1", server_names=("127.0.0.1",))
    async with running_registry(tmp_path) as registry:
        c = client(registry)
        informers = Informers(c)
        options = KubeletOptions(node_name="node-1", root_dir=tmp_path / "agent",
                                 address="127.0.0.1", port=0)
        runtime = open_runtime("process", RuntimeOptions(root_dir=options.runtime_dir))
        ctx = KubeletContext(client=c, informers=informers, runtime=runtime, options=options,
                             recorder=EventRecorder(c, "kubelet", host="node-1"),
                             objects=NoObjects())
        kubelet = KubeletServer(ctx, cert_file=kubelet_cert, key_file=kubelet_key,
                                client_ca_file=pki.ca_cert)
        kubelet_port = await kubelet.start()
        admin = User("kubeling-admin", ("system:masters", "system:authenticated"))
        app = ApiServer(registry, Authenticator({"sometoken": admin}),
                        kubelet_client_cert=pki.kubelet_client_cert,
                        kubelet_client_key=pki.kubelet_client_key)
        server = Server(make_config(app, host="127.0.0.1", port=0, cert=pki.server_cert,
                                    key=pki.server_key, ca=pki.ca_cert))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        api_port = server.servers[0].sockets[0].getsockname()[1]
        n = node("node-1")
        n["status"]["addresses"] = [{"type": "InternalIP", "address": "127.0.0.1"}]
        n["status"]["daemonEndpoints"] = {"kubeletEndpoint": {"Port": kubelet_port}}
        await c.create(kind("", "nodes"), None, n)
        await c.create(kind("", "pods"), "default", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"nodeName": "node-1", "containers": [
                {"name": "app", "image": "busybox"}, {"name": "side", "image": "busybox"}]}})
        await c.create(kind("", "pods"), "default", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pending"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]}})
        sandbox = PodSandboxConfig(uid="uid-web", namespace="default", name="web",
                                   log_directory=str(options.pod_log_dir("default", "web",
                                                                         "uid-web")),
                                   labels={POD_NAMESPACE: "default", POD_NAME: "web",
                                           POD_UID: "uid-web"})
        sandbox_id = await runtime.run_pod_sandbox(sandbox)
        try:
            yield Setup(pki, api_port, kubelet_port, runtime, options, sandbox, sandbox_id)
        finally:
            await runtime.stop_pod_sandbox(sandbox_id)
            await runtime.remove_pod_sandbox(sandbox_id)
            await runtime.close()
            server.should_exit = True
            await serving
            await app.nodes.close()
            await kubelet.stop()


async def test_the_kubelet_wants_a_client_certificate(setup: Setup) -> None:
    await setup.run("app", "sh", "-c", "echo hello; sleep 60")
    url = f"https://127.0.0.1:{setup.kubelet_port}/containerLogs/default/web/app"
    anonymous = ssl.create_default_context(cafile=str(setup.pki.ca_cert))
    async with httpx.AsyncClient(verify=anonymous) as http:
        with pytest.raises(httpx.HTTPError):
            await http.get(url)
    async with httpx.AsyncClient(verify=setup.admin_ssl()) as http:
        assert (await http.get(
            f"https://127.0.0.1:{setup.kubelet_port}/healthz")).text == "ok"
        missing = await http.get(url.replace("/app", "/nope"))
        assert missing.status_code == 400
        assert missing.text == 'container "nope" in pod "web" is not available'


async def test_logs_through_the_api_server(setup: Setup) -> None:
    cid = await setup.run("app", "sh", "-c", "for i in 1 2 3 4; do echo line $i; done; "
                                             "echo oops >&2; sleep 60")
    status = await setup.runtime.container_status(cid)
    await wait_for_log(Path(status.log_path), b"oops")
    core = setup.python_client()

    def read(**kw: Any) -> str:
        return str(core.read_namespaced_pod_log("web", "default", container="app", **kw))

    assert await asyncio.to_thread(read) == "line 1\nline 2\nline 3\nline 4\noops\n"
    assert await asyncio.to_thread(read, tail_lines=2) == "line 4\noops\n"
    assert await asyncio.to_thread(read, limit_bytes=9) == "line 1\nli"
    stamped = await asyncio.to_thread(read, tail_lines=1, timestamps=True)
    assert stamped.endswith("Z oops\n") and stamped[:4].isdigit()
    with pytest.raises(k8s.ApiException) as err:
        await asyncio.to_thread(core.read_namespaced_pod_log, "web", "default")
    assert err.value.status == 400
    assert "a container name must be specified for pod web, choose one of: [app side]" in \
        err.value.body
    with pytest.raises(k8s.ApiException) as err:
        await asyncio.to_thread(read, previous=True)
    assert err.value.status == 400
    assert orjson.loads(err.value.body)["message"] == \
        'previous terminated container "app" in pod "web" not found'
    assert await asyncio.to_thread(core.read_namespaced_pod_log, "pending", "default") == ""


async def test_follow_ends_when_the_container_exits(setup: Setup) -> None:
    await setup.run("app", "sh", "-c", "echo start; sleep 1; echo end")
    headers = {"Authorization": "Bearer sometoken"}
    url = (f"https://127.0.0.1:{setup.api_port}/api/v1/namespaces/default/pods/web/log"
           "?container=app&follow=true")
    async with httpx.AsyncClient(verify=setup.ca_ssl(), timeout=30) as http:
        async with http.stream("GET", url, headers=headers) as resp:
            assert resp.status_code == 200
            body = b"".join([chunk async for chunk in resp.aiter_bytes()])
    assert body == b"start\nend\n"


async def test_exec_through_the_api_server_python_client(setup: Setup) -> None:
    await setup.run("app", "sleep", "60")
    core = setup.python_client()

    def run(command: list[str], stdin: bytes | None = None) -> tuple[str, str, int]:
        resp = k8s_stream(core.connect_get_namespaced_pod_exec, "web", "default",
                          container="app", command=command, stderr=True, stdin=stdin is not None,
                          stdout=True, tty=False, _preload_content=False)
        if stdin is not None:
            resp.write_stdin(stdin.decode())
        resp.run_forever(timeout=10)
        out, err = resp.read_stdout(), resp.read_stderr()
        resp.close()
        return out, err, int(resp.returncode)

    assert await asyncio.to_thread(run, ["sh", "-c", "echo hi; echo there >&2"]) == \
        ("hi\n", "there\n", 0)
    assert (await asyncio.to_thread(run, ["sh", "-c", "exit 3"]))[2] == 3
    assert (await asyncio.to_thread(run, ["head", "-c", "5"], b"abcdefgh"))[0] == "abcde"


async def test_exec_v5_stdin_close_and_exit_status(setup: Setup) -> None:
    await setup.run("app", "sleep", "60")
    url = (f"wss://127.0.0.1:{setup.api_port}/api/v1/namespaces/default/pods/web/exec"
           "?container=app&command=sh&command=-c&command=cat%3B+exit+4&stdin=true&stdout=true"
           "&stderr=true")
    async with connect(url, ssl=setup.admin_ssl(),
                       subprotocols=[Subprotocol("v5.channel.k8s.io"),
                                     Subprotocol("v4.channel.k8s.io")]) as ws:
        assert ws.subprotocol == "v5.channel.k8s.io"
        await ws.send(b"\x00piped input\n")
        await ws.send(b"\xff\x00")
        out, status = b"", None
        async for message in ws:
            assert isinstance(message, bytes)
            if message[0] == 1:
                out += message[1:]
            elif message[0] == 3:
                status = orjson.loads(message[1:])
    assert out == b"piped input\n"
    assert status is not None and status["reason"] == "NonZeroExitCode"
    assert status["message"] == ("command terminated with non-zero exit code: error executing "
                                 "command [sh -c cat; exit 4], exit code 4")


async def test_stream_requests_refused_with_kubernetes_errors(setup: Setup) -> None:
    base = f"https://127.0.0.1:{setup.api_port}/api/v1/namespaces/default/pods"
    headers = {"Authorization": "Bearer sometoken"}
    async with httpx.AsyncClient(verify=setup.ca_ssl()) as http:
        r = await http.get(f"{base}/web/exec?container=nope&command=true&stdout=1",
                           headers=headers)
        assert r.status_code == 400
        assert r.json()["message"] == "container nope is not valid for pod web"
        r = await http.get(f"{base}/pending/exec?command=true&stdout=1", headers=headers)
        assert r.json()["message"] == "pod pending does not have a host assigned"
        r = await http.post(f"{base}/web/exec?container=app&command=true&stdout=1",
                            headers={**headers, "Connection": "Upgrade",
                                     "Upgrade": "SPDY/3.1"})
        assert r.status_code == 400 and "WebSocket" in r.json()["message"]
        r = await http.get(f"{base}/ghost/log", headers=headers)
        assert r.status_code == 404
        r = await http.get(f"{base}/web/log?container=app")
        assert r.status_code == 401


async def test_exec_with_a_tty_and_resize(setup: Setup) -> None:
    await setup.run("app", "sleep", "60")
    url = (f"wss://127.0.0.1:{setup.api_port}/api/v1/namespaces/default/pods/web/exec"
           "?container=app&command=sh&stdin=true&stdout=true&tty=true")
    async with connect(url, ssl=setup.admin_ssl(),
                       subprotocols=[Subprotocol("v5.channel.k8s.io")]) as ws:
        await ws.send(b"\x04" + orjson.dumps({"Width": 101, "Height": 33}))
        await ws.send(b"\x00stty size; exit 2\n")
        out, status = b"", None
        async for message in ws:
            assert isinstance(message, bytes)
            if message[0] == 1:
                out += message[1:]
            elif message[0] == 3:
                status = orjson.loads(message[1:])
    assert b"33 101" in out
    assert status is not None and status["details"]["causes"][0]["message"] == "2"
