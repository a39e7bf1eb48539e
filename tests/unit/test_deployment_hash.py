"""The pod-template-hash: FNV-32a over go-spew's text of the template, safely encoded."""

from __future__ import annotations

from typing import Any

from kubeling.controllers.deployment.podhash import (
    compute_hash,
    fnv32a,
    safe_encode,
    spew,
)

TEMPLATE: dict[str, Any] = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.26",
                                     "resources": {}, "imagePullPolicy": "IfNotPresent"}],
                     "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                     "securityContext": {}}}


def test_fnv32a_reference_values() -> None:
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    assert fnv32a(b"foobar") == 0xBF9CF968


def test_safe_encoding_of_decimal_digits() -> None:
    assert safe_encode("0123456789") == "456789bcdf"


def test_hash_is_stable_and_depends_on_template_and_collisions() -> None:
    h = compute_hash(TEMPLATE)
    assert h == compute_hash(TEMPLATE)
    assert 1 <= len(h) <= 10 and set(h) <= set("456789bcdf")
    assert compute_hash(TEMPLATE, 1) != h
    assert compute_hash(TEMPLATE, 1) != compute_hash(TEMPLATE, 2)
    other = {**TEMPLATE, "metadata": {"labels": {"app": "db"}}}
    assert compute_hash(other) != h


def test_spew_text_of_go_values() -> None:
    text = spew("v1.PodTemplateSpec", TEMPLATE, typed=True)
    assert text.startswith("(v1.PodTemplateSpec){ObjectMeta:(v1.ObjectMeta){Name:(string) "
                           "GenerateName:(string) ")
    assert "Labels:(map[string]string)map[app:web] Annotations:(map[string]string)<nil>" in text
    assert "Containers:([]v1.Container)[{Name:(string)nginx Image:(string)nginx:1.26 " \
           "Command:([]string)<nil>" in text
    assert "TerminationGracePeriodSeconds:(*int64)30 ActiveDeadlineSeconds:(*int64)<nil>" in text
    assert "SecurityContext:(*v1.PodSecurityContext){SELinuxOptions:(*v1.SELinuxOptions)<nil>" \
        in text
    assert "Resources:(v1.ResourceRequirements){Limits:(v1.ResourceList)<nil> " in text


def test_spew_of_quantities_follows_their_parsed_form() -> None:
    assert spew("resource.Quantity", "100m", typed=False) == (
        "{i:(resource.int64Amount){value:(int64)100 scale:(resource.Scale)-3} "
        "d:(resource.infDecAmount){Dec:(*inf.Dec)<nil>} s:(string)100m "
        "Format:(resource.Format)DecimalSI}")
    # 128Mi is held as bytes without its string; 1Gi keeps it
    assert "value:(int64)134217728 scale:(resource.Scale)0" in spew(
        "resource.Quantity", "128Mi", typed=False)
    assert "s:(string) Format:(resource.Format)BinarySI" in spew(
        "resource.Quantity", "128Mi", typed=False)
    assert "s:(string)1Gi " in spew("resource.Quantity", "1Gi", typed=False)
    assert "value:(int64)5 scale:(resource.Scale)-1} d:(resource.infDecAmount)" \
           "{Dec:(*inf.Dec)<nil>} s:(string) " in spew("resource.Quantity", "0.5", typed=False)


def test_unknown_types_still_hash() -> None:
    with_volume = {**TEMPLATE, "spec": {**TEMPLATE["spec"],
                                        "volumes": [{"name": "v", "emptyDir": {}}]}}
    assert compute_hash(with_volume) != compute_hash(TEMPLATE)
