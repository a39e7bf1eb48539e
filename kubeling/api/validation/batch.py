"""Validation of batch/v1 Job and CronJob.

The Job controller relies on the generated selector and the template labels
that :func:`kubeling.api.defaults.batch.prepare_job_for_create` wrote, and on a
restart policy that lets a pod finish. CronJob schedules are checked by the
standard five-field cron grammar the CronJob controller runs (with the
``@hourly``-style descriptors), worded as that parser words its errors.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Any

from kubeling.api import field
from kubeling.api.errors import Cause
from kubeling.api.validation import on_create, on_status_update, on_update
from kubeling.api.validation.apps import (
    is_empty_selector,
    nonnegative,
    selector_is_usable,
    selector_matches,
    validate_pod_template,
)

Obj = dict[str, Any]

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
MAX_PARALLELISM_INDEXED = 100_000

# Cron grammar: minute, hour, day of month, month, day of week.
_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (0, 6, _DAYS))
_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_GO_DURATION = re.compile(r"[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+)")
_TZ_PART = re.compile(r"[A-Za-z.\-_0-9+]{1,14}")


def _go_quote(value: str) -> str:
    return field.show(value)


def _known_zone(name: str) -> bool:
    if name in ("UTC", ""):
        return True
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _parse_int(expr: str) -> tuple[int, str | None]:
    if not re.fullmatch(r"[+-]?\d+", expr):
        return 0, (f"failed to parse int from {expr}: strconv.Atoi: parsing "
                   f"{_go_quote(expr)}: invalid syntax")
    num = int(expr)
    if num < 0:
        return 0, f"negative number ({num}) not allowed: {expr}"
    return num, None


def _range_error(expr: str, lo: int, hi: int, names: dict[str, int]) -> str | None:
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    if low_high[0] in ("*", "?"):
        start, end = lo, hi
    else:
        def value(text: str) -> tuple[int, str | None]:
            if text.lower() in names:
                return names[text.lower()], None
            return _parse_int(text)

        start, err = value(low_high[0])
        if err:
            return err
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end, err = value(low_high[1])
            if err:
                return err
        else:
            return f"too many hyphens: {expr}"
    step = 1
    if len(range_and_step) == 2:
        step, err = _parse_int(range_and_step[1])
        if err:
            return err
        if len(low_high) == 1:
            end = hi
    elif len(range_and_step) > 2:
        return f"too many slashes: {expr}"
    if start < lo:
        return f"beginning of range ({start}) below minimum ({lo}): {expr}"
    if end > hi:
        return f"end of range ({end}) above maximum ({hi}): {expr}"
    if start > end:
        return f"beginning of range ({start}) beyond end of range ({end}): {expr}"
    if step == 0:
        return f"step of range should be a positive number: {expr}"
    return None


def cron_schedule_error(spec: str) -> str | None:
    """The standard cron parser's complaint about ``spec``, or None when it parses."""
    if not spec:
        return "empty spec string"
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        zone = spec[spec.find("=") + 1:space if space >= 0 else len(spec)]
        if space < 0 or not _known_zone(zone):
            return f"provided bad location {zone}: unknown time zone {zone}"
        spec = spec[space:].strip()
    if spec.startswith("@"):
        if spec in _DESCRIPTORS:
            return None
        if spec.startswith("@every "):
            duration = spec[len("@every "):]
            if not _GO_DURATION.fullmatch(duration):
                return (f"failed to parse duration {spec}: time: invalid duration "
                        f"{_go_quote(duration)}")
            return None
        return f"unrecognized descriptor: {spec}"
    fields = spec.split()
    if len(fields) != 5:
        return f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]"
    for text, (lo, hi, names) in zip(fields, _FIELDS, strict=True):
        for expr in (e for e in text.split(",") if e):
            err = _range_error(expr, lo, hi, names)
            if err:
                return err
    return None


# Job


def _has_label(labels: dict[str, str], key: str, expected: str, path: str) -> list[Cause]:
    at = f"{path}.labels[{key}]"
    if key not in labels:
        return [field.required(at, expected)]
    if labels[key] != expected:
        return [field.invalid(at, labels, expected)]
    return []


def validate_generated_selector(obj: Obj) -> list[Cause]:
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    if spec.get("manualSelector") is True or selector is None:
        return []
    meta = obj.get("metadata") or {}
    uid = meta.get("uid") or ""
    name = meta.get("name") or ""
    causes: list[Cause] = []
    if not uid:
        causes.append(field.required("metadata.uid"))
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    tpath = "spec.template.metadata"
    causes.extend(_has_label(labels, CONTROLLER_UID_LABEL, uid, tpath))
    causes.extend(_has_label(labels, JOB_NAME_LABEL, name, tpath))
    expected = {CONTROLLER_UID_LABEL: uid, JOB_NAME_LABEL: name}
    if selector_is_usable(selector) and not selector_matches(selector, expected):
        causes.append(field.invalid("spec.selector", selector, "`selector` not auto-generated"))
    return causes


