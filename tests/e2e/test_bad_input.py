"""Malformed and refused requests over HTTPS: the Status a client gets, and a store left alone.

Each case sends one bad request with httpx and checks the code, the Status ``reason`` and,
where Kubernetes names them, the fields in ``details.causes``; then it checks that nothing in
the namespace changed (same objects, same resourceVersions).
"""

from __future__ import annotations

import json
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.cluster import Cluster, wait_for

JSON = "application/json"
MERGE = "application/merge-patch+json"
DEPLOYMENT_PATH = "/apis/apps/v1/namespaces/{ns}/deployments"
CM_PATH = "/api/v1/namespaces/{ns}/configmaps"


def tls(cluster: Cluster) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cluster.ca))


@pytest.fixture(scope="module")
def http(cluster: Cluster) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cluster.url, verify=tls(cluster), timeout=30,
                      headers={"Authorization": f"Bearer {cluster.token}"}) as c:
        yield c


def configmap(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta},
            "data": {"k": "v"}}


def deployment(name: str, app: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": app}},
                     "template": {"metadata": {"labels": {"app": app}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


@pytest.fixture
def ns(http: httpx.Client) -> str:
    """A namespace holding a ConfigMap ``seed`` and a Deployment ``dep``."""
    name = f"bad-{uuid.uuid4().hex[:10]}"
    assert http.post("/api/v1/namespaces", json={"metadata": {"name": name}}).status_code == 201
    assert http.post(CM_PATH.format(ns=name), json=configmap("seed")).status_code == 201
    r = http.post(DEPLOYMENT_PATH.format(ns=name), json=deployment("dep", "a"))
    assert r.status_code == 201, r.text
    # The deployment controller writes the Deployment's status once; let it settle first.
    settled = f"{DEPLOYMENT_PATH.format(ns=name)}/dep"

    def complete() -> bool:
        d = http.get(settled).json()
        conds = {c["type"]: c.get("reason") for c in d.get("status", {}).get("conditions", [])}
        return conds.get("Progressing") == "NewReplicaSetAvailable"

    wait_for("the Deployment's rollout to complete", complete)
    return name


def snapshot(http: httpx.Client, ns: str) -> dict[str, str]:
    """Every ConfigMap and Deployment in ``ns`` with its resourceVersion."""
    out: dict[str, str] = {}
    for resource, path in (("configmaps", CM_PATH), ("deployments", DEPLOYMENT_PATH)):
        r = http.get(path.format(ns=ns))
        assert r.status_code == 200, r.text
        for item in r.json()["items"]:
            out[f"{resource}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    return out


def current(http: httpx.Client, path: str) -> dict[str, Any]:
    r = http.get(path)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@dataclass
class Case:
    """One bad request: what to send, and the Status that must come back."""

    id: str
    method: str
    path: str
    code: int
    reason: str
    body: Any = None
    raw: bytes | None = None
    content_type: str = JSON
    query: dict[str, str] = field(default_factory=dict)
    causes: list[str] | None = None  # the details.causes[].field values, in order
    message: str = ""  # a part of the Status message

    def request(self, http: httpx.Client, ns: str) -> httpx.Response:
        body = self.body(http, ns) if callable(self.body) else self.body
        content = self.raw if self.raw is not None else json.dumps(body).encode()
        return http.request(self.method, self.path.format(ns=ns), content=content,
                            params=self.query, headers={"Content-Type": self.content_type})


def _stale_seed(http: httpx.Client, ns: str) -> dict[str, Any]:
    obj = current(http, f"{CM_PATH.format(ns=ns)}/seed")
    old = dict(obj)
    obj["data"] = {"k": "newer"}
    r = http.put(f"{CM_PATH.format(ns=ns)}/seed", json=obj)
    assert r.status_code == 200, r.text
    old["data"] = {"k": "stale"}
    return old


def _changed_selector(http: httpx.Client, ns: str) -> dict[str, Any]:
    obj = current(http, f"{DEPLOYMENT_PATH.format(ns=ns)}/dep")
    obj["spec"]["selector"] = {"matchLabels": {"app": "b"}}
    obj["spec"]["template"]["metadata"]["labels"] = {"app": "b"}
    return obj


NAME_254 = "a" * 254
PROTOBUF = "application/vnd.kubernetes.protobuf"

CASES = [
    Case("uppercase-name", "POST", CM_PATH, 422, "Invalid", configmap("Bad-Name"),
         causes=["metadata.name"], message="a lowercase RFC 1123 subdomain"),
    Case("name-too-long", "POST", CM_PATH, 422, "Invalid", configmap(NAME_254),
         causes=["metadata.name"], message="must be no more than 253 characters"),
    Case("bad-generate-name", "POST", CM_PATH, 422, "Invalid",
         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "Up-"}},
         message="metadata.generateName"),
    Case("bad-label-key", "POST", CM_PATH, 422, "Invalid",
         configmap("x", labels={"bad key!": "v"}), causes=["metadata.labels"],
         message="name part must consist of alphanumeric characters"),
    Case("bad-label-prefix", "POST", CM_PATH, 422, "Invalid",
         configmap("x", labels={"Not_DNS/k": "v"}), causes=["metadata.labels"],
         message="prefix part"),
    Case("label-value-too-long", "POST", CM_PATH, 422, "Invalid",
         configmap("x", labels={"k": "v" * 64}), causes=["metadata.labels"],
         message="must be no more than 63 characters"),
    Case("bad-label-value", "POST", CM_PATH, 422, "Invalid",
         configmap("x", labels={"k": "-v"}), causes=["metadata.labels"]),
    Case("bad-annotation-key", "POST", CM_PATH, 422, "Invalid",
         configmap("x", annotations={"a/b/c": "v"}), causes=["metadata.annotations"]),
    Case("no-name", "POST", CM_PATH, 422, "Invalid", configmap(""),
         causes=["metadata.name"], message="name or generateName is required"),
    Case("bad-json", "POST", CM_PATH, 400, "BadRequest", raw=b'{"apiVersion": "v1", "kind":'),
    Case("bad-yaml", "POST", CM_PATH, 400, "BadRequest", raw=b"metadata: [name\n  x: :\n",
         content_type="application/yaml"),
    Case("yaml-not-an-object", "POST", CM_PATH, 400, "BadRequest", raw=b"- a\n- b\n",
         content_type="application/yaml"),
    Case("empty-body", "POST", CM_PATH, 400, "BadRequest", raw=b""),
    Case("protobuf-truncated", "POST", CM_PATH, 400, "BadRequest",
         raw=b"k8s\x00\x0a\xff\xff", content_type=PROTOBUF),
    Case("protobuf-without-magic", "POST", CM_PATH, 400, "BadRequest",
         raw=b"\x0a\x02v1\x12\x09ConfigMap", content_type=PROTOBUF),
    Case("wrong-field-type", "POST", CM_PATH, 400, "BadRequest",
         {**configmap("x"), "data": {"k": 1}}, message="cannot unmarshal number"),
    Case("kind-does-not-match-path", "POST", CM_PATH, 400, "BadRequest",
         {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}},
         message="Secret"),
    Case("api-version-does-not-match", "POST", CM_PATH, 400, "BadRequest",
         {**configmap("x"), "apiVersion": "apps/v1"}, message="apps/v1"),
    Case("namespace-does-not-match", "POST", CM_PATH, 400, "BadRequest",
         configmap("x", namespace="elsewhere"), message="does not match the namespace"),
    Case("name-does-not-match-url", "PUT", CM_PATH + "/seed", 400, "BadRequest",
         configmap("other")),
    Case("missing-namespace", "POST", "/api/v1/namespaces/no-such-ns-here/configmaps", 404,
         "NotFound", configmap("x"), message='namespaces "no-such-ns-here" not found'),
    Case("unknown-resource", "POST", "/api/v1/namespaces/{ns}/gizmos", 404, "NotFound",
         configmap("x")),
    Case("immutable-selector-put", "PUT", DEPLOYMENT_PATH + "/dep", 422, "Invalid",
         _changed_selector, causes=["spec.selector"], message="field is immutable"),
    Case("immutable-selector-patch", "PATCH", DEPLOYMENT_PATH + "/dep", 422, "Invalid",
         {"spec": {"selector": {"matchLabels": {"app": "b"}},
                   "template": {"metadata": {"labels": {"app": "b"}}}}},
         content_type=MERGE, causes=["spec.selector"]),
    Case("update-missing-object", "PUT", CM_PATH + "/absent", 404, "NotFound",
         configmap("absent")),
    Case("already-exists", "POST", CM_PATH, 409, "AlreadyExists", configmap("seed"),
         message='configmaps "seed" already exists'),
    Case("oversized-body", "POST", CM_PATH, 413, "RequestEntityTooLarge",
         {**configmap("big"), "data": {"k": "x" * (3 * 1024 * 1024 + 1)}}),
    Case("unknown-content-type", "POST", CM_PATH, 415, "UnsupportedMediaType",
         configmap("x"), content_type="text/plain"),
    Case("unknown-patch-type", "PATCH", CM_PATH + "/seed", 415, "UnsupportedMediaType",
         {"data": {"k": "w"}}, content_type=JSON),
    Case("malformed-merge-patch", "PATCH", CM_PATH + "/seed", 400, "BadRequest",
         raw=b'{"data": ', content_type=MERGE),
    Case("bad-json-patch-path", "PATCH", CM_PATH + "/seed", 422, "Invalid",
         [{"op": "replace", "path": "/data/absent", "value": "v"}],
         content_type="application/json-patch+json"),
    Case("apply-without-field-manager", "PATCH", CM_PATH + "/seed", 400, "BadRequest",
         raw=b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: seed\n",
         content_type="application/apply-patch+yaml", message="fieldManager"),
    Case("strict-unknown-field", "POST", CM_PATH, 400, "BadRequest",
         {**configmap("x"), "bogus": 1, "metadata": {"name": "x", "nope": 2}},
         query={"fieldValidation": "Strict"}, message='unknown field "bogus"'),
    Case("strict-unknown-field-on-update", "PUT", CM_PATH + "/seed", 400, "BadRequest",
         lambda http, ns: {**current(http, f"{CM_PATH.format(ns=ns)}/seed"), "bogus": 1},
         query={"fieldValidation": "Strict"}, message='unknown field "bogus"'),
    # kube-apiserver validates the options of a write as a meta.k8s.io *Options object:
    # a bad dryRun or fieldValidation is 422 Invalid naming the query parameter.
    Case("bad-dry-run", "POST", CM_PATH, 422, "Invalid", configmap("x"),
         query={"dryRun": "Some"}, causes=["dryRun"], message="CreateOptions.meta.k8s.io"),
    Case("bad-dry-run-on-delete", "DELETE", CM_PATH + "/seed", 422, "Invalid", raw=b"",
         query={"dryRun": "true"}, causes=["dryRun"], message="DeleteOptions.meta.k8s.io"),
    Case("bad-field-validation", "POST", CM_PATH, 422, "Invalid", configmap("x"),
         query={"fieldValidation": "Loose"}, causes=["fieldValidation"]),
    Case("field-manager-too-long", "POST", CM_PATH, 422, "Invalid", configmap("x"),
         query={"fieldManager": "m" * 129}, causes=["fieldManager"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_request_is_refused_and_changes_nothing(http: httpx.Client, ns: str,
                                                    case: Case) -> None:
    before = snapshot(http, ns)
    r = case.request(http, ns)
    assert r.status_code == case.code, r.text
    status = r.json()
    assert status["kind"] == "Status" and status["apiVersion"] == "v1"
    assert status["status"] == "Failure"
    assert status["code"] == case.code
    assert status["reason"] == case.reason, status
    assert case.message in status["message"], status["message"]
    if case.causes is not None:
        got = [c.get("field") for c in status["details"]["causes"]]
        assert got == case.causes, status
    assert snapshot(http, ns) == before


def test_stale_resource_version_is_a_conflict(http: httpx.Client, ns: str) -> None:
    stale = _stale_seed(http, ns)
    before = snapshot(http, ns)
    r = http.put(f"{CM_PATH.format(ns=ns)}/seed", json=stale)
    assert r.status_code == 409, r.text
    status = r.json()
    assert status["reason"] == "Conflict"
    assert status["details"] == {"name": "seed", "kind": "configmaps"}
    assert "the object has been modified" in status["message"]
    assert snapshot(http, ns) == before
    assert current(http, f"{CM_PATH.format(ns=ns)}/seed")["data"] == {"k": "newer"}

    # A delete with a stale resourceVersion precondition is refused the same way.
    r = http.request("DELETE", f"{CM_PATH.format(ns=ns)}/seed", json={
        "preconditions": {"resourceVersion": stale["metadata"]["resourceVersion"]}})
    assert r.status_code == 409, r.text
    assert r.json()["reason"] == "Conflict"
    assert snapshot(http, ns) == before


def test_unknown_field_under_warn_is_created_with_a_warning(http: httpx.Client,
                                                            ns: str) -> None:
    body = {**configmap("warned"), "bogus": 1}
    r = http.post(CM_PATH.format(ns=ns), json=body, params={"fieldValidation": "Warn"})
    assert r.status_code == 201, r.text
    assert r.headers["warning"] == '299 - "unknown field \\"bogus\\""'
    assert "bogus" not in r.json()
    # Without fieldValidation the server warns too (Warn is the default).
    r = http.post(CM_PATH.format(ns=ns), json={**configmap("warned2"), "bogus": 1})
    assert r.status_code == 201, r.text
    assert "unknown field" in r.headers["warning"]
    # Ignore drops the field silently.
    r = http.post(CM_PATH.format(ns=ns), json={**configmap("ignored"), "bogus": 1},
                  params={"fieldValidation": "Ignore"})
    assert r.status_code == 201, r.text
    assert "warning" not in r.headers
    assert {"configmaps/warned", "configmaps/warned2"} <= {
        f"configmaps/{i['metadata']['name']}"
        for i in current(http, CM_PATH.format(ns=ns))["items"]}


@pytest.mark.parametrize("auth", [None, "Bearer not-the-token", "Basic YWRtaW46YWRtaW4=",
                                  "Bearer"])
def test_unauthenticated_requests_are_401(cluster: Cluster, http: httpx.Client, ns: str,
                                          auth: str | None) -> None:
    before = snapshot(http, ns)
    headers = {"Authorization": auth} if auth is not None else {}
    with httpx.Client(base_url=cluster.url, verify=tls(cluster), headers=headers) as anon:
        for method, path, body in (("POST", CM_PATH, configmap("intruder")),
                                   ("GET", CM_PATH, None),
                                   ("DELETE", CM_PATH + "/seed", None)):
            r = anon.request(method, path.format(ns=ns),
                             content=json.dumps(body).encode() if body else None)
            assert r.status_code == 401, r.text
            status = r.json()
            assert status["reason"] == "Unauthorized"
            assert status["code"] == 401
        # Health and version stay public.
        assert anon.get("/version").status_code == 200
        assert anon.get("/readyz").status_code == 200
    assert snapshot(http, ns) == before


def test_creating_in_a_terminating_namespace_is_forbidden(http: httpx.Client) -> None:
    name = f"bad-term-{uuid.uuid4().hex[:8]}"
    r = http.post("/api/v1/namespaces",
                  json={"metadata": {"name": name, "finalizers": ["example.com/hold"]}})
    assert r.status_code == 201, r.text
    assert http.post(CM_PATH.format(ns=name), json=configmap("kept")).status_code == 201
    assert http.delete(f"/api/v1/namespaces/{name}").status_code == 200
    try:
        r = http.post(CM_PATH.format(ns=name), json=configmap("late"))
        assert r.status_code == 403, r.text
        status = r.json()
        assert status["reason"] == "Forbidden"
        assert "because it is being terminated" in status["message"]
        causes = status["details"]["causes"]
        assert [(c["reason"], c["field"]) for c in causes] == [
            ("NamespaceTerminating", "metadata.namespace")]
        names = [i["metadata"]["name"] for i in current(http, CM_PATH.format(ns=name))["items"]]
        assert "late" not in names
    finally:
        http.patch(f"/api/v1/namespaces/{name}", json={"metadata": {"finalizers": None}},
                   headers={"Content-Type": MERGE})
        wait_for(f"namespace {name} to go away",
                 lambda: http.get(f"/api/v1/namespaces/{name}").status_code == 404)


def test_terminating_namespace_refusal_names_the_object(http: httpx.Client) -> None:
    name = f"bad-term-{uuid.uuid4().hex[:8]}"
    http.post("/api/v1/namespaces",
              json={"metadata": {"name": name, "finalizers": ["example.com/hold"]}})
    http.delete(f"/api/v1/namespaces/{name}")
    try:
        status = http.post(CM_PATH.format(ns=name), json=configmap("late")).json()
        assert status["message"].startswith('configmaps "late" is forbidden: unable to create '
                                            f"new content in namespace {name}")
        assert status["details"]["name"] == "late"
        assert status["details"]["kind"] == "configmaps"
    finally:
        http.patch(f"/api/v1/namespaces/{name}", json={"metadata": {"finalizers": None}},
                   headers={"Content-Type": MERGE})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and \
                http.get(f"/api/v1/namespaces/{name}").status_code != 404:
            time.sleep(0.05)
