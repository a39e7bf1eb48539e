"""The Job controller's pure decisions: indexes, failures, back-off, the pods it creates."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeling.controllers import job_pods as jp
from kubeling.utils.clock import rfc3339
from tests.apiharness import kind

JOBS = kind("batch", "jobs")
T0 = 1_700_000_000.0


def job(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": "job-uid"},
            "spec": {"template": {"metadata": {"labels": {"app": "pi"}}, "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}, **spec}}


def pod(phase: str, *, finished: float | None = None, deleting: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if finished is not None:
        status["containerStatuses"] = [{"name": "c", "state": {"terminated": {
            "exitCode": 0 if phase == "Succeeded" else 1, "finishedAt": rfc3339(finished)}}}]
    meta: dict[str, Any] = {"name": "p", "namespace": "default", "uid": "u"}
    if deleting:
        meta["deletionTimestamp"] = rfc3339(T0)
    return {"metadata": meta, "status": status}


@pytest.mark.parametrize(("indexes", "text"), [
    ([], ""), ([0], "0"), ([1, 3, 4, 5], "1,3-5"), ([5, 4, 3, 0, 1], "0-1,3-5"),
    ([2, 2, 7], "2,7"),
])
def test_format_indexes(indexes: list[int], text: str) -> None:
    assert jp.format_indexes(indexes) == text


@given(st.sets(st.integers(0, 200)))
def test_indexes_round_trip(indexes: set[int]) -> None:
    assert jp.parse_indexes(jp.format_indexes(indexes), 1000) == indexes


def test_parse_indexes_drops_out_of_range_and_garbage() -> None:
    assert jp.parse_indexes("1,3-5,x,9", 5) == {1, 3, 4}


def test_failed_counts_deleted_unfinished_pods_unless_only_failed_are_replaced() -> None:
    assert jp.is_failed(pod("Failed"), job())
    assert not jp.is_failed(pod("Running"), job())
    assert jp.is_failed(pod("Running", deleting=True), job())
    assert not jp.is_failed(pod("Succeeded", deleting=True), job())
    assert not jp.is_failed(pod("Running", deleting=True), job(podReplacementPolicy="Failed"))


def test_backoff_doubles_from_ten_seconds_after_the_last_failure() -> None:
    j = job()
    one = [pod("Failed", finished=T0)]
    assert jp.backoff_remaining(j, one, T0) == 10
    assert jp.backoff_remaining(j, one, T0 + 4) == 6
    assert jp.backoff_remaining(j, one, T0 + 11) == 0
    three = [pod("Failed", finished=T0 - 50), pod("Failed", finished=T0 - 20),
             pod("Failed", finished=T0)]
    assert jp.backoff_remaining(j, three, T0) == 40
    many = [pod("Failed", finished=T0 - i) for i in range(12)]
    assert jp.backoff_remaining(j, many, T0) == 600


def test_a_success_resets_the_backoff() -> None:
    pods = [pod("Failed", finished=T0 - 30), pod("Failed", finished=T0 - 20),
            pod("Succeeded", finished=T0 - 10), pod("Failed", finished=T0)]
    assert jp.backoff_remaining(job(), pods, T0) == 10
    assert jp.backoff_remaining(job(), [pod("Succeeded", finished=T0)], T0) == 0


def test_nonindexed_pod_has_owner_finalizer_and_template() -> None:
    p = jp.new_pod(job(), JOBS, None)
    meta = p["metadata"]
    assert meta["generateName"] == "pi-"
    assert meta["finalizers"] == ["batch.kubernetes.io/job-tracking"]
    assert meta["labels"] == {"app": "pi"}
    assert meta["ownerReferences"][0]["kind"] == "Job"
    assert meta["ownerReferences"][0]["controller"] is True
    assert "env" not in p["spec"]["containers"][0]


def test_indexed_pod_carries_its_index() -> None:
    p = jp.new_pod(job(completionMode="Indexed"), JOBS, 3)
    meta = p["metadata"]
    assert meta["generateName"] == "pi-3-"
    assert meta["annotations"][jp.COMPLETION_INDEX] == "3"
    assert meta["labels"][jp.COMPLETION_INDEX] == "3"
    assert p["spec"]["hostname"] == "pi-3"
    env = p["spec"]["containers"][0]["env"]
    assert env == [{"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
        "apiVersion": "v1",
        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}]
    assert jp.completion_index(p) == 3


def test_conditions_are_added_true_and_flipped_with_a_new_transition_time() -> None:
    conds: list[dict[str, Any]] = []
    assert not jp.ensure_condition(conds, "Suspended", "False", "JobResumed", "Job resumed", T0)
    assert jp.ensure_condition(conds, "Suspended", "True", "JobSuspended", "Job suspended", T0)
    assert not jp.ensure_condition(conds, "Suspended", "True", "JobSuspended", "Job suspended",
                                   T0 + 5)
    assert jp.ensure_condition(conds, "Suspended", "False", "JobResumed", "Job resumed", T0 + 9)
    assert conds == [{"type": "Suspended", "status": "False", "reason": "JobResumed",
                      "message": "Job resumed", "lastProbeTime": rfc3339(T0 + 9),
                      "lastTransitionTime": rfc3339(T0 + 9)}]


def test_active_rank_deletes_unscheduled_then_pending_then_newest_first() -> None:
    def p(name: str, node: str, phase: str, created: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "creationTimestamp": created},
                "spec": {"nodeName": node} if node else {}, "status": {"phase": phase}}
    pods = [p("old-running", "n", "Running", "2024-01-01T00:00:00Z"),
            p("new-running", "n", "Running", "2024-01-02T00:00:00Z"),
            p("pending", "n", "Pending", "2024-01-01T00:00:00Z"),
            p("unscheduled", "", "Pending", "2024-01-01T00:00:00Z")]
    assert [x["metadata"]["name"] for x in sorted(pods, key=jp.active_rank)] == \
        ["unscheduled", "pending", "new-running", "old-running"]
