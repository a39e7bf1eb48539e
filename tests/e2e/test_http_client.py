"""The HTTPS client against a real kubeling server: every verb of the client contract,
errors as StatusError, paginated lists, watches, binding, the four patch types, and
leader election on a real Lease."""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from kubeling.api import kinds
from kubeling.api.errors import StatusError
from kubeling.api.kinds import Kind
from kubeling.client.http import ApiUnreachable, HttpClient
from kubeling.client.interface import WatchEvent
from kubeling.client.kubeconfig import KubeconfigError
from kubeling.client.leader import LeaderElector
from kubeling.utils.clock import parse_rfc3339
from tests.cluster import Cluster, free_port


def kind(group: str, resource: str) -> Kind:
    k = kinds.by_resource(group, resource)
    assert k is not None
    return k


CM = kind("", "configmaps")
PODS = kind("", "pods")
NS = kind("", "namespaces")
LEASES = kind("coordination.k8s.io", "leases")


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[HttpClient]:
    c = HttpClient.from_kubeconfig(str(cluster.kubeconfig), field_manager="e2e-http")
    yield c
    await c.close()


@pytest.fixture
async def ns(api: HttpClient) -> str:
    name = f"http-{uuid.uuid4().hex[:10]}"
    await api.create(NS, None, {"metadata": {"name": name}})
    return name


def cm(name: str, **data: str) -> dict[str, object]:
    return {"metadata": {"name": name, "labels": {"app": "t"}}, "data": data}


async def test_configmap_crud(api: HttpClient, ns: str) -> None:
    created = await api.create(CM, ns, cm("a", k="1"))
    assert created["kind"] == "ConfigMap" and created["apiVersion"] == "v1"
    assert created["metadata"]["namespace"] == ns and created["data"] == {"k": "1"}
    got = await api.get(CM, ns, "a")
    assert got["metadata"]["uid"] == created["metadata"]["uid"]
    updated = await api.update(CM, {**got, "data": {"k": "2"}})
    assert updated["data"] == {"k": "2"}
    assert int(updated["metadata"]["resourceVersion"]) > int(got["metadata"]["resourceVersion"])
    deleted = await api.delete(CM, ns, "a")
    if deleted["kind"] == "Status":
        assert deleted["status"] == "Success" and deleted["details"]["name"] == "a"
    else:
        assert deleted["metadata"]["name"] == "a"
    with pytest.raises(StatusError) as err:
        await api.get(CM, ns, "a")
    assert err.value.code == 404


async def test_errors_are_status_errors(api: HttpClient, ns: str) -> None:
    with pytest.raises(StatusError) as err:
        await api.get(CM, ns, "missing")
    assert (err.value.code, err.value.reason) == (404, "NotFound")
    assert err.value.name == "missing" and err.value.kind == "configmaps"
    assert err.value.message == 'configmaps "missing" not found'

    first = await api.create(CM, ns, cm("dup"))
    with pytest.raises(StatusError) as err:
        await api.create(CM, ns, cm("dup"))
    assert (err.value.code, err.value.reason) == (409, "AlreadyExists")

    await api.update(CM, {**first, "data": {"x": "1"}})
    with pytest.raises(StatusError) as err:
        await api.update(CM, {**first, "data": {"x": "2"}})  # stale resourceVersion
    assert (err.value.code, err.value.reason) == (409, "Conflict")

    with pytest.raises(StatusError) as err:
        await api.create(CM, ns, cm("Bad_Name"))
    assert (err.value.code, err.value.reason) == (422, "Invalid")
    assert [c.get("field") for c in err.value.causes] == ["metadata.name"]
    assert err.value.causes[0]["reason"] == "FieldValueInvalid"


async def test_unreachable_server_is_a_connection_error(cluster: Cluster) -> None:
    c = HttpClient(f"https://127.0.0.1:{free_port()}", ca_file=str(cluster.ca))
    try:
        with pytest.raises(ConnectionError):
            await c.get(CM, "default", "x")
        with pytest.raises(ApiUnreachable):
            async for _ in c.watch(CM, "default"):
                pass
    finally:
        await c.close()


