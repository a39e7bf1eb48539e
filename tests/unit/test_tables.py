"""Server-side tables: the cells kubectl prints, per kind, as kube-apiserver computes them."""

from datetime import UTC, datetime
from typing import Any

import pytest

from kubeling.api.kinds import KINDS, by_resource
from kubeling.apiserver.tables import column_definitions, human_duration, make_table, row_cells

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
T_5M = "2024-05-01T11:55:00Z"
T_2M = "2024-05-01T11:58:00Z"


def meta(name: str = "x", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "default", "creationTimestamp": T_5M, **extra}


@pytest.mark.parametrize(("seconds", "text"), [
    (-5, "<invalid>"), (-1, "0s"), (5, "5s"), (119, "119s"), (200, "3m20s"), (180, "3m"),
    (600, "10m"), (3 * 3600 + 60, "3h1m"), (10 * 3600, "10h"), (51 * 3600, "2d3h"),
    (48 * 3600, "2d"), (30 * 86400, "30d"), (800 * 86400, "2y70d"), (9 * 365 * 86400, "9y"),
])
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def _running(name: str, *, ready: bool = True, restarts: int = 0,
             last_finished: str | None = None) -> dict[str, Any]:
    st: dict[str, Any] = {"name": name, "ready": ready, "restartCount": restarts,
                          "state": {"running": {"startedAt": T_5M}}}
    if last_finished:
        st["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": last_finished}}
    return st


