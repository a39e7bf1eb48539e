"""Volumes end to end through kubectl and the server's own node: an emptyDir shared by two
containers, a ConfigMap edit reaching a running container, a Secret's file and mode, and a
downwardAPI labels file following ``kubectl label``.

Containers run host binaries (the process runtime). Each reads its volume relative to a
``workingDir`` under the mount path, which the runtime resolves both as root (a bind mount
in the container's mount namespace) and without root (the mounted host path).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.cluster import Cluster, require, wait_for

BASE = "/tmp/kubeling-e2e-volumes"


@pytest.fixture
def ns(agent_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    require("kubectl")
    name = "vol-" + request.node.name.removeprefix("test_").replace("_", "-")[:40]
    agent_cluster.kubectl("create", "namespace", name)
    yield name
    agent_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def apply(cluster: Cluster, ns: str, manifest: dict) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))


def logs(cluster: Cluster, ns: str, pod: str, container: str) -> str:
    res = cluster.kubectl("logs", "-n", ns, pod, "-c", container, check=False)
    return res.stdout if res.returncode == 0 else ""


def pod(name: str, volumes: list[dict], containers: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"terminationGracePeriodSeconds": 1, "restartPolicy": "Never",
                     "volumes": volumes, "containers": containers}}


def shell(name: str, script: str, volume: str, mount: str, **extra: object) -> dict:
    return {"name": name, "image": "busybox:1.36", "command": ["sh", "-c", script],
            "workingDir": mount, "volumeMounts": [{"name": volume, "mountPath": mount}], **extra}


def test_two_containers_share_an_empty_dir(agent_cluster: Cluster, ns: str) -> None:
    mount = f"{BASE}/shared"
    apply(agent_cluster, ns, pod("share", [{"name": "scratch", "emptyDir": {}}], [
        shell("writer", "echo hello-from-writer > msg; exec sleep 3600", "scratch", mount),
        shell("reader", "until [ -s msg ]; do sleep 0.2; done; cat msg; exec sleep 3600",
              "scratch", mount)]))
    wait_for("the reader's log showing the writer's file",
             lambda: "hello-from-writer" in logs(agent_cluster, ns, "share", "reader"),
             timeout=60)
    uid = agent_cluster.kubectl("get", "pod", "share", "-n", ns,
                                "-o", "jsonpath={.metadata.uid}").stdout.strip()
    volumes = agent_cluster.data_dir / "agent" / "pods" / uid / "volumes"
    assert (volumes / "kubernetes.io~empty-dir" / "scratch" / "msg").read_text() == \
        "hello-from-writer\n"
    agent_cluster.kubectl("delete", "pod", "share", "-n", ns, "--wait=true", "--timeout=60s")
    wait_for("the emptyDir removed with its pod", lambda: not volumes.exists(), timeout=30)


def test_configmap_edit_reaches_the_mounted_file(agent_cluster: Cluster, ns: str) -> None:
    agent_cluster.kubectl("create", "configmap", "cfg", "-n", ns, "--from-literal=color=blue")
    mount = f"{BASE}/config"
    apply(agent_cluster, ns, pod("cfgwatch", [{"name": "cfg", "configMap": {"name": "cfg"}}], [
        shell("watch", "while true; do echo \"color=$(cat color)\"; sleep 0.3; done", "cfg",
              mount)]))
    wait_for("the first value in the log",
             lambda: "color=blue" in logs(agent_cluster, ns, "cfgwatch", "watch"), timeout=60)
    agent_cluster.kubectl("patch", "configmap", "cfg", "-n", ns, "--type=merge",
                          "-p", '{"data": {"color": "green"}}')
    wait_for("the edited value in the log",
             lambda: "color=green" in logs(agent_cluster, ns, "cfgwatch", "watch"), timeout=30)


def test_secret_file_contents_and_mode(agent_cluster: Cluster, ns: str) -> None:
    agent_cluster.kubectl("create", "secret", "generic", "creds", "-n", ns,
                          "--from-literal=password=s3cr3t-value")
    mount = f"{BASE}/secret"
    apply(agent_cluster, ns, pod("secretread", [{"name": "creds", "secret": {
        "secretName": "creds", "items": [{"key": "password", "path": "pw", "mode": 0o400}]}}], [
        shell("show", "echo \"pw=$(cat pw) mode=$(stat -L -c %a pw)\"; exec sleep 3600",
              "creds", mount)]))
    wait_for("the secret's contents and mode in the log",
             lambda: "pw=s3cr3t-value mode=400" in logs(agent_cluster, ns, "secretread", "show"),
             timeout=60)


def test_downward_api_labels_follow_kubectl_label(agent_cluster: Cluster, ns: str) -> None:
    mount = f"{BASE}/podinfo"
    apply(agent_cluster, ns, pod("labelled", [{"name": "info", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}], [
        shell("watch", "while true; do tr '\\n' ' ' < labels; echo; sleep 0.3; done", "info",
              mount)]))
    wait_for("the labels file in the log",
             lambda: 'app="labelled"' in logs(agent_cluster, ns, "labelled", "watch"), timeout=60)
    agent_cluster.kubectl("label", "pod", "labelled", "-n", ns, "tier=db")
    wait_for("the new label in the log",
             lambda: 'app="labelled" tier="db"' in logs(agent_cluster, ns, "labelled", "watch"),
             timeout=30)
