"""The real kubectl (1.32) reading from kubeling: discovery, explain, get and watch.

What a user types and sees: the table columns kubectl users know, the output
formats, selectors, all-namespaces listing and the lines ``get -w`` prints as
objects come and go. Writes live in test_kubectl_write.py, deletion in
test_kubectl_delete.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import uuid

import pytest
import yaml

from tests.cluster import Cluster, require, wait_for


@pytest.fixture(autouse=True)
def _kubectl() -> None:
    require("kubectl")


@pytest.fixture
def ns(cluster: Cluster) -> str:
    name = f"kc-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    return name


def header(out: str) -> list[str]:
    """The column names of a kubectl table (multi-word names kept whole)."""
    return re.split(r"\s{2,}", out.splitlines()[0].strip())


def rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()[1:] if line.strip()]


def test_version_reports_server_1_32(cluster: Cluster) -> None:
    out = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    server = out["serverVersion"]
    assert (server["major"], server["minor"]) == ("1", "32")
    assert server["gitVersion"].startswith("v1.32.")
    text = cluster.kubectl("version").stdout
    assert f"Server Version: {server['gitVersion']}" in text


def test_api_versions_lists_served_groups(cluster: Cluster) -> None:
    lines = cluster.kubectl("api-versions").stdout.split()
    for gv in ("v1", "apps/v1", "batch/v1", "autoscaling/v1", "autoscaling/v2",
               "coordination.k8s.io/v1"):
        assert gv in lines
    assert lines == sorted(lines)


def test_api_resources_table_and_filters(cluster: Cluster) -> None:
    out = cluster.kubectl("api-resources").stdout
    assert header(out) == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    by_name = {r[0]: r for r in rows(out)}
    assert by_name["deployments"][1:] == ["deploy", "apps/v1", "true", "Deployment"]
    assert by_name["configmaps"][1:] == ["cm", "v1", "true", "ConfigMap"]
    assert by_name["namespaces"][1:] == ["ns", "v1", "false", "Namespace"]

    cluster_scoped = cluster.kubectl("api-resources", "--namespaced=false", "-o", "name").stdout
    names = cluster_scoped.split()
    assert "namespaces" in names and "nodes" in names
    assert "pods" not in names
    apps = cluster.kubectl("api-resources", "--api-group=apps", "-o", "name").stdout.split()
    assert "deployments.apps" in apps and "configmaps" not in apps


def test_explain_field_and_kind(cluster: Cluster) -> None:
    out = cluster.kubectl("explain", "deployment.spec.replicas").stdout
    assert "KIND:       Deployment" in out
    assert "FIELD: replicas <integer>" in out
    assert "Number of desired pods" in out

    pods = cluster.kubectl("explain", "pods").stdout
    assert "KIND:       Pod" in pods and "VERSION:    v1" in pods
    assert "FIELDS:" in pods and "spec\t<PodSpec>" in pods

    res = cluster.kubectl("explain", "pods.spec.nosuch", check=False)
    assert res.returncode != 0
    assert 'field "nosuch" does not exist' in res.stderr


def test_get_tables_have_the_usual_columns(cluster: Cluster, ns: str) -> None:
    k = cluster.kubectl
    k("-n", ns, "create", "deployment", "web", "--image=nginx:1.25", "--replicas=2")
    k("-n", ns, "create", "configmap", "cfg", "--from-literal=a=1", "--from-literal=b=2")
    k("-n", ns, "create", "secret", "generic", "pw", "--from-literal=p=x")
    k("-n", ns, "create", "service", "clusterip", "svc", "--tcp=80:8080")
    k("-n", ns, "create", "job", "once", "--image=busybox", "--", "true")
    k("-n", ns, "run", "solo", "--image=busybox", "--restart=Never", "--", "sleep", "1")

    deploy = k("-n", ns, "get", "deployments").stdout
    assert header(deploy) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert rows(deploy)[0][:2] == ["web", "0/2"]
    wide = k("-n", ns, "get", "deployment", "web", "-o", "wide").stdout
    assert header(wide) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS",
                            "IMAGES", "SELECTOR"]
    assert rows(wide)[0][5:] == ["nginx", "nginx:1.25", "app=web"]

    cm = k("-n", ns, "get", "configmap", "cfg").stdout
    assert header(cm) == ["NAME", "DATA", "AGE"]
    assert rows(cm)[0][:2] == ["cfg", "2"]
    secret = k("-n", ns, "get", "secret", "pw").stdout
    assert header(secret) == ["NAME", "TYPE", "DATA", "AGE"]
    assert rows(secret)[0][:3] == ["pw", "Opaque", "1"]
    svc = k("-n", ns, "get", "service", "svc").stdout
    assert header(svc) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert rows(svc)[0][1] == "ClusterIP" and rows(svc)[0][4] == "80/TCP"
    job = k("-n", ns, "get", "job", "once").stdout
    assert header(job) == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert rows(job)[0][:3] == ["once", "Running", "0/1"]
    pods = k("-n", ns, "get", "pod", "solo").stdout
    assert header(pods) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert rows(pods)[0][:4] == ["solo", "0/1", "Pending", "0"]
    pods_wide = k("-n", ns, "get", "pods", "-o", "wide").stdout
    assert header(pods_wide)[5:] == ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]

    namespaces = k("get", "namespace", ns).stdout
    assert header(namespaces) == ["NAME", "STATUS", "AGE"]
    assert rows(namespaces)[0][:2] == [ns, "Active"]

    several = k("-n", ns, "get", "configmap,secret").stdout
    assert "configmap/cfg" in several and "secret/pw" in several


def test_get_output_formats(cluster: Cluster, ns: str) -> None:
    k = cluster.kubectl
    k("-n", ns, "create", "configmap", "cfg", "--from-literal=greeting=hello")
    as_yaml = yaml.safe_load(k("-n", ns, "get", "configmap", "cfg", "-o", "yaml").stdout)
    assert as_yaml["kind"] == "ConfigMap" and as_yaml["apiVersion"] == "v1"
    assert as_yaml["data"] == {"greeting": "hello"}
    assert as_yaml["metadata"]["namespace"] == ns
    assert as_yaml["metadata"]["uid"] and as_yaml["metadata"]["resourceVersion"]

    as_json = json.loads(k("-n", ns, "get", "configmaps", "-o", "json").stdout)
    assert as_json["kind"] == "List"
    assert [i["metadata"]["name"] for i in as_json["items"]] == ["cfg"]

    assert k("-n", ns, "get", "cm", "cfg", "-o", "jsonpath={.data.greeting}").stdout == "hello"
    assert k("-n", ns, "get", "configmaps", "-o", "name").stdout.split() == ["configmap/cfg"]
    custom = k("-n", ns, "get", "cm", "-o", "custom-columns=N:.metadata.name,G:.data.greeting")
    assert custom.stdout.split() == ["N", "G", "cfg", "hello"]
    missing = k("-n", ns, "get", "configmap", "nope", check=False)
    assert missing.returncode == 1
    assert 'configmaps "nope" not found' in missing.stderr


def test_label_and_field_selectors(cluster: Cluster, ns: str) -> None:
    k = cluster.kubectl
    for name, tier in (("a", "web"), ("b", "db"), ("c", "")):
        k("-n", ns, "create", "configmap", name)
        if tier:
            k("-n", ns, "label", "configmap", name, f"tier={tier}")

    def names(*sel: str) -> list[str]:
        return k("-n", ns, "get", "configmaps", *sel, "-o", "name").stdout.split()

    assert names("-l", "tier=web") == ["configmap/a"]
    assert names("-l", "tier in (web,db)") == ["configmap/a", "configmap/b"]
    assert names("-l", "!tier") == ["configmap/c"]
    assert names("-l", "tier!=web") == ["configmap/b", "configmap/c"]
    assert names("--field-selector", "metadata.name=b") == ["configmap/b"]
    assert names("--field-selector", "metadata.name!=b", "-l", "tier") == ["configmap/a"]

    none = k("-n", ns, "get", "configmaps", "-l", "tier=cache")
    assert none.stdout == ""
    assert f"No resources found in {ns} namespace." in none.stderr
    bad = k("-n", ns, "get", "configmaps", "--field-selector", "data.x=1", check=False)
    assert bad.returncode == 1
    assert '"data.x" is not a known field selector' in bad.stderr
    shown = k("-n", ns, "get", "configmap", "a", "--show-labels").stdout
    assert header(shown)[-1] == "LABELS" and rows(shown)[0][-1] == "tier=web"


def test_get_all_namespaces(cluster: Cluster) -> None:
    k = cluster.kubectl
    tag = uuid.uuid4().hex[:6]
    spaces = [f"all-{tag}-1", f"all-{tag}-2"]
    for space in spaces:
        k("create", "namespace", space)
        k("-n", space, "create", "configmap", "shared", f"--from-literal=ns={space}")
        k("-n", space, "label", "configmap", "shared", f"run={tag}")
    out = k("get", "configmaps", "-A", "-l", f"run={tag}").stdout
    assert header(out) == ["NAMESPACE", "NAME", "DATA", "AGE"]
    assert [r[:3] for r in rows(out)] == [[spaces[0], "shared", "1"], [spaces[1], "shared", "1"]]


class Watcher:
    """``kubectl get -w`` in the background, its stdout collected line by line."""

    def __init__(self, cluster: Cluster, *args: str) -> None:
        self.proc = subprocess.Popen(["kubectl", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=cluster.env())
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_lines(self, n: int, what: str) -> list[str]:
        wait_for(what, lambda: len(self.lines) >= n, timeout=15)
        return list(self.lines)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def test_watch_prints_adds_modifications_and_deletes(cluster: Cluster, ns: str) -> None:
    k = cluster.kubectl
    k("-n", ns, "create", "configmap", "before", "--from-literal=a=1")
    w = Watcher(cluster, "-n", ns, "get", "configmaps", "-w", "--output-watch-events")
    try:
        w.wait_lines(2, "the watch header and the existing object")
        k("-n", ns, "create", "configmap", "during", "--from-literal=a=1")
        w.wait_lines(3, "the ADDED line")
        k("-n", ns, "patch", "configmap", "during", "-p", '{"data":{"b":"2"}}')
        w.wait_lines(4, "the MODIFIED line")
        k("-n", ns, "delete", "configmap", "during")
        lines = w.wait_lines(5, "the DELETED line")
    finally:
        w.stop()
    assert header("\n".join(lines)) == ["EVENT", "NAME", "DATA", "AGE"]
    events = [line.split()[:3] for line in lines[1:5]]
    assert events == [["ADDED", "before", "1"], ["ADDED", "during", "1"],
                      ["MODIFIED", "during", "2"], ["DELETED", "during", "2"]]


def test_watch_single_object_plain_table(cluster: Cluster, ns: str) -> None:
    k = cluster.kubectl
    k("-n", ns, "create", "deployment", "web", "--image=nginx")
    k("-n", ns, "create", "deployment", "other", "--image=nginx")
    w = Watcher(cluster, "-n", ns, "get", "deployment", "web", "--watch")
    try:
        w.wait_lines(2, "the header and the current row")
        k("-n", ns, "scale", "deployment", "other", "--replicas=3")
        k("-n", ns, "scale", "deployment", "web", "--replicas=4")
        wait_for("the row after scaling",
                 lambda: any(line.split()[:2] == ["web", "0/4"] for line in w.lines),
                 timeout=15)
        lines = list(w.lines)
    finally:
        w.stop()
    assert header(lines[0]) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    rows_seen = [line.split()[:2] for line in lines[1:]]
    # The deployment controller's status writes add rows for web; "other" never shows.
    assert rows_seen[0] == ["web", "0/1"]
    assert {name for name, _ in rows_seen} == {"web"}
    assert {ready for _, ready in rows_seen} <= {"0/1", "0/4"}