def _restart_policy(spec: Obj, path: str) -> list[Cause]:
    policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy", "")
    at = f"{path}.template.spec.restartPolicy"
    if policy in ("Always", ""):
        return [field.required(at, 'valid values: "OnFailure", "Never"')]
    if policy not in ("OnFailure", "Never"):
        return [field.not_supported(at, policy, ["OnFailure", "Never"])]
    if spec.get("podFailurePolicy") is not None and policy != "Never":
        return [field.invalid(at, policy, 'only "Never" is supported when podFailurePolicy '
                                          "is specified")]
    return []


def validate_job_spec_common(spec: Obj, path: str) -> list[Cause]:
    """What a Job and a CronJob's job template share (no selector rules)."""
    causes: list[Cause] = []
    for name in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                 "ttlSecondsAfterFinished", "backoffLimitPerIndex", "maxFailedIndexes"):
        causes.extend(nonnegative(spec.get(name), f"{path}.{name}"))
    mode = spec.get("completionMode")
    if spec.get("backoffLimitPerIndex") is not None and mode != "Indexed":
        causes.append(field.forbidden(f"{path}.backoffLimitPerIndex",
                                      "requires indexed completion mode"))
    if mode is not None:
        if mode not in ("NonIndexed", "Indexed"):
            causes.append(field.not_supported(f"{path}.completionMode", mode,
                                              ["NonIndexed", "Indexed"]))
        if mode == "Indexed":
            if spec.get("completions") is None:
                causes.append(field.required(f"{path}.completions",
                                             "when completion mode is Indexed"))
            parallelism = spec.get("parallelism")
            if isinstance(parallelism, int) and parallelism > MAX_PARALLELISM_INDEXED:
                causes.append(field.invalid(
                    f"{path}.parallelism", parallelism,
                    f"must be less than or equal to {MAX_PARALLELISM_INDEXED} "
                    "when completion mode is Indexed"))
    replacement = spec.get("podReplacementPolicy")
    if replacement is not None:
        if spec.get("podFailurePolicy") is not None:
            if replacement != "Failed":
                causes.append(field.not_supported(f"{path}.podReplacementPolicy",
                                                  replacement, ["Failed"]))
        elif replacement not in ("Failed", "TerminatingOrFailed"):
            causes.append(field.not_supported(f"{path}.podReplacementPolicy", replacement,
                                              ["Failed", "TerminatingOrFailed"]))
    causes.extend(validate_pod_template(spec.get("template") or {}, f"{path}.template"))
    causes.extend(_restart_policy(spec, path))
    return causes


def validate_job_spec(spec: Obj, path: str = "spec") -> list[Cause]:
    from kubeling.api.validation import meta

    causes = validate_job_spec_common(spec, path)
    selector = spec.get("selector")
    if selector is None:
        causes.append(field.required(f"{path}.selector"))
    else:
        causes.extend(meta.validate_label_selector(selector, f"{path}.selector"))
    if selector is not None and selector_is_usable(selector):
        if is_empty_selector(selector):
            causes.append(field.required(f"{path}.selector"))
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector_matches(selector, labels):
            causes.append(field.invalid(f"{path}.template.metadata.labels", labels,
                                        "`selector` does not match template `labels`"))
    return causes


@on_create("batch", "Job")
def validate_job(obj: Obj) -> list[Cause]:
    causes = validate_generated_selector(obj)
    spec = obj.get("spec") or {}
    causes.extend(validate_job_spec(spec))
    name = (obj.get("metadata") or {}).get("name") or ""
    completions = spec.get("completions")
    if spec.get("completionMode") == "Indexed" and isinstance(completions, int) \
            and completions > 0 and name:
        from kubeling.api import names

        hostname = f"{name}-{completions - 1}"
        if names.is_dns1123_label(hostname):
            causes.append(field.invalid(
                "metadata.name", name,
                f"will not able to create pod with invalid DNS label: {hostname}"))
    return causes


_SCHEDULING_TEMPLATE_FIELDS = ("nodeSelector", "tolerations", "schedulingGates")


def _comparable_template(tmpl: Obj, other: Obj, loose: bool) -> Obj:
    """``tmpl`` with the fields a suspended, never-started Job may change taken from ``other``."""
    if not loose:
        return tmpl
    out = dict(tmpl)
    meta = dict(out.get("metadata") or {})
    other_meta = other.get("metadata") or {}
    for key in ("labels", "annotations"):
        meta.pop(key, None)
        if key in other_meta:
            meta[key] = other_meta[key]
    out["metadata"] = meta
    pod = dict(out.get("spec") or {})
    other_pod = other.get("spec") or {}
    for key in _SCHEDULING_TEMPLATE_FIELDS:
        pod.pop(key, None)
        if key in other_pod:
            pod[key] = other_pod[key]
    affinity = dict(pod.get("affinity") or {})
    affinity.pop("nodeAffinity", None)
    other_node = (other_pod.get("affinity") or {}).get("nodeAffinity")
    if other_node is not None:
        affinity["nodeAffinity"] = other_node
    pod.pop("affinity", None)
    if affinity:
        pod["affinity"] = affinity
    out["spec"] = pod
    return out


