"""A container's environment and argv, as the kubelet builds them."""

from __future__ import annotations

import base64

import pytest

from kubeling.client.interface import Obj
from kubeling.kubelet.envvars import EnvError, argv, expand, make_env

# Kubernetes' own expansion cases (third_party/forked/golang/expansion), as facts.
VARS = {"VAR_A": "A", "VAR_B": "B", "VAR_C": "C", "VAR_REF": "$(VAR_A)",
        "VAR_EMPTY": "", "VAR_EMPTY2": ""}


@pytest.mark.parametrize(("text", "want"), [
    ("$(VAR_A)", "A"),
    ("___$(VAR_B)___", "___B___"),
    ("$(VAR_C)_", "C_"),
    ("$(VAR_A)-$(VAR_A)", "A-A"),
    ("$(VAR_A)-1", "A-1"),
    ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
    ("f000-$$VAR_A", "f000-$VAR_A"),
    ("foo\\$(VAR_C)bar", "foo\\Cbar"),
    ("foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
    ("foo\\\\\\\\$(VAR_A)bar", "foo\\\\\\\\Abar"),
    ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
    ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
    ("$(VAR_REF)", "$(VAR_A)"),
    ("foo$(VAR_EMPTY)bar", "foobar"),
    ("$(VAR_EMPTY)$(VAR_EMPTY2)", ""),
    ("$(VAR_EMPTY)$(VAR_A)", "A"),
    ("f00__(VAR_A)__", "f00__(VAR_A)__"),
    ("$?_boo_$!", "$?_boo_$!"),
    ("$VAR_A", "$VAR_A"),
    ("$(VAR_DNE)", "$(VAR_DNE)"),
    ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
    ("$$$$$$(VAR_A)", "$$$(VAR_A)"),
    ("$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"),
    ("$$$$$$$(VAR_A)", "$$$A"),
    ("--$($($($($--", "--$($($($($--"),
    ("$($($($($--foo$(", "$($($($($--foo$("),
    ("foo0--$($($($(", "foo0--$($($($("),
    ("$(foo$$var)", "$(foo$$var)"),
    ("$(VAR_A", "$(VAR_A"),
    ("$(VAR_A)$", "A$"),
    ("$", "$"),
    ("$$", "$"),
    ("$()", "$()"),
    ("", ""),
    ("$$(VAR_A)", "$(VAR_A)"),
])
def test_expand(text: str, want: str) -> None:
    assert expand(text, VARS) == want


def test_argv_expands_command_and_args_and_keeps_them_apart() -> None:
    env = {"GREETING": "hi", "WHO": "you"}
    c = {"command": ["echo", "$(GREETING)"], "args": ["$(WHO)", "$$(WHO)", "$(NOPE)"]}
    assert argv(c, env) == (("echo", "hi"), ("you", "$(WHO)", "$(NOPE)"))
    assert argv({"args": ["sleep", "$(WHO)"]}, env) == ((), ("sleep", "you"))
    assert argv({}, env) == ((), ())


class FakeObjects:
    def __init__(self, *, configmaps: dict[str, Obj] | None = None,
                 secrets: dict[str, Obj] | None = None, node: Obj | None = None) -> None:
        self.configmaps = configmaps or {}
        self.secrets = secrets or {}
        self._node = node
        self.reads: list[str] = []

    def configmap(self, namespace: str, name: str) -> Obj | None:
        self.reads.append(f"cm/{namespace}/{name}")
        return self.configmaps.get(name)

    def secret(self, namespace: str, name: str) -> Obj | None:
        self.reads.append(f"secret/{namespace}/{name}")
        return self.secrets.get(name)

    def pvc(self, namespace: str, name: str) -> Obj | None:
        return None

    def pv(self, name: str) -> Obj | None:
        return None

    def node(self) -> Obj | None:
        return self._node


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


POD: Obj = {
    "metadata": {"name": "web", "namespace": "prod", "uid": "u-1",
                 "labels": {"app": "web", "tier": "front"},
                 "annotations": {"note": 'say "hi"'}},
    "spec": {"nodeName": "n1", "serviceAccountName": "robot", "containers": [
        {"name": "main", "resources": {"limits": {"memory": "128Mi"},
                                       "requests": {"cpu": "250m", "memory": "64Mi"}}},
        {"name": "side", "resources": {"limits": {"cpu": "2"}}},
    ]},
}


def env_of(container: Obj, objects: FakeObjects | None = None,
           **kw: object) -> list[tuple[str, str]]:
    return make_env(POD, container, objects=objects or FakeObjects(), node_name="n1",
                    host_ip="10.0.0.5", pod_ip="10.1.0.7", pod_ips=["10.1.0.7", "fd00::7"],
                    **kw)  # type: ignore[arg-type]


def test_env_from_then_env_with_overrides_and_expansion_against_earlier_values() -> None:
    objects = FakeObjects(
        configmaps={"cfg": {"data": {"MODE": "fast", "LEVEL": "3"}}},
        secrets={"creds": {"data": {"USER": b64("admin"), "PASS": b64("s3cret")}}})
    container = {
        "name": "main",
        "envFrom": [{"configMapRef": {"name": "cfg"}},
                    {"secretRef": {"name": "creds"}, "prefix": "DB_"}],
        "env": [{"name": "URL", "value": "db://$(DB_USER):$(DB_PASS)@x/$(LATER)"},
                {"name": "MODE", "value": "slow-$(MODE)"},
                {"name": "LATER", "value": "late"},
                {"name": "AGAIN", "value": "$(LATER)"},
                {"name": "EMPTY"}],
    }
    env = env_of(container, objects)
    assert env == [("MODE", "slow-fast"), ("LEVEL", "3"), ("DB_USER", "admin"),
                   ("DB_PASS", "s3cret"), ("URL", "db://admin:s3cret@x/$(LATER)"),
                   ("LATER", "late"), ("AGAIN", "late"), ("EMPTY", "")]


def test_invalid_env_from_names_are_skipped_and_reported() -> None:
    objects = FakeObjects(configmaps={"cfg": {"data": {"1bad": "x", "good": "y",
                                                       "also bad": "z"}}})
    invalid: list[str] = []
    env = env_of({"name": "main", "envFrom": [{"configMapRef": {"name": "cfg"}}]}, objects,
                 invalid=invalid)
    assert env == [("good", "y")]
    assert invalid == ["Keys [1bad, also bad] from the EnvFrom configMap prod/cfg were "
                       "skipped since they are considered invalid environment variable names."]


@pytest.mark.parametrize(("container", "message"), [
    ({"envFrom": [{"configMapRef": {"name": "nope"}}]}, 'configmap "nope" not found'),
    ({"envFrom": [{"secretRef": {"name": "nope"}}]}, 'secret "nope" not found'),
    ({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]},
     'configmap "nope" not found'),
    ({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]},
     "couldn't find key k in ConfigMap prod/cfg"),
    ({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]},
     'secret "nope" not found'),
    ({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}]},
     "couldn't find key k in Secret prod/creds"),
])
def test_missing_sources_fail_with_kubernetes_messages(container: Obj, message: str) -> None:
    objects = FakeObjects(configmaps={"cfg": {"data": {"x": "1"}}},
                          secrets={"creds": {"data": {"y": b64("2")}}})
    with pytest.raises(EnvError) as err:
        env_of({"name": "main", **container}, objects)
    assert err.value.message == message
    assert err.value.reason == "CreateContainerConfigError"


