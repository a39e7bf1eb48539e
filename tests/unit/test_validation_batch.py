"""batch/v1 Job and CronJob: defaults, the generated selector, validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeling.api.defaults import apply_defaults
from kubeling.api.defaults.batch import prepare_job_for_create
from kubeling.api.kinds import Kind, by_kind
from kubeling.api.validation import validate_create, validate_update
from kubeling.api.validation.batch import cron_schedule_error

Obj = dict[str, Any]
UID = "0d9b6f43-2b55-4a6f-9a4c-7f1b8a8a2f10"


def _kind(name: str) -> Kind:
    kind = by_kind("batch", name)
    assert kind is not None
    return kind


JOB = _kind("Job")
CRON = _kind("CronJob")


def pod_template(restart: str | None = "Never") -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "busybox"}]}
    if restart is not None:
        spec["restartPolicy"] = restart
    return {"spec": spec}


def new_job(restart: str | None = "Never", **spec: Any) -> Obj:
    job: Obj = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "pi", "namespace": "default", "resourceVersion": "1"},
           "spec": {"template": pod_template(restart), **spec}}
    apply_defaults(JOB, job)
    job["metadata"]["uid"] = UID
    prepare_job_for_create(job, UID)
    return job


def causes_of(causes: list[Any]) -> list[tuple[str, str, str]]:
    return [(c.get("field", ""), c["reason"], c["message"]) for c in causes]


def test_job_defaults_and_generated_selector() -> None:
    job = new_job()
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False
    assert spec["manualSelector"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": UID}}
    expected = {"batch.kubernetes.io/controller-uid": UID, "batch.kubernetes.io/job-name": "pi",
                "controller-uid": UID, "job-name": "pi"}
    assert spec["template"]["metadata"]["labels"] == expected
    assert job["metadata"]["labels"] == expected
    assert validate_create(JOB, job) == []


def test_parallelism_alone_leaves_completions_unset() -> None:
    spec = new_job(parallelism=3)["spec"]
    assert spec["parallelism"] == 3
    assert "completions" not in spec


def test_job_keeps_own_labels() -> None:
    job: Obj = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "pi", "namespace": "default", "labels": {"team": "a"}},
           "spec": {"template": pod_template()}}
    apply_defaults(JOB, job)
    prepare_job_for_create(job, UID)
    assert job["metadata"]["labels"] == {"team": "a"}


def test_manual_selector_is_left_alone() -> None:
    job = new_job(manualSelector=True, selector={"matchLabels": {"app": "x"}})
    assert job["spec"]["selector"] == {"matchLabels": {"app": "x"}}
    assert causes_of(validate_create(JOB, job)) == [(
        "spec.template.metadata.labels", "FieldValueInvalid",
        "Invalid value: {}: `selector` does not match template `labels`")]


JOB_CASES = [
    ("default restart policy", {"restart": None}, (
        "spec.template.spec.restartPolicy", "FieldValueRequired",
        'Required value: valid values: "OnFailure", "Never"')),
    ("always", {"restart": "Always"}, (
        "spec.template.spec.restartPolicy", "FieldValueRequired",
        'Required value: valid values: "OnFailure", "Never"')),
    ("negative backoff", {"backoffLimit": -1}, (
        "spec.backoffLimit", "FieldValueInvalid",
        "Invalid value: -1: must be greater than or equal to 0")),
    ("bad completion mode", {"completionMode": "Sometimes"}, (
        "spec.completionMode", "FieldValueNotSupported",
        'Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed"')),
    ("bad replacement policy", {"podReplacementPolicy": "Never"}, (
        "spec.podReplacementPolicy", "FieldValueNotSupported",
        'Unsupported value: "Never": supported values: "Failed", "TerminatingOrFailed"')),
    ("wrong uid selector",
     {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "other"}}}, (
         "spec.selector", "FieldValueInvalid",
         'Invalid value: {"matchLabels":{"batch.kubernetes.io/controller-uid":"other"}}: '
         "`selector` not auto-generated")),
]


@pytest.mark.parametrize(("kwargs", "expected"), [c[1:] for c in JOB_CASES],
                         ids=[c[0] for c in JOB_CASES])
def test_job_rejects(kwargs: dict[str, Any], expected: tuple[str, str, str]) -> None:
    job = new_job(**kwargs)
    assert expected in causes_of(validate_create(JOB, job))


def test_job_update_immutables() -> None:
    old = new_job()
    new = copy.deepcopy(old)
    new["spec"]["completions"] = 4
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"
    fields = [c[0] for c in causes_of(validate_update(JOB, new, old))]
    assert fields == ["spec.completions", "spec.template"]
    assert causes_of(validate_update(JOB, new, old))[0] == (
        "spec.completions", "FieldValueInvalid", "Invalid value: 4: field is immutable")


def test_suspended_job_may_change_scheduling_directives() -> None:
    old = new_job(suspend=True)
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    assert validate_update(JOB, new, old) == []
    new["spec"]["suspend"] = False
    old["spec"]["suspend"] = False
    assert [c.get("field") for c in validate_update(JOB, new, old)] == [
        "spec.template"]


def new_cron(schedule: str = "*/5 * * * *", **spec: Any) -> Obj:
    cron: Obj = {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "default", "resourceVersion": "1"},
            "spec": {"schedule": schedule,
                     "jobTemplate": {"spec": {"template": pod_template("OnFailure")}}, **spec}}
    apply_defaults(CRON, cron)
    return cron


def test_cron_job_defaults() -> None:
    spec = new_cron()["spec"]
    assert spec["concurrencyPolicy"] == "Allow"
    assert spec["suspend"] is False
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 1)
    assert "backoffLimit" not in spec["jobTemplate"]["spec"]
    assert validate_create(CRON, new_cron()) == []


@pytest.mark.parametrize("schedule", [
    "@hourly", "@daily", "@every 1h30m", "0 0 * * SUN", "0-30/10 9-17 1,15 jan-jun mon-fri",
    "CRON_TZ=UTC 0 * * * *"])
def test_cron_accepts(schedule: str) -> None:
    assert cron_schedule_error(schedule) is None


@pytest.mark.parametrize(("schedule", "message"), [
    ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
    ("61 * * * *", "end of range (61) above maximum (59): 61"),
    ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
])
def test_cron_rejects(schedule: str, message: str) -> None:
    assert cron_schedule_error(schedule) == message


CRON_CASES = [
    ("bad schedule", {"schedule": "every day"}, (
        "spec.schedule", "FieldValueInvalid",
        'Invalid value: "every day": expected exactly 5 fields, found 2: [every day]')),
    ("TZ in schedule", {"schedule": "TZ=UTC 0 * * * *"}, (
        "spec.schedule", "FieldValueInvalid",
        'Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, '
        "use timeZone field instead")),
    ("unknown zone", {"timeZone": "Mars/Olympus"}, (
        "spec.timeZone", "FieldValueInvalid",
        'Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus')),
    ("concurrency", {"concurrencyPolicy": "Sometimes"}, (
        "spec.concurrencyPolicy", "FieldValueNotSupported",
        'Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace"')),
    ("negative history", {"failedJobsHistoryLimit": -1}, (
        "spec.failedJobsHistoryLimit", "FieldValueInvalid",
        "Invalid value: -1: must be greater than or equal to 0")),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in CRON_CASES],
                         ids=[c[0] for c in CRON_CASES])
def test_cron_job_rejects(spec: dict[str, Any], expected: tuple[str, str, str]) -> None:
    cron = new_cron(**spec)
    assert expected in causes_of(validate_create(CRON, cron))


def test_cron_job_template_rules() -> None:
    cron = new_cron()
    cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    cron["spec"]["jobTemplate"]["spec"]["selector"] = {"matchLabels": {"a": "b"}}
    cron["metadata"]["name"] = "n" * 53
    causes = causes_of(validate_create(CRON, cron))
    assert ("spec.jobTemplate.spec.template.spec.restartPolicy", "FieldValueRequired",
            'Required value: valid values: "OnFailure", "Never"') in causes
    assert ("spec.jobTemplate.spec.selector", "FieldValueInvalid",
            'Invalid value: {"matchLabels":{"a":"b"}}: `selector` will be auto-generated') in causes
    assert ("metadata.name", "FieldValueInvalid",
            f'Invalid value: "{"n" * 53}": must be no more than 52 characters') in causes
