"""The API server's checks before it proxies pods/log, exec and attach, in Kubernetes' words."""

from __future__ import annotations

from typing import Any

import pytest

from kubeling.api.errors import StatusError
from kubeling.apiserver.nodeproxy import check_log_status, choose_container


def pod(statuses: list[dict[str, Any]] | None = None, containers: tuple[str, ...] = ("app",),
        init: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "default"},
            "spec": {"initContainers": [{"name": n} for n in init],
                     "containers": [{"name": n} for n in containers]},
            "status": {"containerStatuses": statuses or []}}


def message(fn: Any, *args: Any, **kw: Any) -> str:
    with pytest.raises(StatusError) as err:
        fn(*args, **kw)
    assert err.value.code == 400
    return str(err.value.message)


def test_choose_container() -> None:
    assert choose_container(pod(), "") == "app"
    assert choose_container(pod(init=("setup",)), "setup") == "setup"
    assert message(choose_container, pod(containers=("a", "b"), init=("i",)), "") == \
        "a container name must be specified for pod web, choose one of: [i a b]"
    assert message(choose_container, pod(), "x") == "container x is not valid for pod web"


def test_log_status_checks() -> None:
    waiting = {"name": "app", "state": {"waiting": {"reason": "ContainerCreating"}}}
    assert message(check_log_status, pod([waiting]), "app", previous=False) == \
        'container "app" in pod "web" is waiting to start: ContainerCreating'
    pulling = {"name": "app", "state": {"waiting": {"reason": "ImagePullBackOff"}}}
    assert message(check_log_status, pod([pulling]), "app", previous=False) == \
        'container "app" in pod "web" is waiting to start: trying and failing to pull image'
    running = {"name": "app", "state": {"running": {}}, "lastState": {}}
    check_log_status(pod([running]), "app", previous=False)
    assert message(check_log_status, pod([running]), "app", previous=True) == \
        'previous terminated container "app" in pod "web" not found'
    restarted = {"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "containerID": "process://x"}}}
    check_log_status(pod([restarted]), "app", previous=False)  # the last run's log is shown
    check_log_status(pod([restarted]), "app", previous=True)
    check_log_status(pod([]), "app", previous=False)  # unknown yet: the kubelet decides
