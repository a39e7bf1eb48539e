"""A real ``kubeling server`` process for tests, and kubectl pointed at it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


# The server's own node in agent tests: a fixed name, free ports, a short restart back-off.
AGENT_NODE = "kubeling-server"
AGENT_FLAGS = ("--node-name", AGENT_NODE, "--kubelet-port", "0", "--kubelet-health-port", "0",
               "--container-backoff-initial", "1s", "--container-backoff-max", "8s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kill_containers(root: Path) -> int:
    """Kill the container shims under ``root`` and everything they run: containers outlive
    their agent by design, so a test's teardown must end them. Returns how many it killed."""
    import psutil

    killed = 0
    marker = str(root)
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if not any(marker in part for part in cmdline) or not any(
                part.endswith("shim.py") for part in cmdline):
            continue
        try:
            victims = [*proc.children(recursive=True), proc]
        except psutil.NoSuchProcess:
            continue
        for victim in victims:
            try:
                victim.kill()
                killed += 1
            except psutil.NoSuchProcess:
                pass
    return killed


def require(tool: str) -> str:
    """The path of a prerequisite; missing one is a failure under CI=true, a skip otherwise."""
    import pytest

    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is required in CI but is not installed")
        pytest.skip(f"{tool} is not installed")
    return path


@dataclass
class Cluster:
    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    agent: bool = False  # run the server's own node agent (off: pods only on hollow nodes)
    runtime: str = "process"  # the agent's --runtime
    proxy: bool = False  # run the agent's service proxy (off: no host nftables rules)
    log_path: Path = field(init=False)
    cache_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir / "server.log"
        self.cache_dir = self.data_dir / "kubectl-cache"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    @property
    def token(self) -> str:
        return (self.data_dir / "pki" / "admin.token").read_text().strip()

    @property
    def ca(self) -> Path:
        return self.data_dir / "pki" / "ca.crt"

    def start(self, *extra: str, wait: bool = True) -> None:
        log = open(self.log_path, "ab")
        agent = (*AGENT_FLAGS, "--runtime", self.runtime) if self.agent else \
            ("--disable-agent",)
        if self.agent and not self.proxy:
            agent = (*agent, "--disable-kube-proxy")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubeling.cli.main", "server", "--data-dir",
             str(self.data_dir), "--listen", f"127.0.0.1:{self.port}", *agent, *extra],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        ctx = ssl.create_default_context(cafile=None)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", context=ctx, timeout=2) as r:
                    if r.status == 200 and self.kubeconfig.exists():
                        return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s ({last}):\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig),
                "KUBECACHEDIR": str(self.cache_dir)}

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                binary: str = "kubectl", env: dict[str, str] | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this cluster."""
        res = subprocess.run([binary, *args], capture_output=True, text=True, input=input,
                             env={**self.env(), **(env or {})}, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res


def wait_for(what: str, fn: object, timeout: float = 10.0, interval: float = 0.05) -> object:
    """Poll ``fn`` until it returns something truthy; fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = fn()  # type: ignore[operator]
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


async def wait_for_async(what: str, fn: object, timeout: float = 10.0,
                         interval: float = 0.02) -> object:
    """``wait_for`` for async tests: ``fn`` may be sync or return an awaitable."""
    import asyncio
    import inspect

    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = fn()  # type: ignore[operator]
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@dataclass
class Component:
    """A ``kubeling <command>`` process (hollow-nodes, scheduler, controller-manager) run
    against a :class:`Cluster` through its kubeconfig."""

    cluster: Cluster
    command: str
    args: tuple[str, ...] = ()
    name: str = ""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.cluster.data_dir / f"{self.name or self.command}.log"

    def start(self) -> Component:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubeling.cli.main", self.command,
             "--kubeconfig", str(self.cluster.kubeconfig), *self.args],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    def wait_log(self, text: str, timeout: float = 30.0) -> None:
        """Wait until the process has written ``text`` (fail if it exits first)."""
        def seen() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.command} exited with {self.proc.returncode}:\n"
                                     f"{self.log_tail()}")
            return text in self.log_path.read_text(errors="replace")
        wait_for(f"{self.command} to log {text!r}", seen, timeout=timeout, interval=0.1)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def start_hollow_nodes(cluster: Cluster, count: int, *args: str,
                       timeout: float = 60.0) -> Component:
    """``kubeling hollow-nodes --count N`` against ``cluster``, once its nodes are registered."""
    hollow = Component(cluster, "hollow-nodes", ("--count", str(count), *args)).start()
    hollow.wait_log(f"{count} hollow nodes ready", timeout=timeout)
    return hollow
