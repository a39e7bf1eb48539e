"""Shorthands for end-to-end tests of OCI pods through the real kubectl."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cluster import AGENT_NODE, Cluster, require, wait_for
from tests.imagebuild import build_image

IMAGE = "busybox:1.36"  # built by tests/imagebuild.py and imported through the airgap dir


def oci_data_dir(factory: pytest.TempPathFactory, name: str, *tools: str) -> Path:
    """A data dir for a server running OCI pods, with the busybox test image in its airgap
    folder (imported on start); skips without root or ``tools`` (fails under CI=true)."""
    for tool in ("runc", "busybox", "iptables", *tools):
        require(tool)
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the OCI runtime tests need root in CI")
        pytest.skip("the OCI runtime needs root")
    data = factory.mktemp(name)
    imports = data / "agent" / "images-import"
    imports.mkdir(parents=True)
    build_image(imports / "busybox.tar", name=IMAGE)
    return data


def node_ready(c: Cluster) -> bool:
    """The agent's node is Ready and has its pod CIDR."""
    node = json.loads(c.kubectl("get", "node", AGENT_NODE, "-o", "json", check=False).stdout
                      or "{}")
    ready = [x for x in (node.get("status") or {}).get("conditions") or []
             if x["type"] == "Ready" and x["status"] == "True"]
    return bool(ready and (node.get("spec") or {}).get("podCIDR"))



def pod_json(c: Cluster, name: str) -> dict:
    return json.loads(c.kubectl("get", "pod", name, "-o", "json").stdout)


def running(c: Cluster, name: str, timeout: float = 60) -> dict:
    def check() -> dict | None:
        pod = pod_json(c, name)
        return pod if pod["status"].get("phase") == "Running" and pod["status"].get(
            "podIP") else None

    try:
        return wait_for(f"pod {name} Running", check, timeout=timeout)  # type: ignore[return-value]
    except AssertionError:
        print(c.kubectl("describe", "pod", name, check=False).stdout)
        raise


def apply(c: Cluster, manifest: dict) -> None:
    c.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def pod(name: str, *containers: dict, **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": list(containers), "terminationGracePeriodSeconds": 1,
                     **spec}}


def ctr(name: str, *command: str, **extra: object) -> dict:
    return {"name": name, "image": IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": list(command), **extra}


def exec_(c: Cluster, name: str, *command: str, container: str = "") -> str:
    extra = ("-c", container) if container else ()
    return c.kubectl("exec", name, *extra, "--", *command).stdout


