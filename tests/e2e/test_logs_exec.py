"""kubectl logs, exec and attach end to end: the real kubectl and the official Python client,
through the API server's node proxy to the server's own node (process runtime)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.stream import stream as k8s_stream

from tests.cluster import Cluster, require, wait_for

NS = "streams"
LINES = "for i in 1 2 3 4 5; do echo line $i; done; echo oops >&2"


def pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"terminationGracePeriodSeconds": 1, **spec,
                                "containers": containers}})


def sh(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox:1.36", "command": ["sh", "-c", script], **extra}


def phase_and_restarts(cluster: Cluster, name: str) -> tuple[str, int]:
    res = cluster.kubectl("get", "pod", name, "-n", NS, "-o", "json", check=False)
    if res.returncode != 0:
        return "", 0
    status = json.loads(res.stdout).get("status") or {}
    restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or ())
    return str(status.get("phase", "")), restarts


@pytest.fixture(scope="module")
def cluster(agent_cluster: Cluster) -> Iterator[Cluster]:
    require("kubectl")
    c = agent_cluster
    c.kubectl("create", "namespace", NS)
    c.kubectl("apply", "-n", NS, "-f", "-", input=pod("web", [
        sh("app", f"{LINES}; sleep 3600"), sh("side", "echo side up; sleep 3600")]))
    wait_for("pod web running", lambda: phase_and_restarts(c, "web")[0] == "Running",
             timeout=60)
    yield c
    c.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def logs(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("logs", "-n", NS, *args, check=check)


def test_logs_with_every_flag(cluster: Cluster) -> None:
    def logged() -> bool:
        return "oops" in logs(cluster, "web", "-c", "app").stdout

    wait_for("web's output", logged, timeout=20)
    assert logs(cluster, "web", "-c", "app").stdout == \
        "line 1\nline 2\nline 3\nline 4\nline 5\noops\n"
    assert logs(cluster, "web", "-c", "app", "--tail=2").stdout == "line 5\noops\n"
    assert logs(cluster, "web", "-c", "app", "--limit-bytes=10").stdout == "line 1\nlin"
    stamped = logs(cluster, "web", "-c", "app", "--timestamps", "--tail=1").stdout
    when, _, text = stamped.partition(" ")
    assert text == "oops\n"
    written = datetime.fromisoformat(when.split(".")[0].rstrip("Z") + "+00:00")
    assert abs((datetime.now(UTC) - written).total_seconds()) < 3600
    assert logs(cluster, "web", "-c", "app", "--since=1h").stdout.count("\n") == 6
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert logs(cluster, "web", "-c", "app", f"--since-time={future}").stdout == ""
    both = logs(cluster, "web", "--all-containers").stdout
    assert "line 5\n" in both and "side up\n" in both
    bad = logs(cluster, "web", "-c", "nope", check=False)
    assert bad.returncode != 0
    assert "container nope is not valid for pod web" in bad.stderr


def test_logs_follow_ends_with_the_container(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-n", NS, "-f", "-", input=pod(
        "follow", [sh("main", "echo first; sleep 2; echo second")], restartPolicy="Never"))
    wait_for("pod follow started",
             lambda: phase_and_restarts(cluster, "follow")[0] in ("Running", "Succeeded"),
             timeout=30)
    started = time.monotonic()
    res = logs(cluster, "follow", "-f")
    assert res.stdout == "first\nsecond\n"
    assert time.monotonic() - started < 30


def test_logs_previous(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-n", NS, "-f", "-", input=pod(
        "crash", [sh("main", "echo run at $(date +%s%N); sleep 1; exit 1")]))
    wait_for("a restart", lambda: phase_and_restarts(cluster, "crash")[1] >= 1, timeout=60)
    previous = logs(cluster, "crash", "--previous").stdout
    assert previous.startswith("run at ")


def test_exec_exit_codes_and_stdin(cluster: Cluster) -> None:
    res = cluster.kubectl("exec", "-n", NS, "web", "-c", "app", "--", "sh", "-c",
                          "echo out; echo err >&2; exit 3", check=False)
    assert res.returncode == 3
    assert res.stdout == "out\n" and "err\n" in res.stderr
    ok = cluster.kubectl("exec", "-n", NS, "web", "-c", "app", "--", "echo", "fine")
    assert ok.stdout == "fine\n"
    piped = cluster.kubectl("exec", "-i", "-n", NS, "web", "-c", "app", "--", "sh", "-c",
                            "tr a-z A-Z", input="piped input\n")
    assert piped.stdout == "PIPED INPUT\n"
    bad = cluster.kubectl("exec", "-n", NS, "web", "-c", "nope", "--", "true", check=False)
    assert bad.returncode != 0 and "container nope is not valid for pod web" in bad.stderr


def run_in_pty(cluster: Cluster, args: list[str], *, rows: int, cols: int,
               typed: bytes = b"", timeout: float = 30) -> tuple[int, bytes]:
    """Run kubectl with a terminal of ``rows`` x ``cols`` as its stdio."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(["kubectl", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=cluster.env(), start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    if typed:
        time.sleep(1.0)
        os.write(master, typed)
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=5), out
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_exec_with_a_tty(cluster: Cluster) -> None:
    code, out = run_in_pty(cluster, ["exec", "-it", "-n", NS, "web", "-c", "app", "--", "sh",
                                     "-c", "stty size; test -t 0 && echo is-a-tty"],
                           rows=33, cols=101)
    assert code == 0, out
    assert b"33 101" in out and b"is-a-tty" in out