@on_update("batch", "Job")
def validate_job_update(new: Obj, old: Obj) -> list[Cause]:
    spec = new.get("spec") or {}
    old_spec = old.get("spec") or {}
    causes = validate_job_spec(spec)
    completions = spec.get("completions")
    if completions != old_spec.get("completions"):
        if spec.get("completionMode") != "Indexed":
            causes.append(field.immutable("spec.completions", completions))
        elif completions is not None and completions != spec.get("parallelism"):
            causes.append(field.invalid("spec.completions", completions,
                                        "can only be modified in tandem with spec.parallelism"))
    if spec.get("selector") != old_spec.get("selector"):
        causes.append(field.immutable("spec.selector", spec.get("selector")))
    loose = old_spec.get("suspend") is True and not (old.get("status") or {}).get("startTime")
    tmpl = spec.get("template") or {}
    old_tmpl = _comparable_template(old_spec.get("template") or {}, tmpl, loose)
    if _comparable_template(tmpl, tmpl, loose) != old_tmpl:
        causes.append(field.immutable("spec.template", tmpl))
    for name in ("completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy",
                 "successPolicy"):
        if spec.get(name) != old_spec.get(name):
            causes.append(field.immutable(f"spec.{name}", spec.get(name)))
    return causes


@on_status_update("batch", "Job")
def validate_job_status_update(new: Obj, old: Obj) -> list[Cause]:
    status = new.get("status") or {}
    causes: list[Cause] = []
    for name in ("active", "succeeded", "failed", "ready", "terminating"):
        causes.extend(nonnegative(status.get(name), f"status.{name}"))
    return causes


# CronJob


def _schedule(schedule: str, old_schedule: str | None, time_zone: str | None,
              path: str) -> list[Cause]:
    causes: list[Cause] = []
    err = cron_schedule_error(schedule)
    if err:
        causes.append(field.invalid(path, schedule, err))
    allow_tz = old_schedule is not None and "TZ" in old_schedule
    if allow_tz and "TZ" in schedule and time_zone is not None:
        causes.append(field.invalid(path, schedule,
                                    "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
    elif not allow_tz and "TZ" in schedule:
        causes.append(field.invalid(
            path, schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
    return causes


def _time_zone(zone: str | None, path: str) -> list[Cause]:
    if zone is None:
        return []
    if zone == "":
        return [field.invalid(path, zone, "timeZone must be nil or non-empty string")]
    for part in zone.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TZ_PART.fullmatch(part):
            return [field.invalid(path, zone, f"unknown time zone {zone}")]
    causes: list[Cause] = []
    if zone.lower() == "local":
        causes.append(field.invalid(
            path, zone,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"))
    elif not _known_zone(zone):
        causes.append(field.invalid(path, zone, f"unknown time zone {zone}"))
    return causes


def validate_cron_job_spec(spec: Obj, old_spec: Obj | None, path: str = "spec") -> list[Cause]:
    causes: list[Cause] = []
    schedule = spec.get("schedule") or ""
    zone = spec.get("timeZone")
    if not schedule:
        causes.append(field.required(f"{path}.schedule"))
    else:
        old_schedule = None if old_spec is None else old_spec.get("schedule") or ""
        causes.extend(_schedule(schedule, old_schedule, zone, f"{path}.schedule"))
    causes.extend(nonnegative(spec.get("startingDeadlineSeconds"),
                              f"{path}.startingDeadlineSeconds"))
    if old_spec is None or old_spec.get("timeZone") != zone:
        causes.extend(_time_zone(zone, f"{path}.timeZone"))
    policy = spec.get("concurrencyPolicy") or ""
    if policy == "":
        causes.append(field.required(f"{path}.concurrencyPolicy"))
    elif policy not in ("Allow", "Forbid", "Replace"):
        causes.append(field.not_supported(f"{path}.concurrencyPolicy", policy,
                                          ["Allow", "Forbid", "Replace"]))
    tpath = f"{path}.jobTemplate.spec"
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    causes.extend(validate_job_spec_common(job_spec, tpath))
    if job_spec.get("selector") is not None:
        causes.append(field.invalid(f"{tpath}.selector", job_spec["selector"],
                                    "`selector` will be auto-generated"))
    if job_spec.get("manualSelector") is True:
        causes.append(field.not_supported(f"{tpath}.manualSelector", True, ["nil", "false"]))
    for name in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        causes.extend(nonnegative(spec.get(name), f"{path}.{name}"))
    return causes


@on_create("batch", "CronJob")
def validate_cron_job(obj: Obj) -> list[Cause]:
    causes = validate_cron_job_spec(obj.get("spec") or {}, None)
    name = (obj.get("metadata") or {}).get("name") or ""
    if len(name) > 52:
        causes.append(field.invalid("metadata.name", name, "must be no more than 52 characters"))
    return causes


@on_update("batch", "CronJob")
def validate_cron_job_update(new: Obj, old: Obj) -> list[Cause]:
    return validate_cron_job_spec(new.get("spec") or {}, old.get("spec") or {})
