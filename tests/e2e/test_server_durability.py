"""What the API server acknowledged survives: SIGKILL under a concurrent create load, and a clean
restart.

A 201 means the object is durable. The load runs over HTTPS from several clients; every 201 is
recorded with its resourceVersion and uid, the server is killed while creates are in flight,
and after a restart every recorded object must be there unchanged.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import httpx

from tests.cluster import Cluster

NS = "durable"
CM = f"/api/v1/namespaces/{NS}/configmaps"
CLIENTS = 4
WORKERS_PER_CLIENT = 4


def _tls(c: Cluster) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(c.ca))


def _client(c: Cluster) -> httpx.Client:
    return httpx.Client(base_url=c.url, verify=_tls(c), timeout=30,
                        headers={"Authorization": f"Bearer {c.token}"})


def _configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": data}


def _by_name(http: httpx.Client, path: str) -> dict[str, dict[str, Any]]:
    r = http.get(path)
    assert r.status_code == 200, r.text
    return {i["metadata"]["name"]: i for i in r.json()["items"]}


async def _load_until_killed(c: Cluster, *, kill_after: int) -> tuple[dict[str, tuple[str, str]],
                                                                      int]:
    """Create ConfigMaps from several clients; SIGKILL the server once ``kill_after`` were
    acknowledged. Returns the acknowledged ``name -> (resourceVersion, uid)`` and how many
    creates ended without an answer."""
    acked: dict[str, tuple[str, str]] = {}
    unanswered = 0
    enough = asyncio.Event()
    headers = {"Authorization": f"Bearer {c.token}"}

    async def worker(http: httpx.AsyncClient, client_no: int, worker_no: int) -> None:
        nonlocal unanswered
        i = 0
        while True:
            name = f"c{client_no}-w{worker_no}-{i:05d}"
            i += 1
            try:
                r = await http.post(CM, json=_configmap(name, payload="x" * 512))
            except httpx.HTTPError:
                unanswered += 1
                return
            assert r.status_code == 201, r.text
            meta = r.json()["metadata"]
            acked[name] = (meta["resourceVersion"], meta["uid"])
            if len(acked) >= kill_after:
                enough.set()

    clients = [httpx.AsyncClient(base_url=c.url, verify=_tls(c), headers=headers, timeout=10)
               for _ in range(CLIENTS)]
    try:
        tasks = [asyncio.create_task(worker(http, n, w), name=f"load-{n}-{w}")
                 for n, http in enumerate(clients) for w in range(WORKERS_PER_CLIENT)]
        await asyncio.wait_for(enough.wait(), 60)
        await asyncio.to_thread(c.kill)
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    finally:
        for http in clients:
            await http.aclose()
    return acked, unanswered


def test_acknowledged_creates_survive_sigkill(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    with _client(c) as http:
        assert http.post("/api/v1/namespaces",
                         json={"metadata": {"name": NS}}).status_code == 201

    acked, unanswered = asyncio.run(_load_until_killed(c, kill_after=300))
    assert len(acked) >= 300
    # Every worker's last create was cut off by the kill.
    assert unanswered == CLIENTS * WORKERS_PER_CLIENT
    rvs = [int(rv) for rv, _ in acked.values()]
    assert len(set(rvs)) == len(rvs), "two acknowledged creates share a resourceVersion"

    c.start()
    with _client(c) as http:
        stored = _by_name(http, CM)
        missing = sorted(set(acked) - set(stored))
        assert not missing, f"{len(missing)} acknowledged creates lost, e.g. {missing[:5]}"
        changed = {name: (acked[name], (item["metadata"]["resourceVersion"],
                                        item["metadata"]["uid"]))
                   for name, item in stored.items()
                   if name in acked and
                   acked[name] != (item["metadata"]["resourceVersion"], item["metadata"]["uid"])}
        assert not changed
        # At most the creates in flight at the kill may have landed without an answer.
        assert len(stored) - len(acked) <= unanswered
        for name in list(acked)[:3]:
            got = http.get(f"{CM}/{name}").json()
            assert got["data"] == {"payload": "x" * 512}

        # The revision carries on above everything acknowledged before the kill.
        r = http.post(CM, json=_configmap("after-restart"))
        assert r.status_code == 201, r.text
        assert int(r.json()["metadata"]["resourceVersion"]) > max(rvs)
        listed = http.get(CM, params={"limit": "1"}).json()
        assert int(listed["metadata"]["resourceVersion"]) > max(rvs)


def test_data_survives_a_clean_restart(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    with _client(c) as http:
        assert http.post("/api/v1/namespaces",
                         json={"metadata": {"name": NS}}).status_code == 201
        for name in ("keep", "edit", "drop"):
            assert http.post(CM, json=_configmap(name, v="1")).status_code == 201
        start_rv = http.get(CM).json()["metadata"]["resourceVersion"]
        r = http.patch(f"{CM}/edit", json={"data": {"v": "2"}},
                       headers={"Content-Type": "application/merge-patch+json"})
        assert r.status_code == 200, r.text
        assert http.delete(f"{CM}/drop").status_code == 200
        dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
        deps = f"/apis/apps/v1/namespaces/{NS}/deployments"
        assert http.post(deps, json=dep).status_code == 201
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                  "stringData": {"password": "hunter2"}}
        assert http.post(f"/api/v1/namespaces/{NS}/secrets", json=secret).status_code == 201
        before = {path: _by_name(http, path)
                  for path in (CM, deps, f"/api/v1/namespaces/{NS}/secrets", "/api/v1/namespaces")}
        last_rv = int(http.get(CM).json()["metadata"]["resourceVersion"])

    c.stop()
    c.start()

    with _client(c) as http:
        for path, objects in before.items():
            if path == deps:
                # The deployment controller keeps writing the Deployment's status and
                # revision annotation; what the client wrote is its identity and spec.
                after = _by_name(http, path)
                assert {n: (o["metadata"]["uid"], o["spec"]) for n, o in after.items()} == \
                    {n: (o["metadata"]["uid"], o["spec"]) for n, o in objects.items()}
                continue
            assert _by_name(http, path) == objects, path
        assert sorted(before[CM]) == ["edit", "keep"]
        assert before[CM]["edit"]["data"] == {"v": "2"}
        assert http.get(f"{CM}/drop").status_code == 404
        assert int(http.get(CM).json()["metadata"]["resourceVersion"]) >= last_rv

        # A watch from before the restart replays what happened since, in order.
        with http.stream("GET", CM, params={"watch": "true", "resourceVersion": start_rv,
                                            "timeoutSeconds": "2"}) as r:
            assert r.status_code == 200
            events = []
            for line in r.iter_lines():
                if line:
                    ev = json.loads(line)
                    events.append((ev["type"], ev["object"]["metadata"]["name"]))
                    if len(events) == 2:
                        break
        assert events == [("MODIFIED", "edit"), ("DELETED", "drop")]


def test_resource_versions_still_guard_updates_after_a_kill(fresh_cluster: Cluster) -> None:
    """An update made with a resourceVersion read before a kill still works after the
    restart (the revision is the same) and a stale one is refused."""
    c = fresh_cluster
    with _client(c) as http:
        r = http.post("/api/v1/namespaces/default/configmaps", json=_configmap("cas", v="1"))
        assert r.status_code == 201
        obj = r.json()
    c.kill()
    c.start()
    with _client(c) as http:
        path = "/api/v1/namespaces/default/configmaps/cas"
        fresh = {**obj, "data": {"v": "2"}}
        r = http.put(path, json=fresh)
        assert r.status_code == 200, r.text
        r = http.put(path, json={**obj, "data": {"v": "stale"}})
        assert r.status_code == 409
        assert r.json()["reason"] == "Conflict"
        assert http.get(path).json()["data"] == {"v": "2"}