def test_exec_interactive_shell_in_a_tty(cluster: Cluster) -> None:
    code, out = run_in_pty(cluster, ["exec", "-it", "-n", NS, "web", "-c", "app", "--", "sh"],
                           rows=24, cols=80, typed=b"echo $((6*7))\nexit 5\n")
    assert b"42" in out, out
    assert code == 5


def test_attach(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-n", NS, "-f", "-", input=pod("talker", [sh(
        "main", "sleep 2; i=0; while [ $i -lt 6 ]; do echo tick $i; i=$((i+1)); sleep 0.3; "
                "done")], restartPolicy="Never"))
    wait_for("pod talker running", lambda: phase_and_restarts(cluster, "talker")[0] ==
             "Running", timeout=30)
    res = cluster.kubectl("attach", "-n", NS, "talker", check=False, timeout=30)
    assert "tick 5" in res.stdout, res.stderr
    assert res.returncode == 0


def test_python_client_stream(cluster: Cluster) -> None:
    cfg = k8s.Configuration()
    k8s_config.load_kube_config(str(cluster.kubeconfig), client_configuration=cfg)
    core = k8s.CoreV1Api(k8s.ApiClient(cfg))
    out = k8s_stream(core.connect_get_namespaced_pod_exec, "web", NS, container="app",
                     command=["sh", "-c", "echo from python"], stderr=True, stdin=False,
                     stdout=True, tty=False)
    assert out == "from python\n"
    resp = k8s_stream(core.connect_get_namespaced_pod_exec, "web", NS, container="app",
                      command=["sh", "-c", "read x; echo got $x; exit 7"], stderr=True,
                      stdin=True, stdout=True, tty=False, _preload_content=False)
    resp.write_stdin("value\n")
    resp.run_forever(timeout=20)
    assert resp.read_stdout() == "got value\n"
    assert resp.returncode == 7
    resp.close()
    with pytest.raises(k8s.ApiException) as err:
        k8s_stream(core.connect_get_namespaced_pod_exec, "web", NS,
                   command=["true"], stdout=True, stdin=False, stderr=False, tty=False)
    assert "a container name must be specified for pod web, choose one of: [app side]" in \
        str(err.value)


def test_exec_into_a_completed_pod(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-n", NS, "-f", "-", input=pod(
        "done", [sh("main", "true")], restartPolicy="Never"))
    wait_for("pod done succeeded", lambda: phase_and_restarts(cluster, "done")[0] ==
             "Succeeded", timeout=30)
    res = cluster.kubectl("exec", "-n", NS, "done", "--", "true", check=False)
    assert res.returncode != 0
    assert "cannot exec into a container in a completed pod; current phase is Succeeded" in \
        res.stderr


def test_an_spdy_client_is_told_why(cluster: Cluster, tmp_path: Path) -> None:
    from tests.e2e.test_kubectl_120 import kubectl_120

    res = cluster.kubectl("exec", "-n", NS, "web", "-c", "app", "--", "true", check=False,
                          binary=kubectl_120(), env={"KUBECACHEDIR": str(tmp_path)},
                          timeout=30)
    assert res.returncode != 0
    assert "SPDY upgrades are not supported" in res.stderr
