"""Strict field checking: unknown fields and type errors worded as kube-apiserver words them."""

from __future__ import annotations

import copy
import time

from kubeling.api.fieldcheck import check_fields, handled_as_message, prune_unknown
from kubeling.api.schema import kind_schema

POD = kind_schema("", "v1", "Pod")
DEPLOY = kind_schema("apps", "v1", "Deployment")


def _pod(**spec: object) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec},
    }


def test_a_valid_pod_has_nothing_to_report() -> None:
    result = check_fields(POD, _pod(restartPolicy="Always", terminationGracePeriodSeconds=30))
    assert result.ok
    assert result.strict_message() == ""


def test_unknown_fields_are_listed_in_document_order_with_indexes() -> None:
    body = _pod(foo=1)
    body["metadata"]["bogus"] = "x"
    body["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    result = check_fields(POD, body)
    assert result.unknown == ["metadata.bogus", "spec.containers[0].imagePullPolcy", "spec.foo"]
    assert result.strict_message() == (
        'strict decoding error: unknown field "metadata.bogus", '
        'unknown field "spec.containers[0].imagePullPolcy", unknown field "spec.foo"'
    )
    assert result.warnings()[2] == 'unknown field "spec.foo"'
    assert result.type_error is None


def test_field_names_are_case_sensitive() -> None:
    assert check_fields(POD, {"Spec": {}}).unknown == ["Spec"]


def test_a_string_where_a_list_belongs_is_a_type_error() -> None:
    result = check_fields(POD, {"spec": {"containers": "nginx"}})
    assert result.type_error == (
        "json: cannot unmarshal string into Go struct field PodSpec.spec.containers "
        "of type []v1.Container"
    )
    message = handled_as_message("Pod", "v1", result.type_error)
    assert message.startswith('Pod in version "v1" cannot be handled as a Pod: json: ')


def test_type_error_paths_leave_out_list_indexes() -> None:
    body = _pod()
    body["spec"]["containers"][0]["ports"] = [{"containerPort": "80"}]
    assert check_fields(POD, body).type_error == (
        "json: cannot unmarshal string into Go struct field "
        "ContainerPort.spec.containers.ports.containerPort of type int32"
    )


def test_fractional_and_overflowing_integers_name_the_number() -> None:
    r1 = check_fields(DEPLOY, {"spec": {"replicas": 1.5}})
    assert r1.type_error is not None and "unmarshal number 1.5 into" in r1.type_error
    r2 = check_fields(DEPLOY, {"spec": {"replicas": 2**40}})
    assert r2.type_error is not None and f"number {2**40} into" in r2.type_error
    big = _pod(activeDeadlineSeconds=2**40)
    assert check_fields(POD, big).ok


def test_booleans_are_not_integers_and_integers_are_not_strings() -> None:
    assert check_fields(DEPLOY, {"spec": {"replicas": True}}).type_error is not None
    r = check_fields(POD, {"metadata": {"labels": {"tier": 3}}})
    assert r.type_error == (
        "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels "
        "of type string"
    )


def test_int_or_string_and_quantity_accept_both_forms() -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}}
    assert check_fields(DEPLOY, {"spec": {"strategy": strategy}}).ok
    bad = {"rollingUpdate": {"maxSurge": True}}
    assert check_fields(DEPLOY, {"spec": {"strategy": bad}}).type_error == (
        "json: cannot unmarshal bool into Go struct field "
        "RollingUpdateDeployment.spec.strategy.rollingUpdate.maxSurge of type int32"
    )
    body = _pod()
    body["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "500m", "memory": 128}}
    assert check_fields(POD, body).ok
    body["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "lots"}}
    assert (check_fields(POD, body).type_error or "").startswith("quantities must match")


def test_nulls_and_free_form_fields_are_accepted() -> None:
    assert check_fields(POD, {"metadata": None, "spec": {"nodeSelector": None}}).ok
    managed = {"managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"anything": {}}}}]}
    assert check_fields(POD, {"metadata": managed}).ok


def test_a_body_that_is_not_an_object() -> None:
    assert check_fields(POD, ["x"]).type_error == (
        "json: cannot unmarshal array into Go value of type v1.Pod"
    )


def test_type_errors_and_unknown_fields_are_both_reported() -> None:
    result = check_fields(DEPLOY, {"spec": {"replicas": "3", "extra": 1}})
    assert result.unknown == ["spec.extra"]
    assert result.type_error is not None


def test_prune_unknown_drops_unknown_fields_without_touching_the_input() -> None:
    body = _pod(foo=1)
    body["spec"]["containers"][0]["bogus"] = True
    before = copy.deepcopy(body)
    pruned = prune_unknown(POD, body)
    assert body == before
    assert "foo" not in pruned["spec"]
    assert pruned["spec"]["containers"] == [{"name": "c", "image": "nginx"}]
    assert pruned["metadata"] == body["metadata"]
    clean = _pod()
    assert prune_unknown(POD, clean) is clean


def test_checking_a_pod_is_fast() -> None:
    body = _pod()
    body["spec"]["containers"] = [
        {"name": f"c{i}", "image": "nginx", "env": [{"name": "A", "value": "1"}] * 5,
         "ports": [{"containerPort": 80}], "resources": {"limits": {"cpu": "1"}}}
        for i in range(5)
    ]
    start = time.perf_counter()
    for _ in range(200):
        check_fields(POD, body)
    assert (time.perf_counter() - start) / 200 < 0.002
