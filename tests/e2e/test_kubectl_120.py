"""An old client: Debian's kubectl 1.20 against kubeling.

kubectl 1.20 predates aggregated discovery and OpenAPI v3: it walks /api and
/apis group by group, and reads the OpenAPI v2 document as gnostic protobuf
for explain and for client-side apply's strategic merge patches. Debian's
package (kubernetes-client) would overwrite the installed kubectl, so
``make test`` unpacks it under .tools/ instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import REPO, Cluster, wait_for

UNPACKED = REPO / ".tools" / "kubectl-1.20" / "usr" / "bin" / "kubectl"


def kubectl_120() -> str:
    if UNPACKED.exists():
        return str(UNPACKED)
    on_path = shutil.which("kubectl-1.20")
    if on_path:
        return on_path
    reason = ("Debian's kubectl 1.20 is not unpacked at .tools/kubectl-1.20 "
              "(`make test` does it; the package cannot be installed beside kubectl)")
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


class Old:
    """kubectl 1.20 pointed at a cluster, with a discovery cache of its own."""

    def __init__(self, cluster: Cluster, binary: str) -> None:
        self.cluster = cluster
        self.binary = binary
        self.env = {"KUBECACHEDIR": str(cluster.data_dir / "kubectl-1.20-cache")}

    def __call__(self, *args: str, check: bool = True, input: str | None = None,
                 ) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl(*args, check=check, input=input, binary=self.binary,
                                    env=self.env)

    def get(self, ns: str, what: str) -> dict[str, Any] | None:
        res = self("-n", ns, "get", what, "-o", "json", check=False)
        if res.returncode != 0:
            assert "NotFound" in res.stderr, res.stderr
            return None
        obj: dict[str, Any] = json.loads(res.stdout)
        return obj


@pytest.fixture
def old(cluster: Cluster) -> Old:
    return Old(cluster, kubectl_120())


@pytest.fixture
def ns(old: Old) -> str:
    name = f"k120-{uuid.uuid4().hex[:8]}"
    old("create", "namespace", name)
    return name


def test_version_and_discovery(old: Old) -> None:
    out = json.loads(old("version", "-o", "json").stdout)
    assert out["clientVersion"]["minor"] == "20"
    assert (out["serverVersion"]["major"], out["serverVersion"]["minor"]) == ("1", "32")
    assert "apps/v1" in old("api-versions").stdout.split()
    resources = old("api-resources", "-o", "name").stdout.split()
    assert "deployments.apps" in resources and "configmaps" in resources


def test_create_get_and_delete(old: Old, ns: str, tmp_path: Path) -> None:
    path = tmp_path / "objects.yaml"
    path.write_text("""\
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a: "1", b: "2"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: "nginx:1.25"}]
""")
    out = old("-n", ns, "create", "-f", str(path)).stdout
    assert out.splitlines() == ["configmap/cfg created", "deployment.apps/web created"]

    table = old("-n", ns, "get", "deployments", "-o", "wide").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS",
                                "IMAGES", "SELECTOR"]
    assert table[1].split()[:2] == ["web", "0/2"]
    cm = old("-n", ns, "get", "configmap", "cfg").stdout.splitlines()
    assert cm[0].split() == ["NAME", "DATA", "AGE"] and cm[1].split()[:2] == ["cfg", "2"]
    assert old("-n", ns, "get", "cm", "cfg", "-o", "jsonpath={.data.b}").stdout == "2"

    out = old("-n", ns, "delete", "-f", str(path)).stdout
    assert out.splitlines() == ['configmap "cfg" deleted', 'deployment.apps "web" deleted']
    wait_for("both objects to be gone", lambda: old.get(ns, "configmap/cfg") is None
             and old.get(ns, "deployment/web") is None)


def test_client_side_apply_prunes_removed_field(old: Old, ns: str, tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    manifest = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, stage: test}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        env: [{name: MODE, value: fast}]
"""
    path.write_text(manifest)
    assert old("-n", ns, "apply", "-f", str(path)).stdout.strip() == \
        "deployment.apps/web created"
    path.write_text(manifest.replace(", stage: test", "").replace("nginx:1.25", "nginx:1.26")
                    .replace("        env: [{name: MODE, value: fast}]\n", ""))
    assert old("-n", ns, "apply", "-f", str(path)).stdout.strip() == \
        "deployment.apps/web configured"
    deploy = old.get(ns, "deployment/web")
    assert deploy is not None
    assert deploy["metadata"]["labels"] == {"app": "web"}
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.26"
    assert "env" not in container


def test_scale(old: Old, ns: str) -> None:
    old("-n", ns, "create", "deployment", "web", "--image=nginx")
    assert old("-n", ns, "scale", "deployment", "web", "--replicas=3").stdout.strip() == \
        "deployment.apps/web scaled"
    deploy = old.get(ns, "deployment/web")
    assert deploy is not None
    assert deploy["spec"]["replicas"] == 3 and deploy["metadata"]["generation"] == 2


def test_explain_reads_openapi_v2_protobuf(old: Old) -> None:
    out = old("explain", "deployment.spec.replicas").stdout
    assert "KIND:     Deployment" in out
    assert "FIELD:    replicas <integer>" in out
    assert "Number of desired pods" in out
    pods = old("explain", "pods.spec.containers").stdout
    assert "RESOURCE: containers <[]Object>" in pods
    assert "image\t<string>" in pods


def test_server_side_apply_and_conflict(old: Old, ns: str, tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: "1"}\n')
    out = old("-n", ns, "apply", "--server-side", "--field-manager=one", "-f", str(path))
    assert out.stdout.strip() == "configmap/cfg serverside-applied"
    path.write_text(path.read_text().replace('"1"', '"2"'))
    clash = old("-n", ns, "apply", "--server-side", "--field-manager=two", "-f", str(path),
                check=False)
    assert clash.returncode == 1
    assert 'conflict with "one"' in clash.stderr
    old("-n", ns, "apply", "--server-side", "--field-manager=two", "--force-conflicts",
        "-f", str(path))
    cfg = old.get(ns, "configmap/cfg")
    assert cfg is not None and cfg["data"] == {"a": "2"}
