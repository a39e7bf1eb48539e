"""DefaultTolerationSeconds: new pods tolerate not-ready/unreachable nodes for a while."""

from __future__ import annotations

from kubeling.registry.admission import default_tolerations


def test_adds_both_tolerations_with_300_seconds() -> None:
    pod = {"spec": {"containers": []}}
    default_tolerations(pod)
    assert pod["spec"]["tolerations"] == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300}]


def test_keeps_a_pods_own_toleration_and_adds_only_the_missing_one() -> None:
    own = {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
           "effect": "NoExecute", "tolerationSeconds": 5}
    pod = {"spec": {"tolerations": [own]}}
    default_tolerations(pod)
    assert pod["spec"]["tolerations"][0] == own
    assert [t["key"] for t in pod["spec"]["tolerations"]] == [
        "node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"]


def test_a_wildcard_toleration_tolerates_everything() -> None:
    pod = {"spec": {"tolerations": [{"operator": "Exists"}]}}
    default_tolerations(pod)
    assert pod["spec"]["tolerations"] == [{"operator": "Exists"}]