def test_optional_sources_that_are_missing_leave_the_variable_out() -> None:
    objects = FakeObjects(configmaps={"cfg": {"data": {"x": "1"}}})
    container = {"name": "main",
                 "envFrom": [{"configMapRef": {"name": "nope", "optional": True}},
                             {"secretRef": {"name": "nope", "optional": True}}],
                 "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {
                     "name": "cfg", "key": "k", "optional": True}}},
                         {"name": "B", "valueFrom": {"secretKeyRef": {
                             "name": "nope", "key": "k", "optional": True}}},
                         {"name": "C", "valueFrom": {"configMapKeyRef": {
                             "name": "cfg", "key": "x", "optional": True}}}]}
    assert env_of(container, objects) == [("C", "1")]


def field(path: str) -> Obj:
    return {"name": "V", "valueFrom": {"fieldRef": {"fieldPath": path}}}


@pytest.mark.parametrize(("path", "want"), [
    ("metadata.name", "web"),
    ("metadata.namespace", "prod"),
    ("metadata.uid", "u-1"),
    ("metadata.labels['tier']", "front"),
    ("metadata.labels['absent']", ""),
    ("metadata.annotations['note']", 'say "hi"'),
    ("spec.nodeName", "n1"),
    ("spec.serviceAccountName", "robot"),
    ("status.hostIP", "10.0.0.5"),
    ("status.hostIPs", "10.0.0.5"),
    ("status.podIP", "10.1.0.7"),
    ("status.podIPs", "10.1.0.7,fd00::7"),
])
def test_field_refs(path: str, want: str) -> None:
    assert env_of({"name": "main", "env": [field(path)]}) == [("V", want)]