async def test_token_and_ca_files(cluster: Cluster, ns: str) -> None:
    c = HttpClient(cluster.url, token=cluster.token, ca_file=str(cluster.ca))
    try:
        assert (await c.list(CM, ns)).items == []
    finally:
        await c.close()
    anonymous = HttpClient(cluster.url, token="wrong", ca_file=str(cluster.ca))
    try:
        with pytest.raises(StatusError) as err:
            await anonymous.list(CM, ns)
        assert err.value.code == 401
    finally:
        await anonymous.close()


async def test_kubeconfig_with_relative_file_paths(cluster: Cluster, tmp_path: Path,
                                                   ns: str) -> None:
    pki = cluster.data_dir / "pki"
    (tmp_path / "certs").mkdir()
    for name in ("ca.crt", "admin.crt", "admin.key"):
        shutil.copy(pki / name, tmp_path / "certs" / name)
    (tmp_path / "config").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "other",
        "clusters": [{"name": "c", "cluster": {"server": cluster.url,
                                               "certificate-authority": "certs/ca.crt"}}],
        "users": [{"name": "u", "user": {"client-certificate": "certs/admin.crt",
                                         "client-key": "certs/admin.key"}}],
        "contexts": [{"name": "wrong", "context": {"cluster": "missing", "user": "u"}},
                     {"name": "other", "context": {"cluster": "c", "user": "u"}}]}))
    c = HttpClient.from_kubeconfig(str(tmp_path / "config"))
    try:
        await c.create(CM, ns, cm("by-cert"))  # a client certificate and no token
        assert [i["metadata"]["name"] for i in (await c.list(CM, ns)).items] == ["by-cert"]
    finally:
        await c.close()
    with pytest.raises(KubeconfigError, match="no cluster named 'missing'"):
        HttpClient.from_kubeconfig(str(tmp_path / "config"), context="wrong")


async def test_list_with_limit_and_continue(api: HttpClient, ns: str) -> None:
    for i in range(5):
        await api.create(CM, ns, cm(f"c{i}"))
    await api.create(CM, ns, {"metadata": {"name": "other", "labels": {"app": "u"}}})
    names: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await api.list(CM, ns, label_selector="app=t", limit=2, continue_=token)
        pages += 1
        assert len(page.items) <= 2 and page.resource_version
        assert all(item["kind"] == "ConfigMap" for item in page.items)
        names += [item["metadata"]["name"] for item in page.items]
        token = page.continue_
        if not token:
            break
    assert names == [f"c{i}" for i in range(5)] and pages == 3
    by_field = await api.list(CM, ns, field_selector="metadata.name=other")
    assert [i["metadata"]["name"] for i in by_field.items] == ["other"]


async def test_watch_sequence(api: HttpClient, ns: str) -> None:
    rv = (await api.list(CM, ns)).resource_version
    events: list[WatchEvent] = []

    async def collect() -> None:
        async for ev in api.watch(CM, ns, resource_version=rv, timeout_seconds=10):
            if ev.type != "BOOKMARK":
                events.append(ev)
            if len(events) == 3:
                return

    task = asyncio.create_task(collect())
    await api.create(CM, ns, cm("w"))
    await api.patch(CM, ns, "w", {"data": {"k": "v"}})
    await api.delete(CM, ns, "w")
    await asyncio.wait_for(task, 10)
    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [
        ("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]
    assert events[1].object["data"] == {"k": "v"}


async def test_watch_ends_when_the_server_closes_it(api: HttpClient, ns: str) -> None:
    await api.create(CM, ns, cm("present"))
    seen = [ev async for ev in api.watch(CM, ns, timeout_seconds=1, allow_bookmarks=False)]
    assert [(e.type, e.object["metadata"]["name"]) for e in seen] == [("ADDED", "present")]


async def test_watch_from_a_compacted_revision_is_410(fresh_cluster: Cluster) -> None:
    from kubeling.storage import open_store

    c = HttpClient.from_kubeconfig(str(fresh_cluster.kubeconfig))
    old = (await c.create(CM, "default", cm("old")))["metadata"]["resourceVersion"]
    await c.patch(CM, "default", "old", {"data": {"k": "v"}})
    await c.close()
    fresh_cluster.stop()
    store = open_store(f"sqlite://{fresh_cluster.data_dir / 'state.db'}")
    try:
        await store.compact(await store.current_revision())
    finally:
        await store.close()
    fresh_cluster.start()
    c = HttpClient.from_kubeconfig(str(fresh_cluster.kubeconfig))
    try:
        with pytest.raises(StatusError) as err:
            async for _ in c.watch(CM, "default", resource_version=old, timeout_seconds=2):
                pass
        assert (err.value.code, err.value.reason) == (410, "Expired")
        assert "too old resource version" in err.value.message
    finally:
        await c.close()


async def test_bind_a_pod(api: HttpClient, ns: str) -> None:
    pod = await api.create(PODS, ns, {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}]}})
    await api.bind(ns, "p", "node-1", uid=pod["metadata"]["uid"])
    bound = await api.get(PODS, ns, "p")
    assert bound["spec"]["nodeName"] == "node-1"
    conditions = {c["type"]: c["status"] for c in bound["status"]["conditions"]}
    assert conditions["PodScheduled"] == "True"
    with pytest.raises(StatusError) as err:
        await api.bind(ns, "p", "node-2")
    assert err.value.code == 409


