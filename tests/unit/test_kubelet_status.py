"""Pod status generation, table-driven: phase, conditions and container states as
Kubernetes 1.32 reports them for each situation."""

from __future__ import annotations

from typing import Any

import pytest

from kubeling.kubelet.context import CONTAINER_NAME, POD_UID, RESTART_COUNT
from kubeling.kubelet.podruntime import PodRuntime
from kubeling.kubelet.podstatus import generate
from kubeling.runtime.protocol import (
    ContainerState,
    ContainerStatus,
    SandboxState,
    SandboxStatus,
)
from tests.unit.kubelet_fakes import ctr, make_pod

T0 = 1_700_000_000.0
SB = SandboxStatus(id="sb", uid="u1", namespace="ns", name="p", attempt=0,
                   state=SandboxState.READY, created_at=T0, ip="10.0.0.5")


def run(name: str, attempt: int = 0) -> ContainerStatus:
    return ContainerStatus(id=f"{name}{attempt}", sandbox_id="sb", name=name, attempt=attempt,
                           state=ContainerState.RUNNING, image="busybox:1.36",
                           image_ref="sha256:abc", created_at=T0 + attempt, started_at=T0 + 1,
                           labels={CONTAINER_NAME: name, POD_UID: "u1"},
                           annotations={RESTART_COUNT: str(attempt)})


def done(name: str, code: int, attempt: int = 0) -> ContainerStatus:
    c = run(name, attempt)
    return ContainerStatus(**{**c.__dict__, "state": ContainerState.EXITED, "exit_code": code,
                              "finished_at": T0 + 5,
                              "reason": "Completed" if code == 0 else "Error"})


def conds(status: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c.get("reason", ""), c.get("message", ""))
            for c in status["conditions"]}


CASES: list[tuple[str, dict[str, Any], list[ContainerStatus], dict[str, tuple[str, str]],
                  str, dict[str, str], dict[str, tuple[str, str, str]]]] = [
    ("nothing yet", {}, [], {}, "Pending", {"c": "waiting:ContainerCreating"},
     {"Ready": ("False", "ContainersNotReady", "containers with unready status: [c]"),
      "Initialized": ("True", "", ""), "PodScheduled": ("True", "", "")}),
    ("running", {}, [run("c")], {}, "Running", {"c": "running"},
     {"Ready": ("True", "", ""), "ContainersReady": ("True", "", ""),
      "PodReadyToStartContainers": ("True", "", "")}),
    ("never, failed", {"restart_policy": "Never"}, [done("c", 1)], {}, "Failed",
     {"c": "terminated:Error"},
     {"Ready": ("False", "ContainersNotReady", "containers with unready status: [c]")}),
    ("onfailure, succeeded", {"restart_policy": "OnFailure"}, [done("c", 0)], {},
     "Succeeded", {"c": "terminated:Completed"},
     {"Ready": ("False", "PodCompleted", ""), "ContainersReady": ("False", "PodCompleted", ""),
      "Initialized": ("True", "", "")}),
    ("crash loop", {}, [done("c", 1, 3), done("c", 1, 2)],
     {"c": ("CrashLoopBackOff", "back-off 40s restarting failed container=c pod=p_ns(u1)")},
     "Running", {"c": "waiting:CrashLoopBackOff"},
     {"Ready": ("False", "ContainersNotReady", "containers with unready status: [c]")}),
    ("config error before any start", {}, [],
     {"c": ("CreateContainerConfigError", 'configmap "x" not found')}, "Pending",
     {"c": "waiting:CreateContainerConfigError"}, {}),
    ("init running", {"init": [ctr("i")]}, [run("i")], {}, "Pending",
     {"i": "running", "c": "waiting:PodInitializing"},
     {"Initialized": ("False", "ContainersNotInitialized",
                      "containers with incomplete status: [i]")}),
    ("init failed, never", {"init": [ctr("i")], "restart_policy": "Never"}, [done("i", 1)], {},
     "Failed", {"i": "terminated:Error", "c": "waiting:PodInitializing"}, {}),
    ("init done, app running", {"init": [ctr("i")]}, [run("c"), done("i", 0)], {}, "Running",
     {"i": "terminated:Completed", "c": "running"}, {"Initialized": ("True", "", "")}),
    ("one of two running", {"containers": [ctr("a"), ctr("b")]}, [run("a")], {}, "Pending",
     {"a": "running", "b": "waiting:ContainerCreating"},
     {"ContainersReady": ("False", "ContainersNotReady",
                          "containers with unready status: [b]")}),
]


def _short(status: dict[str, Any]) -> str:
    (key, value), = status["state"].items()
    return f"{key}:{value['reason']}" if value.get("reason") and key != "running" else key


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_status_generation(case: Any) -> None:
    _, pod_args, containers, reasons, phase, states, conditions = case
    pod = make_pod(pod_args.pop("containers", [ctr("c")]), **pod_args)
    state = PodRuntime("u1", [SB], sorted(containers, key=lambda c: c.created_at,
                                          reverse=True))
    status = generate(pod, state, runtime_name="process", probes=None, reasons=reasons,
                      messages={}, host_ip="192.168.1.2", now=T0 + 10)
    assert status["phase"] == phase
    got = {s["name"]: _short(s) for s in
           status.get("initContainerStatuses", []) + status["containerStatuses"]}
    assert got == states
    have = conds(status)
    assert [c["type"] for c in status["conditions"]] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    for ctype, expected in conditions.items():
        assert have[ctype] == expected, ctype
    assert status["hostIP"] == "192.168.1.2" and status["podIP"] == "10.0.0.5"
    assert status["qosClass"] == "BestEffort"


def test_container_status_fields() -> None:
    pod = make_pod([ctr("c")])
    state = PodRuntime("u1", [SB], [run("c", 2), done("c", 1, 1)])
    status = generate(pod, state, runtime_name="process", probes=None, reasons={},
                      messages={"c1": "bye"}, host_ip="h", now=T0)
    cs = status["containerStatuses"][0]
    assert cs["containerID"] == "process://c2" and cs["restartCount"] == 2
    assert cs["ready"] is True and cs["started"] is True
    assert cs["imageID"] == "sha256:abc" and cs["image"] == "busybox:1.36"
    assert cs["state"] == {"running": {"startedAt": "2023-11-14T22:13:21Z"}}
    assert cs["lastState"] == {"terminated": {
        "exitCode": 1, "reason": "Error", "message": "bye", "startedAt": "2023-11-14T22:13:21Z",
        "finishedAt": "2023-11-14T22:13:25Z", "containerID": "process://c1"}}
