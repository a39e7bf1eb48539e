"""The official ``kubernetes`` Python client, unchanged, against a real kubeling server.

CRUD on several kinds through the typed APIs, selectors, paginated lists, watches from a
resourceVersion, 410 Gone after compaction, ``create_from_yaml``, server-side apply through
the dynamic client, and dry runs that leave nothing behind.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config, dynamic, utils, watch
from kubernetes.client.rest import ApiException

from tests.cluster import Cluster, wait_for


def api_client(c: Cluster) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(str(c.kubeconfig), client_configuration=cfg)
    return client.ApiClient(cfg)


@pytest.fixture(scope="module")
def api(cluster: Cluster) -> Iterator[client.ApiClient]:
    a = api_client(cluster)
    yield a
    a.close()


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def ns(core: client.CoreV1Api) -> str:
    name = f"py-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def meta(name: str, **labels: str) -> client.V1ObjectMeta:
    return client.V1ObjectMeta(name=name, labels=labels or None)


def status_of(exc: ApiException) -> int:
    return int(exc.status)


def pod_template(app: str) -> client.V1PodTemplateSpec:
    return client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels={"app": app}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
    )


# ----- CRUD per kind ---------------------------------------------------------------------


def test_configmap_crud(core: client.CoreV1Api, ns: str) -> None:
    created = core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=meta("cm", app="x"), data={"a": "1"}))
    assert created.metadata.uid and created.metadata.creation_timestamp
    assert created.metadata.namespace == ns
    got = core.read_namespaced_config_map("cm", ns)
    assert got.data == {"a": "1"}
    assert got.metadata.resource_version == created.metadata.resource_version

    got.data["b"] = "2"
    replaced = core.replace_namespaced_config_map("cm", ns, got)
    assert replaced.data == {"a": "1", "b": "2"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)

    patched = core.patch_namespaced_config_map("cm", ns, {"data": {"a": None, "c": "3"}})
    assert patched.data == {"b": "2", "c": "3"}

    # A replace carrying the old resourceVersion is a conflict.
    got.data["z"] = "stale"
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("cm", ns, got)
    assert status_of(err.value) == 409

    core.delete_namespaced_config_map("cm", ns)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("cm", ns)
    assert status_of(err.value) == 404


def test_secret_string_data_becomes_base64_data(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_secret(ns, client.V1Secret(
        metadata=meta("s"), string_data={"user": "admin"}, data={"raw": "aGk="}))
    s = core.read_namespaced_secret("s", ns)
    assert s.type == "Opaque"
    assert s.data == {"user": "YWRtaW4=", "raw": "aGk="}
    assert not s.string_data
    assert [i.metadata.name for i in core.list_namespaced_secret(ns).items] == ["s"]
    core.delete_namespaced_secret("s", ns)
    assert core.list_namespaced_secret(ns).items == []


def test_deployment_crud_and_scale(api: client.ApiClient, ns: str) -> None:
    apps = client.AppsV1Api(api)
    dep = client.V1Deployment(
        metadata=meta("web"),
        spec=client.V1DeploymentSpec(
            replicas=2, selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=pod_template("web")))
    created = apps.create_namespaced_deployment(ns, dep)
    spec = created.spec
    assert spec.strategy.type == "RollingUpdate"
    assert spec.strategy.rolling_update.max_surge == "25%"
    assert spec.strategy.rolling_update.max_unavailable == "25%"
    assert spec.revision_history_limit == 10
    assert spec.progress_deadline_seconds == 600
    assert created.metadata.generation == 1
    container = spec.template.spec.containers[0]
    assert container.image_pull_policy == "Always"  # no tag means :latest
    assert container.termination_message_path == "/dev/termination-log"
    assert spec.template.spec.restart_policy == "Always"
    assert spec.template.spec.dns_policy == "ClusterFirst"

    scale = apps.read_namespaced_deployment_scale("web", ns)
    assert scale.spec.replicas == 2
    assert scale.status.selector == "app=web"
    apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 5}})
    got = apps.read_namespaced_deployment("web", ns)
    assert got.spec.replicas == 5
    assert got.metadata.generation == 2

    # The deployment controller writes the Deployment too, so update as clients do:
    # a 409 on a stale read is retried on a fresh one (client-go's RetryOnConflict).
    for _ in range(20):
        got = apps.read_namespaced_deployment("web", ns)
        got.spec.template.spec.containers[0].image = "busybox:1.36"
        try:
            replaced = apps.replace_namespaced_deployment("web", ns, got)
            break
        except ApiException as exc:
            if exc.status != 409:
                raise
    assert replaced.spec.template.spec.containers[0].image == "busybox:1.36"
    assert replaced.metadata.generation == 3

    names = [d.metadata.name for d in apps.list_namespaced_deployment(ns).items]
    assert names == ["web"]
    apps.delete_namespaced_deployment("web", ns)
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("web", ns)
    assert status_of(err.value) == 404


def test_service_defaults(core: client.CoreV1Api, ns: str) -> None:
    svc = core.create_namespaced_service(ns, client.V1Service(
        metadata=meta("svc"),
        spec=client.V1ServiceSpec(selector={"app": "web"},
                                  ports=[client.V1ServicePort(port=80)])))
    assert svc.spec.type == "ClusterIP"
    assert svc.spec.session_affinity == "None"
    port = svc.spec.ports[0]
    assert port.protocol == "TCP"
    assert port.target_port == 80
    got = core.read_namespaced_service("svc", ns)
    assert got.spec.ports[0].port == 80
    core.delete_namespaced_service("svc", ns)
    assert core.list_namespaced_service(ns).items == []


def test_namespace_lifecycle(core: client.CoreV1Api) -> None:
    name = f"py-ns-{uuid.uuid4().hex[:8]}"
    created = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    assert created.status.phase == "Active"
    assert created.metadata.labels["kubernetes.io/metadata.name"] == name
    assert created.spec.finalizers == ["kubernetes"]
    assert name in [n.metadata.name for n in core.list_namespace().items]
    core.create_namespaced_config_map(name, client.V1ConfigMap(metadata=meta("inside")))
    core.delete_namespace(name)
    # With the kubernetes finalizer, a deleted namespace terminates (its content is removed)
    # before it goes away.
    try:
        after = core.read_namespace(name)
    except ApiException as exc:
        assert status_of(exc) == 404
    else:
        assert after.status.phase == "Terminating"
        assert after.metadata.deletion_timestamp is not None

    def gone() -> bool:
        try:
            core.read_namespace(name)
        except ApiException as exc:
            return status_of(exc) == 404
        return False

    wait_for(f"namespace {name} to be finalized and removed", gone)
    assert core.list_namespaced_config_map(name).items == []


def test_job_defaults(api: client.ApiClient, ns: str) -> None:
    batch = client.BatchV1Api(api)
    template = client.V1PodTemplateSpec(spec=client.V1PodSpec(
        restart_policy="Never", containers=[client.V1Container(name="c", image="busybox")]))
    job = batch.create_namespaced_job(ns, client.V1Job(
        metadata=meta("job"), spec=client.V1JobSpec(template=template)))
    spec = job.spec
    assert spec.backoff_limit == 6
    assert spec.completions == 1
    assert spec.parallelism == 1
    assert spec.completion_mode == "NonIndexed"
    uid = job.metadata.uid
    assert spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    labels = spec.template.metadata.labels
    assert labels["batch.kubernetes.io/job-name"] == "job"
    assert labels["batch.kubernetes.io/controller-uid"] == uid
    assert [j.metadata.name for j in batch.list_namespaced_job(ns).items] == ["job"]
    batch.delete_namespaced_job("job", ns, propagation_policy="Background")
    with pytest.raises(ApiException) as err:
        batch.read_namespaced_job("job", ns)
    assert status_of(err.value) == 404


def test_hpa_v2_read_through_v1(api: client.ApiClient, ns: str) -> None:
    v2 = client.AutoscalingV2Api(api)
    v1 = client.AutoscalingV1Api(api)
    hpa = client.V2HorizontalPodAutoscaler(
        metadata=meta("hpa"),
        spec=client.V2HorizontalPodAutoscalerSpec(
            scale_target_ref=client.V2CrossVersionObjectReference(
                api_version="apps/v1", kind="Deployment", name="web"),
            min_replicas=2, max_replicas=7,
            metrics=[client.V2MetricSpec(type="Resource", resource=client.V2ResourceMetricSource(
                name="cpu", target=client.V2MetricTarget(type="Utilization",
                                                        average_utilization=60)))]))
    created = v2.create_namespaced_horizontal_pod_autoscaler(ns, hpa)
    assert created.spec.max_replicas == 7
    old = v1.read_namespaced_horizontal_pod_autoscaler("hpa", ns)
    assert old.spec.min_replicas == 2
    assert old.spec.max_replicas == 7
    assert old.spec.target_cpu_utilization_percentage == 60
    assert old.spec.scale_target_ref.name == "web"
    assert old.metadata.resource_version == created.metadata.resource_version

    old.spec.target_cpu_utilization_percentage = 75
    v1.replace_namespaced_horizontal_pod_autoscaler("hpa", ns, old)
    again = v2.read_namespaced_horizontal_pod_autoscaler("hpa", ns)
    targets = [m.resource.target.average_utilization for m in again.spec.metrics]
    assert targets == [75]
    v2.delete_namespaced_horizontal_pod_autoscaler("hpa", ns)
    assert v1.list_namespaced_horizontal_pod_autoscaler(ns).items == []


# ----- selectors and pagination --------------------------------------------------------


def test_label_and_field_selectors(core: client.CoreV1Api, ns: str) -> None:
    for name, labels in (("a", {"tier": "web", "env": "prod"}), ("b", {"tier": "db"}),
                         ("c", {"tier": "web", "env": "dev"}), ("d", {})):
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=meta(name, **labels)))

    def names(**kw: Any) -> list[str]:
        return [i.metadata.name for i in core.list_namespaced_config_map(ns, **kw).items]

    assert names(label_selector="tier=web") == ["a", "c"]
    assert names(label_selector="tier=web,env!=prod") == ["c"]
    assert names(label_selector="tier in (db,web),!env") == ["b"]
    assert names(label_selector="env") == ["a", "c"]
    assert names(label_selector="tier notin (web)") == ["b", "d"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b", label_selector="tier") == ["a", "c"]
    assert names(field_selector=f"metadata.namespace={ns}") == ["a", "b", "c", "d"]
    with pytest.raises(ApiException) as err:
        names(field_selector="data.x=1")
    assert status_of(err.value) == 400
    with pytest.raises(ApiException) as err:
        names(label_selector="tier in (web")
    assert status_of(err.value) == 400
    # Across namespaces, the field selector on the namespace narrows to this one.
    everywhere = core.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={ns}")
    assert sorted(i.metadata.name for i in everywhere.items) == ["a", "b", "c", "d"]


def test_pagination_is_consistent(core: client.CoreV1Api, ns: str) -> None:
    for i in range(25):
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=meta(f"cm-{i:02d}")))
    first = core.list_namespaced_config_map(ns, limit=10)
    assert [i.metadata.name for i in first.items] == [f"cm-{i:02d}" for i in range(10)]
    assert first.metadata.remaining_item_count == 15
    assert first.metadata._continue
    snapshot_rv = first.metadata.resource_version

    # Changes after the first page do not show in the later pages of the same list.
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=meta("cm-99")))
    core.delete_namespaced_config_map("cm-20", ns)

    second = core.list_namespaced_config_map(ns, limit=10, _continue=first.metadata._continue)
    assert [i.metadata.name for i in second.items] == [f"cm-{i:02d}" for i in range(10, 20)]
    assert second.metadata.remaining_item_count == 5
    assert second.metadata.resource_version == snapshot_rv
    third = core.list_namespaced_config_map(ns, limit=10, _continue=second.metadata._continue)
    assert [i.metadata.name for i in third.items] == [f"cm-{i:02d}" for i in range(20, 25)]
    assert not third.metadata._continue
    assert third.metadata.remaining_item_count is None

    now = core.list_namespaced_config_map(ns)
    names = [i.metadata.name for i in now.items]
    assert len(names) == 25 and "cm-99" in names and "cm-20" not in names
    assert int(now.metadata.resource_version) > int(snapshot_rv)

    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map(ns, limit=10, _continue="not-a-token")
    assert status_of(err.value) == 400


# ----- watches ---------------------------------------------------------------------------


def test_watch_from_resource_version(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=meta("before")))
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    cm = core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=meta("w"),
                                                                  data={"v": "1"}))
    core.patch_namespaced_config_map("w", ns, {"data": {"v": "2"}})
    core.delete_namespaced_config_map("w", ns)

    w = watch.Watch()
    seen: list[tuple[str, str, str | None]] = []
    rvs: list[int] = []
    for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=start,
                       timeout_seconds=5):
        obj = ev["object"]
        seen.append((ev["type"], obj.metadata.name, (obj.data or {}).get("v")))
        rvs.append(int(obj.metadata.resource_version))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "w", "1"), ("MODIFIED", "w", "2"), ("DELETED", "w", "2")]
    assert rvs[0] == int(cm.metadata.resource_version)
    assert rvs == sorted(rvs) and len(set(rvs)) == 3
    assert w.resource_version == str(rvs[-1])


def test_watch_without_resource_version_lists_first(core: client.CoreV1Api, ns: str) -> None:
    for name in ("x", "y"):
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=meta(name)))
    w = watch.Watch()
    got = []
    for ev in w.stream(core.list_namespaced_config_map, ns, timeout_seconds=3):
        got.append((ev["type"], ev["object"].metadata.name))
        if len(got) == 2:
            w.stop()
    assert sorted(got) == [("ADDED", "x"), ("ADDED", "y")]


def test_watch_ends_on_timeout(core: client.CoreV1Api, ns: str) -> None:
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    began = time.monotonic()
    events = list(watch.Watch().stream(core.list_namespaced_config_map, ns,
                                       resource_version=rv, timeout_seconds=2))
    took = time.monotonic() - began
    assert events == []
    assert 1.5 <= took < 5, took


def test_watch_with_field_selector_sees_only_its_object(core: client.CoreV1Api,
                                                        ns: str) -> None:
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    for name in ("other", "mine"):
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=meta(name)))
    w = watch.Watch()
    got = []
    for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=rv,
                       field_selector="metadata.name=mine", timeout_seconds=3):
        got.append((ev["type"], ev["object"].metadata.name))
        w.stop()
    assert got == [("ADDED", "mine")]


def test_watch_with_label_selector_sees_objects_enter_and_leave(core: client.CoreV1Api,
                                                                ns: str) -> None:
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=meta("m", app="on")))
    core.patch_namespaced_config_map("m", ns, {"metadata": {"labels": {"app": "off"}}})
    core.patch_namespaced_config_map("m", ns, {"data": {"ignored": "while off"}})
    core.patch_namespaced_config_map("m", ns, {"metadata": {"labels": {"app": "on"}}})
    w = watch.Watch()
    got = []
    for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=rv,
                       label_selector="app=on", timeout_seconds=3):
        got.append((ev["type"], ev["object"].metadata.labels["app"]))
        if len(got) == 3:
            w.stop()
    assert got == [("ADDED", "on"), ("DELETED", "off"), ("ADDED", "on")]


def _compact_to_current(c: Cluster) -> int:
    """Stop the server, compact its SQLite store to the current revision, start it again."""
    from kubeling.storage import open_store

    c.stop()

    async def compact() -> int:
        store = open_store(f"sqlite://{c.data_dir / 'state.db'}")
        try:
            rev = await store.current_revision()
            await store.compact(rev)
            return rev
        finally:
            await store.close()

    rev = asyncio.run(compact())
    c.start()
    return rev


def test_watch_and_list_from_compacted_revision_are_gone(fresh_cluster: Cluster) -> None:
    a = api_client(fresh_cluster)
    core = client.CoreV1Api(a)
    old = core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=meta("old"))).metadata.resource_version
    core.patch_namespaced_config_map("old", "default", {"data": {"k": "v"}})
    a.close()
    compacted = _compact_to_current(fresh_cluster)
    assert compacted > int(old)
    a = api_client(fresh_cluster)
    core = client.CoreV1Api(a)

    with pytest.raises(ApiException) as err:
        list(watch.Watch().stream(core.list_namespaced_config_map, "default",
                                  resource_version=old, timeout_seconds=2))
    assert status_of(err.value) == 410
    assert "Expired" in str(err.value.reason)

    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default", resource_version=old,
                                        resource_version_match="Exact")
    assert status_of(err.value) == 410

    # A watch from the compacted revision itself still works.
    events = list(watch.Watch().stream(core.list_namespaced_config_map, "default",
                                       resource_version=str(compacted), timeout_seconds=1))
    assert events == []
    a.close()


# ----- create_from_yaml, server-side apply, dry run ---------------------------------------


def test_create_from_yaml(api: client.ApiClient, core: client.CoreV1Api, ns: str) -> None:
    objects = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
         "data": {"k": "v"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "app"}},
                  "template": {"metadata": {"labels": {"app": "app"}},
                               "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app"},
         "spec": {"selector": {"app": "app"}, "ports": [{"port": 8080}]}},
    ]
    created = utils.create_from_yaml(api, yaml_objects=objects, namespace=ns)
    kinds = sorted(type(o).__name__ for group in created for o in group)
    assert kinds == ["V1ConfigMap", "V1Deployment", "V1Service"]
    assert core.read_namespaced_config_map("cfg", ns).data == {"k": "v"}
    assert client.AppsV1Api(api).read_namespaced_deployment("app", ns).spec.replicas == 1
    assert core.read_namespaced_service("app", ns).spec.ports[0].target_port == 8080

    with pytest.raises(utils.FailToCreateError) as err:
        utils.create_from_yaml(api, yaml_objects=objects[:1], namespace=ns)
    assert [status_of(e) for e in err.value.api_exceptions] == [409]


def test_server_side_apply(api: client.ApiClient, ns: str) -> None:
    dyn = dynamic.DynamicClient(api)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "ssa", "namespace": ns, "labels": {"owner": "alice"}},
            "data": {"a": "1", "b": "2"}}
    first = cms.server_side_apply(body=body, field_manager="alice")
    assert first.data.to_dict() == {"a": "1", "b": "2"}
    managers = {(m.manager, m.operation) for m in first.metadata.managedFields}
    assert managers == {("alice", "Apply")}

    # Another manager setting a field alice owns conflicts, unless it forces.
    bob = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "namespace": ns},
           "data": {"a": "changed"}}
    with pytest.raises(dynamic.exceptions.ConflictError) as err:
        cms.server_side_apply(body=bob, field_manager="bob")
    assert err.value.status == 409
    forced = cms.server_side_apply(body=bob, field_manager="bob", force_conflicts=True)
    assert forced.data.to_dict() == {"a": "changed", "b": "2"}

    # Alice applies again without "a" or "b" : what only she owned goes away.
    body["data"] = {}
    again = cms.server_side_apply(body=body, field_manager="alice")
    assert (again.data.to_dict() if again.data else {}) == {"a": "changed"}
    assert again.metadata.labels.to_dict() == {"owner": "alice"}

    # The raw call: PATCH with the apply content type through ApiClient.call_api.
    raw = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "raw"},
           "data": {"x": "y"}}
    _, code, _ = api.call_api(
        f"/api/v1/namespaces/{ns}/configmaps/raw", "PATCH",
        query_params=[("fieldManager", "raw-client")],
        header_params={"Content-Type": "application/apply-patch+yaml",
                       "Accept": "application/json"},
        body=raw, auth_settings=["BearerToken"], _return_http_data_only=False,
        _preload_content=False)
    assert code == 201
    got = client.CoreV1Api(api).read_namespaced_config_map("raw", ns)
    assert got.data == {"x": "y"}
    assert [m.manager for m in got.metadata.managed_fields] == ["raw-client"]

    with pytest.raises(ApiException) as exc:
        api.call_api(f"/api/v1/namespaces/{ns}/configmaps/raw", "PATCH",
                     header_params={"Content-Type": "application/apply-patch+yaml"},
                     body=raw, auth_settings=["BearerToken"], _preload_content=False)
    assert status_of(exc.value) == 400  # no fieldManager


def test_dry_run_leaves_nothing_behind(api: client.ApiClient, core: client.CoreV1Api,
                                       ns: str) -> None:
    before = core.list_namespaced_config_map(ns).metadata.resource_version
    dry = core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=meta("dry"), data={"a": "1"}), dry_run="All")
    assert dry.metadata.name == "dry" and dry.data == {"a": "1"}
    assert dry.metadata.uid
    assert not dry.metadata.resource_version
    assert core.list_namespaced_config_map(ns).items == []
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("dry", ns)
    assert status_of(err.value) == 404

    apps = client.AppsV1Api(api)
    dep = client.V1Deployment(metadata=meta("d"), spec=client.V1DeploymentSpec(
        selector=client.V1LabelSelector(match_labels={"app": "d"}), template=pod_template("d")))
    dry_dep = apps.create_namespaced_deployment(ns, dep, dry_run="All")
    assert dry_dep.spec.replicas == 1  # defaulted, as a real create would be
    assert apps.list_namespaced_deployment(ns).items == []

    real = core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=meta("real"), data={"a": "1"}))
    rv = real.metadata.resource_version
    patched = core.patch_namespaced_config_map("real", ns, {"data": {"a": "2"}}, dry_run="All")
    assert patched.data == {"a": "2"}
    real.data = {"a": "3"}
    replaced = core.replace_namespaced_config_map("real", ns, real, dry_run="All")
    assert replaced.data == {"a": "3"}
    core.delete_namespaced_config_map("real", ns, dry_run="All")
    after = core.read_namespaced_config_map("real", ns)
    assert after.data == {"a": "1"}
    assert after.metadata.resource_version == rv
    # Nothing happened in the namespace but the one real create.
    listing = core.list_namespaced_config_map(ns)
    assert [i.metadata.name for i in listing.items] == ["real"]
    assert int(rv) > int(before)

    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=meta("real")),
                                          dry_run="All")
    assert status_of(err.value) == 409
