"""Decoding of protobuf request bodies, checked against what the real kubectl sends.

The fixtures were captured from kubectl 1.32 by ``tests/tools/capture_server.py``:
``<name>.bin`` is the body of the POST, ``<name>.json`` is kubectl's own
``--dry-run=client -o json`` rendering of the same object, i.e. exactly what
the JSON encoding would have sent instead.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeling.api.errors import StatusError
from kubeling.api.protobuf import decode_protobuf, go_duration

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "protobuf"
CAPTURED = sorted(p.stem for p in FIXTURES.glob("*.bin"))
WITH_JSON = [name for name in CAPTURED if (FIXTURES / f"{name}.json").exists()]


def body(name: str) -> bytes:
    return (FIXTURES / f"{name}.bin").read_bytes()


# A minimal protobuf writer, to build bodies the fixtures do not cover.


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def vfield(num: int, value: int) -> bytes:
    return varint(num << 3) + varint(value)


def lfield(num: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(num << 3 | 2) + varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = lfield(1, api_version) + lfield(2, kind)
    return (
        b"k8s\x00"
        + lfield(1, type_meta)
        + lfield(2, raw)
        + lfield(4, "application/vnd.kubernetes.protobuf")
    )


def meta(name: str | bytes) -> bytes:
    return lfield(1, lfield(1, name))


# Captured bodies.


def test_every_command_of_the_brief_was_captured() -> None:
    expected = {
        "namespace", "configmap", "secret_generic", "secret_tls", "secret_docker",
        "deployment", "service_clusterip", "service_nodeport", "service_loadbalancer",
        "service_externalname", "job", "job_from_cronjob", "cronjob", "serviceaccount",
        "quota", "autoscale",
    }  # fmt: skip
    assert expected <= set(CAPTURED)
    for name in CAPTURED:
        assert body(name).startswith(b"k8s\x00")
        assert "application/vnd.kubernetes.protobuf" in (FIXTURES / f"{name}.txt").read_text()


@pytest.mark.parametrize("name", WITH_JSON)
def test_decoding_equals_kubectls_json_of_the_same_object(name: str) -> None:
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    assert decode_protobuf(body(name)) == expected


def test_namespace() -> None:
    assert decode_protobuf(body("namespace")) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team-a", "creationTimestamp": None},
        "spec": {},
        "status": {},
    }


def test_secret_data_is_base64_and_configmap_keeps_empty_values() -> None:
    assert decode_protobuf(body("secret_generic")) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "creationTimestamp": None},
        "data": {"user": "YWRtaW4=", "pass": "czNjcjN0IQ=="},
        "type": "Opaque",
    }
    cm = decode_protobuf(body("configmap"))
    assert cm["data"] == {"mode": "fast", "empty": "", "unicode": "héllo"}


def test_pointer_zero_is_kept_and_omitempty_zero_is_dropped() -> None:
    deploy = decode_protobuf(body("deployment"))
    assert deploy["spec"]["replicas"] == 0
    assert deploy["spec"]["template"]["spec"]["containers"] == [
        {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}], "resources": {}}
    ]
    job = decode_protobuf(body("job_from_cronjob"))
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["backoffLimit"] == 0
    assert pod["automountServiceAccountToken"] is False
    assert pod["terminationGracePeriodSeconds"] == 0
    assert pod["securityContext"]["runAsGroup"] == 0
    # ContainerPort.hostPort is a plain int32 with omitempty: 0 vanishes as in JSON.
    assert pod["containers"][0]["ports"][1] == {"containerPort": 9090, "protocol": "UDP"}


def test_job_from_cronjob_carries_the_whole_pod_template() -> None:
    job = decode_protobuf(body("job_from_cronjob"))
    served = json.loads((FIXTURES / "served" / "cronjob-rich.json").read_text())
    template = served["spec"]["jobTemplate"]["spec"]["template"]
    # The served "hostPort": 0 is a non-pointer int with omitempty: kubectl drops it.
    del template["spec"]["containers"][0]["ports"][1]["hostPort"]
    assert job["spec"]["template"]["spec"] == template["spec"]
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": "rich",
            "uid": "0b9e2d3c-1111-2222-3333-444455556666",
            "controller": True,
        }
    ]
    main = job["spec"]["template"]["spec"]["containers"][0]
    assert main["livenessProbe"]["httpGet"]["port"] == "http"  # IntOrString as str
    assert main["readinessProbe"]["tcpSocket"]["port"] == 8080  # IntOrString as int
    assert main["resources"]["limits"] == {"cpu": "500m", "memory": "128Mi"}


def test_services_quota_and_autoscale() -> None:
    svc = decode_protobuf(body("service_nodeport"))
    assert svc["spec"]["ports"] == [
        {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}
    ]
    assert decode_protobuf(body("service_externalname"))["spec"]["externalName"] == "example.com"
    quota = decode_protobuf(body("quota"))
    assert quota["spec"] == {
        "hard": {"cpu": "1", "memory": "1Gi", "pods": "10", "services.nodeports": "0"},
        "scopes": ["NotTerminating", "BestEffort"],
    }
    hpa = decode_protobuf(body("autoscale"))
    assert hpa["apiVersion"] == "autoscaling/v1"
    assert hpa["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 2,
        "maxReplicas": 5,
        "targetCPUUtilizationPercentage": 80,
    }


def test_token_request() -> None:
    token = decode_protobuf(body("token"))
    assert token["kind"] == "TokenRequest"
    assert token["spec"] == {"audiences": ["api"], "expirationSeconds": 600}


# Hand-built bodies: special types and wire details.


def time_msg(seconds: int, nanos: int = 0) -> bytes:
    return vfield(1, seconds) + (vfield(2, nanos) if nanos else b"")


def test_times_quantities_and_int_or_string() -> None:
    when = 1704164645  # 2024-01-02T03:04:05Z
    condition = (
        lfield(1, "Available") + lfield(2, "True") + lfield(7, time_msg(when, 123_456_789))
    )  # DeploymentCondition.lastTransitionTime
    status = lfield(6, condition)
    obj = decode_protobuf(envelope("apps/v1", "Deployment", meta("d") + lfield(3, status)))
    assert obj["status"]["conditions"] == [
        {"type": "Available", "status": "True", "lastTransitionTime": "2024-01-02T03:04:05Z"}
    ]
    series = vfield(1, 2) + lfield(2, time_msg(when, 123_456_789))
    event = meta("e") + lfield(2, time_msg(when, 5_000)) + lfield(3, series)
    ev = decode_protobuf(envelope("events.k8s.io/v1", "Event", event))
    assert ev["eventTime"] == "2024-01-02T03:04:05.000005Z"
    assert ev["series"] == {"count": 2, "lastObservedTime": "2024-01-02T03:04:05.123456Z"}
    port = vfield(3, 0) + lfield(4, vfield(1, 1) + lfield(3, "http"))
    svc = decode_protobuf(envelope("v1", "Service", lfield(2, lfield(1, port))))
    assert svc["spec"]["ports"] == [{"port": 0, "targetPort": "http"}]


def test_hpa_v2_metrics() -> None:
    ref = lfield(1, "Deployment") + lfield(2, "web") + lfield(3, "apps/v1")
    cpu = lfield(1, "cpu") + lfield(2, lfield(1, "Utilization") + vfield(4, 0))
    mem = lfield(1, "memory") + lfield(2, lfield(1, "AverageValue") + lfield(3, lfield(1, "1Gi")))
    metrics = lfield(4, lfield(1, "Resource") + lfield(4, cpu))
    metrics += lfield(4, lfield(1, "Resource") + lfield(4, mem))
    spec = lfield(1, ref) + vfield(2, 1) + vfield(3, 4) + metrics
    hpa = decode_protobuf(envelope("autoscaling/v2", "HorizontalPodAutoscaler", lfield(2, spec)))
    assert hpa["spec"] == {
        "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
        "minReplicas": 1,
        "maxReplicas": 4,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 0},
                },
            },
            {
                "type": "Resource",
                "resource": {
                    "name": "memory",
                    "target": {"type": "AverageValue", "averageValue": "1Gi"},
                },
            },
        ],
    }


def test_raw_extension_is_embedded_json_and_negative_ints() -> None:
    raw = lfield(1, json.dumps({"spec": {"x": [1, 2]}}))
    rev = decode_protobuf(
        envelope("apps/v1", "ControllerRevision", meta("r") + lfield(2, raw) + vfield(3, -5))
    )
    assert rev["data"] == {"spec": {"x": [1, 2]}}
    assert rev["revision"] == -5


def test_delete_options_under_any_group_version() -> None:
    opts = vfield(1, 0) + lfield(4, "Foreground") + lfield(5, "All")
    got = decode_protobuf(envelope("apps/v1", "DeleteOptions", opts))
    assert got == {
        "apiVersion": "apps/v1",
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "propagationPolicy": "Foreground",
        "dryRun": ["All"],
    }


def test_unknown_fields_are_skipped_and_packed_ints_accepted() -> None:
    unknown = vfield(99, 7) + lfield(98, b"\x01\x02") + varint(97 << 3 | 1) + b"\0" * 8
    unknown += varint(96 << 3 | 5) + b"\0" * 4
    ns = decode_protobuf(envelope("v1", "Namespace", meta("n") + unknown))
    assert ns == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}
    groups = varint(1) + varint(2) + varint(300)
    psc = lfield(4, groups)  # PodSecurityContext.supplementalGroups, packed
    pod = decode_protobuf(envelope("v1", "Pod", lfield(2, lfield(14, psc))))
    assert pod["spec"]["securityContext"]["supplementalGroups"] == [1, 2, 300]


def test_go_duration_format() -> None:
    second = 1_000_000_000
    assert go_duration(0) == "0s"
    assert go_duration(3600 * second) == "1h0m0s"
    assert go_duration(90 * second + second // 2) == "1m30.5s"
    assert go_duration(1_500_000) == "1.5ms"
    assert go_duration(-2 * second) == "-2s"


# Malformed bodies are 400s.


def bad(data: bytes) -> StatusError:
    with pytest.raises(StatusError) as info:
        decode_protobuf(data)
    assert info.value.code == 400
    assert info.value.reason == "BadRequest"
    return info.value


def test_malformed_bodies_are_bad_requests() -> None:
    assert "magic" in bad(b'{"kind": "Namespace"}').message
    bad(b"k8s\x00" + lfield(1, lfield(1, "v1"))[:-1])  # truncated length
    bad(b"k8s\x00\x0a\xff\xff")  # truncated varint
    bad(b"k8s\x00\x0b")  # wire type 3 (groups)
    assert 'no kind "Widget"' in bad(envelope("v1", "Widget", b"")).message
    assert "UTF-8" in bad(envelope("v1", "Namespace", meta(b"bad\xff\xfe"))).message
    bad(envelope("v1", "Namespace", lfield(1, vfield(1, 3))))  # name sent as a varint
    bad(envelope("v1", "Namespace", b"\x0a\x05ab"))  # field longer than the message
    bad(envelope("apps/v1", "ControllerRevision", lfield(2, lfield(1, b"{not json"))))
    bad(envelope("v1", "Namespace", lfield(1, lfield(8, struct.pack("<q", 1)))))


# Fuzzing: random and mutated bodies decode or are a 400, never a crash.


def decodes_or_400(data: bytes) -> None:
    try:
        result: Any = decode_protobuf(data)
    except StatusError as err:
        assert err.code == 400
        return
    assert isinstance(result, dict)
    json.dumps(result)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_fuzz_random_bodies(data: bytes) -> None:
    decodes_or_400(data)
    decodes_or_400(b"k8s\x00" + data)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(CAPTURED),
    st.lists(
        st.tuples(st.integers(0, 1 << 16), st.integers(0, 255), st.integers(0, 2)), max_size=6
    ),
)
def test_fuzz_mutated_captures(name: str, edits: list[tuple[int, int, int]]) -> None:
    data = bytearray(body(name))
    for where, byte, op in edits:
        i = 4 + where % max(len(data) - 4, 1)
        if op == 0:
            data[i : i + 1] = bytes([byte])
        elif op == 1:
            data[i:i] = bytes([byte])
        else:
            del data[i : i + 1]
    decodes_or_400(bytes(data))


@settings(max_examples=200)
@given(st.sampled_from(WITH_JSON), st.integers(0, 1 << 16))
def test_fuzz_truncated_captures(name: str, cut: int) -> None:
    data = body(name)
    decodes_or_400(data[: cut % len(data)])
