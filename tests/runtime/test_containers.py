"""Conformance: version, sandboxes, and containers' lifecycle, exit codes and context."""

from __future__ import annotations

import os
import signal

import pytest

from kubeling.runtime.protocol import (
    ContainerState,
    NotFound,
    RuntimeFailure,
    SandboxState,
)
from tests.runtime.conftest import IMAGE, Harness, log_entries


async def test_version_names_the_runtime(rt: Harness) -> None:
    version = await rt.runtime.version()
    assert version.runtime_name in (rt.name, "runc", "crun")
    assert version.runtime_version


async def test_sandbox_lifecycle_keeps_labels(rt: Harness) -> None:
    sid, config = await rt.sandbox("web")
    status = await rt.runtime.pod_sandbox_status(sid)
    assert status.state == SandboxState.READY
    assert (status.uid, status.namespace, status.name) == (config.uid, "default", "web")
    assert status.labels == config.labels and status.annotations == {"note": "kept"}
    assert status.ip
    assert [s.id for s in await rt.runtime.list_pod_sandboxes()] == [sid]

    await rt.runtime.stop_pod_sandbox(sid)
    assert (await rt.runtime.pod_sandbox_status(sid)).state == SandboxState.NOTREADY
    await rt.runtime.stop_pod_sandbox(sid)  # stopping again succeeds
    await rt.runtime.remove_pod_sandbox(sid)
    assert await rt.runtime.list_pod_sandboxes() == []
    with pytest.raises(NotFound):
        await rt.runtime.pod_sandbox_status(sid)
    await rt.runtime.remove_pod_sandbox(sid)  # removing again succeeds


async def test_container_created_then_started(rt: Harness) -> None:
    cid, config = await rt.run("sleep", "30", start=False)
    status = await rt.runtime.container_status(cid)
    assert status.state == ContainerState.CREATED
    assert status.name == "c" and status.image == IMAGE and status.image_ref
    assert status.labels == config.labels and status.annotations == config.annotations
    assert status.log_path == config.log_path and status.created_at > 0
    await rt.runtime.start_container(cid)
    status = await rt.wait_state(cid, ContainerState.RUNNING)
    assert status.started_at >= status.created_at and status.pid > 0
    assert [c.id for c in await rt.runtime.list_containers(status.sandbox_id)] == [cid]
    assert await rt.runtime.list_containers("no-such-sandbox") == []


@pytest.mark.parametrize(("script", "code", "reason"), [
    ("exit 0", 0, "Completed"),
    ("exit 3", 3, "Error"),
    ("kill -KILL $$", 137, "Error"),
])
async def test_exit_codes_and_reasons(rt: Harness, script: str, code: int,
                                      reason: str) -> None:
    if "$$" in script and rt.name != "process":
        pytest.skip("a container's main process is PID 1 of its PID namespace: a signal it "
                    "sends itself without a handler is ignored (see the next test)")
    cid, _ = await rt.run("sh", "-c", script)
    status = await rt.exited(cid)
    assert (status.exit_code, status.reason) == (code, reason)
    assert status.finished_at >= status.started_at > 0


async def test_killed_by_a_signal_is_128_plus_its_number(rt: Harness) -> None:
    cid, _ = await rt.run("sleep", "300")
    status = await rt.wait_state(cid, ContainerState.RUNNING)
    os.kill(status.pid, signal.SIGKILL)
    status = await rt.exited(cid)
    assert (status.exit_code, status.reason) == (137, "Error")


async def test_missing_executable_is_a_start_error(rt: Harness) -> None:
    cid, _ = await rt.run("no-such-binary-anywhere", "x")
    status = await rt.exited(cid)
    assert status.exit_code == 128 and status.reason == "StartError"
    assert 'exec: "no-such-binary-anywhere": executable file not found in $PATH' \
        in status.message


async def test_empty_command_is_refused(rt: Harness) -> None:
    if rt.name != "process":
        pytest.skip("other runtimes take the command from the image")
    sid, sandbox = await rt.sandbox()
    with pytest.raises(RuntimeFailure) as failure:
        await rt.runtime.create_container(sid, rt.container_config(sandbox, ()), sandbox)
    assert failure.value.reason == "CreateContainerError"
    assert "host binaries" in failure.value.message


async def test_env_args_and_working_dir(rt: Harness) -> None:
    cid, config = await rt.run(
        "sh", "-c", 'echo "$GREETING|$1|$(pwd)|$PATH"', "argv0", "first arg",
        env=(("GREETING", "hello world"),), working_dir="/tmp/kubeling-rt-wd")
    assert (await rt.exited(cid)).exit_code == 0
    [(_, _, _, line)] = log_entries(config.log_path)
    greeting, arg, cwd, path = line.decode().split("|")
    assert (greeting, arg, cwd) == ("hello world", "first arg", "/tmp/kubeling-rt-wd")
    assert "/bin" in path


async def test_environment_is_exactly_as_given(rt: Harness,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBELING_AGENT_ONLY", "leaked")
    cid, config = await rt.run("sh", "-c", "env", env=(("ONLY", "this"),))
    await rt.exited(cid)
    env = dict(line.split(b"=", 1) for *_, line in log_entries(config.log_path))
    assert env[b"ONLY"] == b"this" and env[b"PATH"]  # a default PATH when none is given
    assert b"KUBELING_AGENT_ONLY" not in env


async def test_start_twice_fails(rt: Harness) -> None:
    cid, _ = await rt.run("sleep", "30")
    with pytest.raises(RuntimeFailure):
        await rt.runtime.start_container(cid)


async def test_unknown_ids_are_not_found(rt: Harness) -> None:
    with pytest.raises(NotFound):
        await rt.runtime.container_status("nope")
    with pytest.raises(NotFound):
        await rt.runtime.start_container("nope")
    await rt.runtime.stop_container("nope", 1)
    await rt.runtime.remove_container("nope")
