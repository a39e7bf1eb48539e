"""The real kubectl (1.32) writing to kubeling: create, apply, replace, edit, patch, scale.

Each test drives the commands a user types and then reads the object back
with kubectl, asserting what the user would find: fields set, fields removed,
conflicts reported, generation moved.
"""

from __future__ import annotations

import base64
import json
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import Cluster, require


@pytest.fixture(autouse=True)
def _kubectl() -> None:
    require("kubectl")


@pytest.fixture
def ns(cluster: Cluster) -> str:
    name = f"kw-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    return name


def get(cluster: Cluster, ns: str, what: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(cluster.kubectl("-n", ns, "get", what, "-o", "json").stdout)
    return obj


CONFIGS = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: first
data:
  k: v
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
"""


def test_create_from_file_and_already_exists(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    path = tmp_path / "objects.yaml"
    path.write_text(CONFIGS)
    out = cluster.kubectl("-n", ns, "create", "-f", str(path)).stdout
    assert out.splitlines() == ["configmap/first created", "deployment.apps/web created"]
    deploy = get(cluster, ns, "deployment/web")
    assert deploy["spec"]["replicas"] == 2
    assert deploy["metadata"]["generation"] == 1
    pod = deploy["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Always" and pod["dnsPolicy"] == "ClusterFirst"
    assert pod["containers"][0]["ports"][0]["protocol"] == "TCP"
    assert deploy["spec"]["strategy"]["type"] == "RollingUpdate"

    again = cluster.kubectl("-n", ns, "create", "-f", str(path), check=False)
    assert again.returncode == 1
    assert 'configmaps "first" already exists' in again.stderr
    assert 'deployments.apps "web" already exists' in again.stderr


def test_create_generators(cluster: Cluster, ns: str) -> None:
    k = cluster.kubectl
    assert k("-n", ns, "create", "configmap", "cfg", "--from-literal=a=1").stdout.strip() == \
        "configmap/cfg created"
    k("-n", ns, "create", "secret", "generic", "pw", "--from-literal=password=s3cret")
    k("-n", ns, "create", "deployment", "web", "--image=nginx:1.25", "--replicas=3", "--port=80")
    k("-n", ns, "create", "service", "clusterip", "web", "--tcp=80:8080")
    k("-n", ns, "create", "job", "hello", "--image=busybox", "--", "echo", "hi")

    assert get(cluster, ns, "configmap/cfg")["data"] == {"a": "1"}
    secret = get(cluster, ns, "secret/pw")
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["password"]) == b"s3cret"
    deploy = get(cluster, ns, "deployment/web")
    assert deploy["spec"]["replicas"] == 3
    assert deploy["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert (container["name"], container["image"]) == ("nginx", "nginx:1.25")
    svc = get(cluster, ns, "service/web")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"] == {"app": "web"}
    port = svc["spec"]["ports"][0]
    assert (port["port"], port["targetPort"], port["protocol"]) == (80, 8080, "TCP")
    job = get(cluster, ns, "job/hello")
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["containers"][0]["command"] == ["echo", "hi"]
    assert job["spec"]["backoffLimit"] == 6 and job["spec"]["completions"] == 1

    ns2 = f"{ns}-extra"
    assert k("create", "namespace", ns2).stdout.strip() == f"namespace/{ns2} created"
    assert get(cluster, ns, f"namespace/{ns2}")["status"]["phase"] == "Active"


def test_service_gets_cluster_ip_and_node_port(cluster: Cluster, ns: str) -> None:
    cluster.kubectl("-n", ns, "create", "service", "nodeport", "web", "--tcp=80:8080")
    svc = get(cluster, ns, "service/web")
    assert svc["spec"]["clusterIP"] and svc["spec"]["clusterIPs"] == [svc["spec"]["clusterIP"]]
    assert 30000 <= svc["spec"]["ports"][0].get("nodePort", 0) <= 32767


def test_autoscale_creates_hpa(cluster: Cluster, ns: str) -> None:
    k = cluster.kubectl
    k("-n", ns, "create", "deployment", "web", "--image=nginx")
    out = k("-n", ns, "autoscale", "deployment", "web", "--min=2", "--max=5",
            "--cpu-percent=70").stdout
    assert out.strip() == "horizontalpodautoscaler.autoscaling/web autoscaled"
    hpa = get(cluster, ns, "hpa/web")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "web"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    metric = hpa["spec"]["metrics"][0]["resource"]
    assert metric["name"] == "cpu" and metric["target"]["averageUtilization"] == 70
    table = k("-n", ns, "get", "hpa", "web").stdout.splitlines()
    assert table[0].split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS",
                                "REPLICAS", "AGE"]
    assert table[1].split()[:2] == ["web", "Deployment/web"]


APP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: app
  labels: {keep: "yes", drop: "soon"}
data:
  keep: "1"
  drop: "2"
"""


def test_client_side_apply_create_change_and_prune_field(cluster: Cluster, ns: str,
                                                          tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(APP)
    k = cluster.kubectl
    assert k("-n", ns, "apply", "-f", str(path)).stdout.strip() == "configmap/app created"
    assert k("-n", ns, "apply", "-f", str(path)).stdout.strip() == "configmap/app unchanged"
    path.write_text(APP.replace('  drop: "2"\n', '  new: "3"\n').replace(', drop: "soon"', ""))
    assert k("-n", ns, "apply", "-f", str(path)).stdout.strip() == "configmap/app configured"
    cm = get(cluster, ns, "configmap/app")
    assert cm["data"] == {"keep": "1", "new": "3"}
    assert cm["metadata"]["labels"] == {"keep": "yes"}
    last = json.loads(cm["metadata"]["annotations"]
                      ["kubectl.kubernetes.io/last-applied-configuration"])
    assert last["data"] == {"keep": "1", "new": "3"}
    # A field set by someone else (not in the file) survives the next apply.
    k("-n", ns, "label", "configmap", "app", "owner=ops")
    k("-n", ns, "apply", "-f", str(path))
    assert get(cluster, ns, "configmap/app")["metadata"]["labels"] == {"keep": "yes",
                                                                       "owner": "ops"}


def test_server_side_apply_conflict_and_force(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    k = cluster.kubectl
    mine = tmp_path / "mine.yaml"
    mine.write_text(APP)
    out = k("-n", ns, "apply", "--server-side", "--field-manager=alice", "-f", str(mine))
    assert out.stdout.strip() == "configmap/app serverside-applied"
    theirs = tmp_path / "theirs.yaml"
    theirs.write_text('apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n'
                      'data:\n  keep: "other"\n')
    clash = k("-n", ns, "apply", "--server-side", "--field-manager=bob", "-f", str(theirs),
              check=False)
    assert clash.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "alice": .data.keep' in clash.stderr
    assert get(cluster, ns, "configmap/app")["data"]["keep"] == "1"

    k("-n", ns, "apply", "--server-side", "--field-manager=bob", "--force-conflicts",
      "-f", str(theirs))
    cm = json.loads(k("-n", ns, "get", "configmap", "app", "-o", "json",
                      "--show-managed-fields").stdout)
    assert cm["data"] == {"keep": "other", "drop": "2"}
    owners = {m["manager"]: m for m in cm["metadata"]["managedFields"]}
    assert owners["bob"]["operation"] == "Apply"
    assert "f:keep" in owners["bob"]["fieldsV1"]["f:data"]
    assert "f:keep" not in owners["alice"]["fieldsV1"]["f:data"]
    # Alice drops a field she alone owns from her file: the server removes it.
    mine.write_text(APP.split("\ndata:")[0] + "\n")
    k("-n", ns, "apply", "--server-side", "--field-manager=alice", "-f", str(mine))
    assert get(cluster, ns, "configmap/app")["data"] == {"keep": "other"}


def test_server_side_apply_with_null_map(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(APP)
    cluster.kubectl("-n", ns, "apply", "--server-side", "-f", str(path))
    path.write_text(APP.split("\ndata:")[0] + "\ndata:\n")
    res = cluster.kubectl("-n", ns, "apply", "--server-side", "-f", str(path), check=False)
    assert res.returncode == 0, res.stderr
    assert not get(cluster, ns, "configmap/app").get("data")


def test_replace_and_edit(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    k = cluster.kubectl
    k("-n", ns, "create", "configmap", "cfg", "--from-literal=mode=one")
    current = k("-n", ns, "get", "configmap", "cfg", "-o", "yaml").stdout
    path = tmp_path / "cfg.yaml"
    path.write_text(current.replace("mode: one", "mode: two"))
    assert k("-n", ns, "replace", "-f", str(path)).stdout.strip() == "configmap/cfg replaced"
    assert get(cluster, ns, "configmap/cfg")["data"] == {"mode": "two"}
    stale = k("-n", ns, "replace", "-f", str(path), check=False)
    assert stale.returncode == 1
    assert "the object has been modified; please apply your changes to the latest version" \
        in stale.stderr

    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nsed -i "s/mode: two/mode: three/" "$1"\n')
    editor.chmod(editor.stat().st_mode | stat.S_IXUSR)
    out = k("-n", ns, "edit", "configmap", "cfg", env={"EDITOR": str(editor)})
    assert out.stdout.strip() == "configmap/cfg edited"
    assert get(cluster, ns, "configmap/cfg")["data"] == {"mode": "three"}
    noop = tmp_path / "noop.sh"
    noop.write_text("#!/bin/sh\ntrue\n")
    noop.chmod(noop.stat().st_mode | stat.S_IXUSR)
    res = k("-n", ns, "edit", "configmap", "cfg", env={"EDITOR": str(noop)})
    assert "Edit cancelled, no changes made." in res.stderr


def test_patch_strategic_merge_and_json(cluster: Cluster, ns: str) -> None:
    k = cluster.kubectl
    k("-n", ns, "create", "deployment", "web", "--image=nginx:1.25")
    k("-n", ns, "patch", "deployment", "web", "-p", json.dumps({"spec": {"template": {"spec": {
        "containers": [{"name": "sidecar", "image": "busybox"}]}}}}))
    containers = get(cluster, ns, "deployment/web")["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("sidecar", "busybox"),
                                                             ("nginx", "nginx:1.25")]

    k("-n", ns, "create", "configmap", "cfg", "--from-literal=a=1", "--from-literal=b=2")
    out = k("-n", ns, "patch", "configmap", "cfg", "--type=merge",
            "-p", '{"data":{"a":null,"c":"3"}}')
    assert out.stdout.strip() == "configmap/cfg patched"
    assert get(cluster, ns, "configmap/cfg")["data"] == {"b": "2", "c": "3"}
    k("-n", ns, "patch", "configmap", "cfg", "--type=json",
      "-p", '[{"op":"replace","path":"/data/b","value":"20"},{"op":"remove","path":"/data/c"}]')
    assert get(cluster, ns, "configmap/cfg")["data"] == {"b": "20"}
    bad = k("-n", ns, "patch", "configmap", "cfg", "--type=json",
            "-p", '[{"op":"test","path":"/data/b","value":"wrong"}]', check=False)
    assert bad.returncode == 1
    same = k("-n", ns, "patch", "configmap", "cfg", "-p", '{"data":{"b":"20"}}')
    assert same.stdout.strip() == "configmap/cfg patched (no change)"


def test_label_and_annotate(cluster: Cluster, ns: str) -> None:
    k = cluster.kubectl
    k("-n", ns, "create", "configmap", "cfg")
    assert k("-n", ns, "label", "configmap", "cfg", "tier=web").stdout.strip() == \
        "configmap/cfg labeled"
    taken = k("-n", ns, "label", "configmap", "cfg", "tier=db", check=False)
    assert taken.returncode == 1
    assert "'tier' already has a value (web), and --overwrite is false" in taken.stderr
    k("-n", ns, "label", "configmap", "cfg", "tier=db", "--overwrite")
    k("-n", ns, "annotate", "configmap", "cfg", "note=hello", "owner=ops")
    meta = get(cluster, ns, "configmap/cfg")["metadata"]
    assert meta["labels"] == {"tier": "db"}
    assert meta["annotations"] == {"note": "hello", "owner": "ops"}

    assert k("-n", ns, "annotate", "configmap", "cfg", "note-").stdout.strip() == \
        "configmap/cfg annotated"
    assert k("-n", ns, "label", "configmap", "cfg", "tier-").stdout.strip() == \
        "configmap/cfg unlabeled"
    meta = get(cluster, ns, "configmap/cfg")["metadata"]
    assert meta["annotations"] == {"owner": "ops"}
    assert not meta.get("labels")


def test_scale_through_the_scale_subresource(cluster: Cluster, ns: str) -> None:
    k = cluster.kubectl
    k("-n", ns, "create", "deployment", "web", "--image=nginx", "--replicas=1")
    before = get(cluster, ns, "deployment/web")["metadata"]["generation"]
    out = k("-n", ns, "scale", "deployment", "web", "--replicas=4")
    assert out.stdout.strip() == "deployment.apps/web scaled"
    deploy = get(cluster, ns, "deployment/web")
    assert deploy["spec"]["replicas"] == 4
    assert deploy["metadata"]["generation"] == before + 1
    scale = json.loads(k("get", "--raw",
                         f"/apis/apps/v1/namespaces/{ns}/deployments/web/scale").stdout)
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 4}
    assert scale["status"]["selector"] == "app=web"

    wrong = k("-n", ns, "scale", "deployment", "web", "--current-replicas=2", "--replicas=1",
              check=False)
    assert wrong.returncode == 1
    assert "Expected replicas to be 2, was 4" in wrong.stderr
    k("-n", ns, "scale", "deployment", "web", "--current-replicas=4", "--replicas=0")
    assert get(cluster, ns, "deployment/web")["spec"]["replicas"] == 0