def resource(res: str, divisor: str | None = None, container: str | None = None) -> Obj:
    ref: Obj = {"resource": res}
    if divisor:
        ref["divisor"] = divisor
    if container:
        ref["containerName"] = container
    return {"name": "V", "valueFrom": {"resourceFieldRef": ref}}


NODE = {"status": {"allocatable": {"cpu": "4", "memory": "8Gi",
                                   "ephemeral-storage": "100Gi", "pods": "110"}}}


@pytest.mark.parametrize(("ref", "want"), [
    (resource("requests.cpu"), "1"),  # 250m rounded up to whole cores
    (resource("requests.cpu", "1m"), "250"),
    (resource("requests.memory"), str(64 * 1024 * 1024)),
    (resource("requests.memory", "1Mi"), "64"),
    (resource("limits.memory", "1Mi"), "128"),
    (resource("limits.cpu"), "4"),  # unset limit: the node's allocatable
    (resource("limits.cpu", "1m"), "4000"),
    (resource("limits.ephemeral-storage", "1Gi"), "100"),
    (resource("requests.ephemeral-storage"), "0"),
    (resource("limits.cpu", container="side"), "2"),
])
def test_resource_field_refs(ref: Obj, want: str) -> None:
    objects = FakeObjects(node=NODE)
    assert env_of(POD["spec"]["containers"][0] | {"env": [ref]}, objects) == [("V", want)]


def test_value_from_results_are_not_expanded_but_values_are() -> None:
    objects = FakeObjects(configmaps={"cfg": {"data": {"k": "$(NAME)"}}})
    container = {"name": "main", "env": [
        field("metadata.name") | {"name": "NAME"},
        {"name": "RAW", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
        {"name": "GREETING", "value": "hello $(NAME) from $(RAW)"}]}
    assert env_of(container, objects) == [("NAME", "web"), ("RAW", "$(NAME)"),
                                          ("GREETING", "hello web from $(NAME)")]


def test_service_env_expands_and_comes_last_without_overriding() -> None:
    container = {"name": "main", "env": [
        {"name": "API", "value": "http://$(KUBERNETES_SERVICE_HOST)"},
        {"name": "KUBERNETES_PORT", "value": "mine"}]}
    env = env_of(container, service_env={"KUBERNETES_SERVICE_HOST": "10.96.0.1",
                                         "KUBERNETES_PORT": "tcp://10.96.0.1:443"})
    assert env == [("API", "http://10.96.0.1"), ("KUBERNETES_PORT", "mine"),
                   ("KUBERNETES_SERVICE_HOST", "10.96.0.1")]


def test_each_object_is_read_once_per_container() -> None:
    objects = FakeObjects(configmaps={"cfg": {"data": {"a": "1", "b": "2"}}})
    container = {"name": "main", "envFrom": [{"configMapRef": {"name": "cfg"}}], "env": [
        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "a"}}},
        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "b"}}}]}
    env_of(container, objects)
    assert objects.reads == ["cm/prod/cfg"]