async def test_all_patch_types(api: HttpClient, ns: str) -> None:
    await api.create(CM, ns, cm("p", a="1"))
    out = await api.patch(CM, ns, "p", [{"op": "add", "path": "/data/b", "value": "2"}],
                          patch_type="json")
    assert out["data"] == {"a": "1", "b": "2"}
    out = await api.patch(CM, ns, "p", {"data": {"a": None}}, patch_type="merge")
    assert out["data"] == {"b": "2"}
    out = await api.patch(CM, ns, "p", {"data": {"c": "3"}}, patch_type="strategic")
    assert out["data"] == {"b": "2", "c": "3"}
    applied = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "p", "namespace": ns}, "data": {"b": "applied"}}
    with pytest.raises(StatusError) as err:
        await api.patch(CM, ns, "p", applied, patch_type="apply", field_manager="other")
    assert err.value.code == 409 and err.value.reason == "Conflict"
    out = await api.patch(CM, ns, "p", applied, patch_type="apply", field_manager="other",
                          force=True)
    assert out["data"]["b"] == "applied"
    managers = {m["manager"] for m in out["metadata"]["managedFields"]}
    assert {"other", "e2e-http"} <= managers


async def test_delete_with_options(api: HttpClient, ns: str) -> None:
    first = await api.create(CM, ns, cm("d"))
    with pytest.raises(StatusError) as err:
        await api.delete(CM, ns, "d", options={"preconditions": {"uid": "not-the-uid"}})
    assert err.value.code == 409
    await api.delete(CM, ns, "d", options={"preconditions": {"uid": first["metadata"]["uid"]},
                                           "propagationPolicy": "Background"})
    assert (await api.list(CM, ns)).items == []


async def test_leader_election_on_a_real_lease(api: HttpClient, ns: str) -> None:
    elector = LeaderElector(api, namespace=ns, name="ctrl", identity="one",
                            lease_duration=3, renew_deadline=2, retry_period=0.2)
    leading = asyncio.Event()
    renewals: list[str] = []

    async def lead() -> None:
        leading.set()
        while True:
            lease = await api.get(LEASES, ns, "ctrl")
            renewals.append(lease["spec"]["renewTime"])
            if len(set(renewals)) >= 3:
                return
            await asyncio.sleep(0.1)

    await asyncio.wait_for(elector.run(lead), 10)
    assert leading.is_set() and not elector.is_leader
    lease = await api.get(LEASES, ns, "ctrl")
    # Released on stop: no holder, so a successor takes over at once.
    assert lease["spec"].get("holderIdentity", "") == ""
    assert lease["spec"]["leaseTransitions"] == 0
    assert parse_rfc3339(renewals[-1]) > parse_rfc3339(renewals[0])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", renewals[0])

    second = LeaderElector(api, namespace=ns, name="ctrl", identity="two",
                           lease_duration=3, renew_deadline=2, retry_period=0.2)
    took_over = asyncio.Event()

    async def lead_two() -> None:
        took_over.set()

    await asyncio.wait_for(second.run(lead_two), 5)
    assert took_over.is_set()
    lease = await api.get(LEASES, ns, "ctrl")
    assert lease["spec"]["leaseTransitions"] == 1