POD_CASES = [
    ("running", {"metadata": meta("web"), "spec": {"containers": [{"name": "a"}, {"name": "b"}],
                                                   "nodeName": "n1"},
                 "status": {"phase": "Running", "podIPs": [{"ip": "10.1.0.4"}],
                            "containerStatuses": [_running("a"), _running("b", ready=False)]}},
     ["web", "1/2", "Running", "0", "5m", "10.1.0.4", "n1", "<none>", "<none>"]),
    ("restarts", {"metadata": meta(), "spec": {"containers": [{"name": "a"}]},
                  "status": {"phase": "Running", "containerStatuses": [
                      _running("a", restarts=3, last_finished=T_2M)]}},
     ["x", "1/1", "Running", "3 (2m ago)", "5m", "<none>", "<none>", "<none>", "<none>"]),
    ("crashloop", {"metadata": meta(), "spec": {"containers": [{"name": "a"}]},
                   "status": {"phase": "Running", "containerStatuses": [
                       {"name": "a", "restartCount": 4, "ready": False,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}},
     ["x", "0/1", "CrashLoopBackOff", "4", "5m", "<none>", "<none>", "<none>", "<none>"]),
    ("creating", {"metadata": meta(), "spec": {"containers": [{"name": "a"}]},
                  "status": {"phase": "Pending", "containerStatuses": [
                      {"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}}]}},
     ["x", "0/1", "ContainerCreating", "0", "5m", "<none>", "<none>", "<none>", "<none>"]),
    ("init", {"metadata": meta(), "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}],
                                           "containers": [{"name": "a"}]},
              "status": {"phase": "Pending", "initContainerStatuses": [
                  {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
                  {"name": "i2", "state": {"running": {}}}]}},
     ["x", "0/1", "Init:1/2", "0", "5m", "<none>", "<none>", "<none>", "<none>"]),
    ("init-failed", {"metadata": meta(), "spec": {"initContainers": [{"name": "i1"}],
                                                  "containers": [{"name": "a"}]},
                     "status": {"phase": "Pending", "initContainerStatuses": [
                         {"name": "i1", "state": {"terminated": {"exitCode": 2}}}]}},
     ["x", "0/1", "Init:ExitCode:2", "0", "5m", "<none>", "<none>", "<none>", "<none>"]),
    ("completed", {"metadata": meta(), "spec": {"containers": [{"name": "a"}]},
                   "status": {"phase": "Succeeded", "containerStatuses": [
                       {"name": "a", "state": {"terminated": {"exitCode": 0,
                                                              "reason": "Completed"}}}]}},
     ["x", "0/1", "Completed", "0", "5m", "<none>", "<none>", "<none>", "<none>"]),
    ("terminating", {"metadata": meta(deletionTimestamp=T_2M),
                     "spec": {"containers": [{"name": "a"}]},
                     "status": {"phase": "Running", "containerStatuses": [_running("a")]}},
     ["x", "1/1", "Terminating", "0", "5m", "<none>", "<none>", "<none>", "<none>"]),
    ("gates", {"metadata": meta(), "spec": {"containers": [],
                                            "readinessGates": [{"conditionType": "g1"},
                                                               {"conditionType": "g2"}]},
               "status": {"phase": "Pending", "nominatedNodeName": "n2", "conditions": [
                   {"type": "g1", "status": "True"}]}},
     ["x", "0/0", "Pending", "0", "5m", "<none>", "<none>", "n2", "1/2"]),
]


@pytest.mark.parametrize(("case", "pod", "cells"), POD_CASES, ids=[c[0] for c in POD_CASES])
def test_pod_cells(case: str, pod: dict[str, Any], cells: list[Any]) -> None:
    pods = by_resource("", "pods")
    assert pods is not None
    assert row_cells(pods, pod, NOW) == cells


TEMPLATE = {"spec": {"containers": [{"name": "app", "image": "nginx:1"},
                                    {"name": "side", "image": "busybox"}]}}
SEL = {"matchLabels": {"app": "web"}}

KIND_CASES: list[tuple[str, str, dict[str, Any], list[Any]]] = [
    ("apps", "deployments",
     {"metadata": meta("web"), "spec": {"replicas": 3, "selector": SEL, "template": TEMPLATE},
      "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}},
     ["web", "2/3", 3, 2, "5m", "app,side", "nginx:1,busybox", "app=web"]),
    ("apps", "replicasets",
     {"metadata": meta("web-1"), "spec": {"replicas": 2, "selector": SEL, "template": TEMPLATE},
      "status": {"replicas": 2, "readyReplicas": 1}},
     ["web-1", 2, 2, 1, "5m", "app,side", "nginx:1,busybox", "app=web"]),
    ("", "replicationcontrollers",
     {"metadata": meta("rc"), "spec": {"replicas": 1, "selector": {"app": "web"},
                                       "template": TEMPLATE}},
     ["rc", 1, 0, 0, "5m", "app,side", "nginx:1,busybox", "app=web"]),
    ("apps", "statefulsets",
     {"metadata": meta("db"), "spec": {"replicas": 3, "template": TEMPLATE},
      "status": {"readyReplicas": 3}},
     ["db", "3/3", "5m", "app,side", "nginx:1,busybox"]),
    ("apps", "daemonsets",
     {"metadata": meta("agent"), "spec": {"selector": SEL, "template": {"spec": {
         "containers": [{"name": "a", "image": "i"}],
         "nodeSelector": {"kubernetes.io/os": "linux"}}}},
      "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                 "updatedNumberScheduled": 2, "numberAvailable": 1}},
     ["agent", 2, 2, 1, 2, 1, "kubernetes.io/os=linux", "5m", "a", "i", "app=web"]),
    ("", "services",
     {"metadata": meta("web"), "spec": {"type": "ClusterIP", "clusterIPs": ["10.96.0.10"],
                                        "ports": [{"port": 80, "protocol": "TCP"}],
                                        "selector": {"app": "web"}}},
     ["web", "ClusterIP", "10.96.0.10", "<none>", "80/TCP", "5m", "app=web"]),
    ("", "services",
     {"metadata": meta("np"), "spec": {"type": "NodePort", "clusterIPs": ["10.96.0.11"],
                                       "ports": [{"port": 80, "nodePort": 30080,
                                                  "protocol": "TCP"},
                                                 {"port": 53, "protocol": "UDP"}]}},
     ["np", "NodePort", "10.96.0.11", "<none>", "80:30080/TCP,53/UDP", "5m", "<none>"]),
    ("", "services",
     {"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"],
                                       "ports": [{"port": 443, "nodePort": 31443,
                                                  "protocol": "TCP"}]}},
     ["lb", "LoadBalancer", "10.96.0.12", "<pending>", "443:31443/TCP", "5m", "<none>"]),
    ("", "services",
     {"metadata": meta("ext"), "spec": {"type": "ExternalName", "externalName": "a.example"}},
     ["ext", "ExternalName", "<none>", "a.example", "<none>", "5m", "<none>"]),
    ("", "endpoints",
     {"metadata": meta("web"), "subsets": [{"addresses": [{"ip": f"10.0.0.{i}"}
                                                          for i in range(1, 5)],
                                            "ports": [{"port": 80}]}]},
     ["web", "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...", "5m"]),
    ("", "endpoints", {"metadata": meta("none")}, ["none", "<none>", "5m"]),
    ("discovery.k8s.io", "endpointslices",
     {"metadata": meta("web-abc"), "addressType": "IPv4", "ports": [{"port": 80}],
      "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]},
     ["web-abc", "IPv4", "80", "10.0.0.1,10.0.0.2", "5m"]),
    ("", "configmaps", {"metadata": meta("cfg"), "data": {"a": "1"}, "binaryData": {"b": "AA=="}},
     ["cfg", 2, "5m"]),
    ("", "secrets", {"metadata": meta("s"), "type": "Opaque", "data": {"a": "MQ=="}},
     ["s", "Opaque", 1, "5m"]),
    ("", "namespaces", {"metadata": meta("prod"), "status": {"phase": "Active"}},
     ["prod", "Active", "5m"]),
    ("", "serviceaccounts", {"metadata": meta("default")}, ["default", 0, "5m"]),
    ("", "nodes",
     {"metadata": meta("n1", labels={"node-role.kubernetes.io/control-plane": "",
                                     "kubernetes.io/role": "worker"}),
      "spec": {"unschedulable": True},
      "status": {"conditions": [{"type": "Ready", "status": "True"}],
                 "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}],
                 "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian",
                              "kernelVersion": "6.1", "containerRuntimeVersion": "runc://1.1"}}},
     ["n1", "Ready,SchedulingDisabled", "control-plane,worker", "5m", "v1.32.0",
      "192.168.1.10", "<none>", "Debian", "6.1", "runc://1.1"]),
    ("", "nodes", {"metadata": meta("n2")},
     ["n2", "Unknown", "<none>", "5m", "", "<none>", "<none>", "<unknown>", "<unknown>",
      "<unknown>"]),
    ("", "events",
     {"metadata": meta("web.17"), "type": "Warning", "reason": "BackOff",
      "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{a}"},
      "source": {"component": "kubelet", "host": "n1"}, "message": " Back-off \n",
      "firstTimestamp": T_5M, "lastTimestamp": T_2M, "count": 7},
     ["2m", "Warning", "BackOff", "pod/web", "spec.containers{a}", "kubelet, n1", "Back-off",
      "5m", 7, "web.17"]),
    ("events.k8s.io", "events",
     {"metadata": meta("e2"), "type": "Normal", "reason": "Scheduled", "note": "assigned",
      "regarding": {"kind": "Pod", "name": "web"}, "eventTime": "2024-05-01T11:59:00.000000Z",
      "reportingController": "default-scheduler", "reportingInstance": "s-1"},
     ["60s", "Normal", "Scheduled", "pod/web", "", "default-scheduler, s-1", "assigned",
      "60s", 1, "e2"]),
    ("batch", "jobs",
     {"metadata": meta("j"), "spec": {"completions": 3, "selector": SEL, "template": TEMPLATE},
      "status": {"succeeded": 3, "startTime": T_5M, "completionTime": T_2M,
                 "conditions": [{"type": "Complete", "status": "True"}]}},
     ["j", "Complete", "3/3", "3m", "5m", "app,side", "nginx:1,busybox", "app=web"]),
    ("batch", "jobs",
     {"metadata": meta("p"), "spec": {"parallelism": 2, "template": TEMPLATE},
      "status": {"startTime": T_2M}},
     ["p", "Running", "0/1 of 2", "2m", "5m", "app,side", "nginx:1,busybox", "<none>"]),
    ("batch", "cronjobs",
     {"metadata": meta("c"), "spec": {"schedule": "*/5 * * * *", "suspend": False,
                                      "jobTemplate": {"spec": {"template": TEMPLATE}}},
      "status": {"active": [{"name": "c-1"}], "lastScheduleTime": T_2M}},
     ["c", "*/5 * * * *", "<none>", "False", 1, "2m", "5m", "app,side", "nginx:1,busybox",
      "<none>"]),
    ("autoscaling", "horizontalpodautoscalers",
     {"metadata": meta("h"), "spec": {
         "scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1,
         "maxReplicas": 5, "metrics": [
             {"type": "Resource", "resource": {"name": "cpu", "target": {
                 "type": "Utilization", "averageUtilization": 80}}},
             {"type": "Resource", "resource": {"name": "memory", "target": {
                 "type": "AverageValue", "averageValue": "0.5Gi"}}}]},
      "status": {"currentReplicas": 2, "currentMetrics": [
          {"type": "Resource", "resource": {"name": "cpu", "current": {
              "averageUtilization": 40}}}]}},
     ["h", "Deployment/web", "cpu: 40%/80%, memory: <unknown>/512Mi", "1", 5, 2, "5m"]),
    ("", "persistentvolumes",
     {"metadata": meta("pv1"), "spec": {"capacity": {"storage": "1024Mi"},
                                        "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                                        "persistentVolumeReclaimPolicy": "Retain",
                                        "claimRef": {"namespace": "d", "name": "c"},
                                        "storageClassName": "fast"},
      "status": {"phase": "Bound"}},
     ["pv1", "1Gi", "RWO,RWX", "Retain", "Bound", "d/c", "fast", "<unset>", "", "5m",
      "<unset>"]),
    ("", "persistentvolumeclaims",
     {"metadata": meta("c"), "spec": {"volumeName": "pv1", "storageClassName": "fast",
                                      "volumeMode": "Filesystem"},
      "status": {"phase": "Bound", "capacity": {"storage": "1Gi"},
                 "accessModes": ["ReadWriteOnce"]}},
     ["c", "Bound", "pv1", "1Gi", "RWO", "fast", "<unset>", "5m", "Filesystem"]),
    ("", "persistentvolumeclaims",
     {"metadata": meta("p"), "spec": {}, "status": {"phase": "Pending"}},
     ["p", "Pending", "", "", "", "", "<unset>", "5m", "<unset>"]),
    ("", "resourcequotas",
     {"metadata": meta("q"), "status": {
         "hard": {"pods": "10", "requests.cpu": "2", "limits.memory": "2Gi"},
         "used": {"pods": "3", "requests.cpu": "500m"}}},
     ["q", "pods: 3/10, requests.cpu: 500m/2", "limits.memory: 0/2Gi", "5m"]),
    ("coordination.k8s.io", "leases",
     {"metadata": meta("l"), "spec": {"holderIdentity": "node-1"}}, ["l", "node-1", "5m"]),
    ("storage.k8s.io", "storageclasses",
     {"metadata": meta("local", annotations={
         "storageclass.kubernetes.io/is-default-class": "true"}),
      "provisioner": "kubeling.io/local", "allowVolumeExpansion": True},
     ["local (default)", "kubeling.io/local", "Delete", "Immediate", True, "5m"]),
    ("apps", "controllerrevisions",
     {"metadata": meta("r", ownerReferences=[{"apiVersion": "apps/v1", "kind": "DaemonSet",
                                              "name": "agent", "controller": True}]),
      "revision": 2},
     ["r", "daemonset.apps/agent", 2, "5m"]),
    ("", "limitranges", {"metadata": meta("lr")}, ["lr", "2024-05-01T11:55:00Z"]),
]


@pytest.mark.parametrize(("group", "resource", "obj", "cells"), KIND_CASES,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(KIND_CASES)])
def test_kind_cells(group: str, resource: str, obj: dict[str, Any], cells: list[Any]) -> None:
    kind = by_resource(group, resource)
    assert kind is not None
    assert row_cells(kind, obj, NOW) == cells


@pytest.mark.parametrize("kind", KINDS, ids=[f"{k.group}/{k.kind}" for k in KINDS])
def test_every_kind_has_matching_columns_and_cells(kind: Any) -> None:
    cols = column_definitions(kind)
    assert cols and {"name", "type", "format", "description", "priority"} <= set(cols[0])
    assert len(row_cells(kind, {"metadata": meta()}, NOW)) == len(cols)


def test_column_names_kubectl_shows() -> None:
    def names(resource: str, group: str = "", priority: int = 0) -> list[str]:
        kind = by_resource(group, resource)
        assert kind is not None
        return [c["name"] for c in column_definitions(kind) if c["priority"] == priority]

    assert names("pods") == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert names("pods", priority=1) == ["IP", "Node", "Nominated Node", "Readiness Gates"]
    assert names("deployments", "apps") == ["Name", "Ready", "Up-to-date", "Available", "Age"]
    assert names("services") == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"]
    assert names("limitranges") == ["Name", "Created At"]


def test_make_table_shapes() -> None:
    pods = by_resource("", "pods")
    assert pods is not None
    pod = {"metadata": meta("done"), "spec": {"containers": []},
           "status": {"phase": "Succeeded"}}
    table = make_table(pods, [pod], resource_version="42", continue_token="c",
                       remaining=3, now=NOW)
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42", "continue": "c",
                                 "remainingItemCount": 3}
    row = table["rows"][0]
    assert row["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": pod["metadata"]}
    assert row["conditions"][0]["reason"] == "Succeeded"
    assert make_table(pods, [pod], include_object="Object", now=NOW)["rows"][0]["object"] is pod
    assert make_table(pods, [pod], include_object="None", now=NOW)["rows"][0]["object"] is None
    headless = make_table(pods, [pod], now=NOW, columns=False)
    assert headless["columnDefinitions"] is None
    assert headless["metadata"] == {}
