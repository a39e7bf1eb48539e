"""Defaults of batch/v1 Job and CronJob, and the selector a new Job is given.

A Job normally does not choose its selector: on create the API server labels
the pod template with the Job's uid and name and selects on the uid, so two
Jobs never adopt each other's pods. :func:`prepare_job_for_create` does that;
the registry calls it once the uid is assigned, before validation.
"""

from __future__ import annotations

from typing import Any

from kubeling.api.defaults import defaulter

Obj = dict[str, Any]

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
MAX_INT32 = 2**31 - 1


def _default_template(tmpl: Any) -> None:
    from kubeling.api.defaults import core

    if isinstance(tmpl, dict):
        core.default_pod_template_spec(tmpl)


def _copy_template_labels(obj: Obj) -> None:
    spec = obj.get("spec") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    meta = obj.setdefault("metadata", {})
    if labels is not None and not meta.get("labels"):
        meta["labels"] = dict(labels)


def default_job_spec(spec: Obj) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6
    if spec.get("completionMode") is None:
        spec["completionMode"] = "NonIndexed"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    failure_policy = spec.get("podFailurePolicy")
    if isinstance(failure_policy, dict):
        for rule in failure_policy.get("rules") or []:
            for cond in rule.get("onPodConditions") or []:
                cond.setdefault("status", "True")
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = (
            "Failed" if failure_policy is not None else "TerminatingOrFailed")
    if spec.get("manualSelector") is None:
        spec["manualSelector"] = False


@defaulter("batch", "Job")
def default_job(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    default_job_spec(spec)
    _copy_template_labels(obj)
    _default_template(spec.get("template"))


def prepare_job_for_create(obj: Obj, uid: str) -> None:
    """Label the template with the Job's uid and name and select on the uid.

    Does nothing to the selector when ``spec.manualSelector`` is true. Labels
    the user already set are kept; a conflicting value is then refused by
    validation. The Job's own labels default to its template's.
    """
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    if spec.get("manualSelector") is True:
        return
    name = (obj.get("metadata") or {}).get("name") or ""
    tmpl = spec.get("template")
    if not isinstance(tmpl, dict):
        tmpl = spec["template"] = {}
    tmeta = tmpl.get("metadata")
    if not isinstance(tmeta, dict):
        tmeta = tmpl["metadata"] = {}
    labels = tmeta.get("labels")
    if not isinstance(labels, dict):
        labels = tmeta["labels"] = {}
    meta = obj.setdefault("metadata", {})
    follows_template = not meta.get("labels") or meta.get("labels") == labels
    for key in (LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL):
        labels.setdefault(key, name)
    for key in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        labels.setdefault(key, uid)
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        selector = spec["selector"] = {}
    match = selector.get("matchLabels")
    if not isinstance(match, dict):
        match = selector["matchLabels"] = {}
    match.setdefault(CONTROLLER_UID_LABEL, uid)
    if follows_template:
        meta["labels"] = dict(labels)


@defaulter("batch", "CronJob")
def default_cron_job(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    if not spec.get("concurrencyPolicy"):
        spec["concurrencyPolicy"] = "Allow"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("successfulJobsHistoryLimit") is None:
        spec["successfulJobsHistoryLimit"] = 3
    if spec.get("failedJobsHistoryLimit") is None:
        spec["failedJobsHistoryLimit"] = 1
    job_spec = (spec.get("jobTemplate") or {}).get("spec")
    if isinstance(job_spec, dict):
        _default_template(job_spec.get("template"))
