"""Validation of apps/v1: Deployment, ReplicaSet, StatefulSet, DaemonSet, ControllerRevision.

The workload controllers trust what passes here: a selector that selects the
pods their template makes, a restart policy of Always, sane rollout knobs.
Messages and paths follow kube-apiserver's apps validation and the apps/v1
registry strategies (which make ``spec.selector`` immutable).
"""

from __future__ import annotations

from typing import Any

from kubeling.api import field, names, selectors
from kubeling.api.errors import Cause
from kubeling.api.validation import on_create, on_status_update, on_update

Obj = dict[str, Any]

NONNEGATIVE = "must be greater than or equal to 0"


def nonnegative(value: Any, path: str) -> list[Cause]:
    if isinstance(value, int) and value < 0:
        return [field.invalid(path, value, NONNEGATIVE)]
    return []


def selector_matches(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a metav1.LabelSelector (matchLabels and matchExpressions) selects ``labels``;
    an invalid selector (reported by its own validation) selects nothing."""
    try:
        return selectors.selector_from_object(selector).matches(labels)
    except ValueError:
        return False


def selector_is_usable(selector: Obj | None) -> bool:
    """Whether the selector converts to a labels.Selector (LabelSelectorAsSelector)."""
    if selector is None:
        return True
    for expr in selector.get("matchExpressions") or []:
        op = expr.get("operator")
        values = expr.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                return False
        elif op in ("Exists", "DoesNotExist"):
            if values:
                return False
        else:
            return False
    return True


def is_empty_selector(selector: Obj) -> bool:
    return not selector.get("matchLabels") and not selector.get("matchExpressions")


def validate_pod_template(tmpl: Obj, path: str) -> list[Cause]:
    from kubeling.api.validation import core

    return core.validate_pod_template_spec(tmpl, path)


def validate_selector(selector: Obj | None, path: str, kind_word: str) -> list[Cause]:
    from kubeling.api.validation import meta

    if selector is None:
        return [field.required(path)]
    causes = meta.validate_label_selector(selector, path)
    if is_empty_selector(selector):
        causes.append(field.invalid(path, selector, f"empty selector is invalid for {kind_word}"))
    return causes


def _template_labels(tmpl: Obj) -> dict[str, str]:
    return (tmpl.get("metadata") or {}).get("labels") or {}


def template_matches_selector(selector: Obj | None, tmpl: Obj, path: str) -> list[Cause]:
    if not selector or is_empty_selector(selector) or not selector_is_usable(selector):
        return []
    labels = _template_labels(tmpl)
    if selector_matches(selector, labels):
        return []
    return [field.invalid(f"{path}.metadata.labels", labels,
                          "`selector` does not match template `labels`")]


def _restart_always(tmpl: Obj, path: str, owner: str) -> list[Cause]:
    causes: list[Cause] = []
    pod = tmpl.get("spec") or {}
    policy = pod.get("restartPolicy", "")
    if policy != "Always":
        causes.append(field.not_supported(f"{path}.spec.restartPolicy", policy, ["Always"]))
    if pod.get("activeDeadlineSeconds") is not None:
        causes.append(field.forbidden(f"{path}.spec.activeDeadlineSeconds",
                                      f"activeDeadlineSeconds in {owner} is not Supported"))
    return causes


def replica_set_template(spec: Obj, path: str, owner: str = "ReplicaSet") -> list[Cause]:
    """A pod template owned by a ReplicaSet-like controller (also used by Deployment)."""
    tmpl = spec.get("template")
    if tmpl is None:
        return [field.required(path)]
    causes = template_matches_selector(spec.get("selector"), tmpl, path)
    causes.extend(validate_pod_template(tmpl, path))
    causes.extend(_restart_always(tmpl, path, owner))
    return causes


def int_or_percent_value(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value.endswith("%") and not names.is_valid_percent(value):
            return int(value[:-1])
        try:
            return int(value)
        except ValueError:
            return 0
    return 0


def positive_int_or_percent(value: Any, path: str) -> list[Cause]:
    if isinstance(value, str):
        return [field.invalid(path, value, msg) for msg in names.is_valid_percent(value)]
    if isinstance(value, int) and not isinstance(value, bool):
        return nonnegative(value, path)
    return [field.invalid(path, value, "must be an integer or percentage (e.g '5%')")]


def not_more_than_100_percent(value: Any, path: str) -> list[Cause]:
    if isinstance(value, str) and not names.is_valid_percent(value) and int(value[:-1]) > 100:
        return [field.invalid(path, value, "must not be greater than 100%")]
    return []


# Deployment


def _deployment_strategy(strategy: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    kind = strategy.get("type", "")
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            causes.append(field.forbidden(
                f"{path}.rollingUpdate",
                "may not be specified when strategy `type` is 'Recreate'"))
    elif kind == "RollingUpdate":
        if rolling is None:
            causes.append(field.required(f"{path}.rollingUpdate",
                                         "this should be defaulted and never be nil"))
        else:
            at = f"{path}.rollingUpdate"
            unavailable = rolling.get("maxUnavailable", 0)
            surge = rolling.get("maxSurge", 0)
            causes.extend(positive_int_or_percent(unavailable, f"{at}.maxUnavailable"))
            causes.extend(positive_int_or_percent(surge, f"{at}.maxSurge"))
            if int_or_percent_value(unavailable) == 0 and int_or_percent_value(surge) == 0:
                causes.append(field.invalid(f"{at}.maxUnavailable", unavailable,
                                            "may not be 0 when `maxSurge` is 0"))
            causes.extend(not_more_than_100_percent(unavailable, f"{at}.maxUnavailable"))
    else:
        causes.append(field.not_supported(path, strategy, ["Recreate", "RollingUpdate"]))
    return causes


def validate_deployment_spec(spec: Obj, path: str = "spec") -> list[Cause]:
    causes = nonnegative(spec.get("replicas"), f"{path}.replicas")
    selector = spec.get("selector")
    causes.extend(validate_selector(selector, f"{path}.selector", "deployment"))
    if not selector_is_usable(selector):
        causes.append(field.invalid(f"{path}.selector", selector, "invalid label selector"))
    else:
        causes.extend(replica_set_template(spec, f"{path}.template"))
    causes.extend(_deployment_strategy(spec.get("strategy") or {}, f"{path}.strategy"))
    min_ready = spec.get("minReadySeconds") or 0
    causes.extend(nonnegative(min_ready, f"{path}.minReadySeconds"))
    causes.extend(nonnegative(spec.get("revisionHistoryLimit"), f"{path}.revisionHistoryLimit"))
    deadline = spec.get("progressDeadlineSeconds")
    if isinstance(deadline, int):
        causes.extend(nonnegative(deadline, f"{path}.progressDeadlineSeconds"))
        if isinstance(min_ready, int) and deadline <= min_ready:
            causes.append(field.invalid(f"{path}.progressDeadlineSeconds", deadline,
                                        "must be greater than minReadySeconds"))
    return causes


def _immutable_selector(new: Obj, old: Obj) -> list[Cause]:
    sel = (new.get("spec") or {}).get("selector")
    if sel != (old.get("spec") or {}).get("selector"):
        return [field.immutable("spec.selector", sel)]
    return []


def _status_counts(status: Obj, path: str, fields: tuple[str, ...]) -> list[Cause]:
    causes: list[Cause] = []
    for name in fields:
        causes.extend(nonnegative(status.get(name), f"{path}.{name}"))
    replicas = status.get("replicas") or 0
    for name in fields:
        if name in ("replicas", "observedGeneration", "collisionCount", "unavailableReplicas"):
            continue
        value = status.get(name)
        if isinstance(value, int) and value > replicas:
            causes.append(field.invalid(f"{path}.{name}", value,
                                        "cannot be greater than status.replicas"))
    return causes


def _collision_count(new: Obj, old: Obj) -> list[Cause]:
    now = (new.get("status") or {}).get("collisionCount")
    before = (old.get("status") or {}).get("collisionCount")
    if before is not None and (now is None or now < before):
        return [field.invalid("status.collisionCount", now or 0, "cannot be decremented")]
    return []


@on_create("apps", "Deployment")
def validate_deployment(obj: Obj) -> list[Cause]:
    return validate_deployment_spec(obj.get("spec") or {})


@on_update("apps", "Deployment")
def validate_deployment_update(new: Obj, old: Obj) -> list[Cause]:
    return validate_deployment(new) + _immutable_selector(new, old)


@on_status_update("apps", "Deployment")
def validate_deployment_status_update(new: Obj, old: Obj) -> list[Cause]:
    fields = ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
              "availableReplicas", "unavailableReplicas", "collisionCount")
    return _status_counts(new.get("status") or {}, "status", fields) + _collision_count(new, old)


# ReplicaSet


def validate_replica_set_spec(spec: Obj, path: str = "spec") -> list[Cause]:
    causes = nonnegative(spec.get("replicas"), f"{path}.replicas")
    causes.extend(nonnegative(spec.get("minReadySeconds"), f"{path}.minReadySeconds"))
    selector = spec.get("selector")
    causes.extend(validate_selector(selector, f"{path}.selector", "deployment"))
    if not selector_is_usable(selector):
        causes.append(field.invalid(f"{path}.selector", selector, "invalid label selector"))
    else:
        causes.extend(replica_set_template(spec, f"{path}.template"))
    return causes


@on_create("apps", "ReplicaSet")
def validate_replica_set(obj: Obj) -> list[Cause]:
    return validate_replica_set_spec(obj.get("spec") or {})


@on_update("apps", "ReplicaSet")
def validate_replica_set_update(new: Obj, old: Obj) -> list[Cause]:
    return validate_replica_set(new) + _immutable_selector(new, old)


@on_status_update("apps", "ReplicaSet")
def validate_replica_set_status_update(new: Obj, old: Obj) -> list[Cause]:
    fields = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas",
              "observedGeneration")
    return _status_counts(new.get("status") or {}, "status", fields)


# StatefulSet


def validate_stateful_set_spec(spec: Obj, path: str = "spec") -> list[Cause]:
    from kubeling.api.validation import meta

    causes: list[Cause] = []
    policy = spec.get("podManagementPolicy", "")
    if policy == "":
        causes.append(field.required(f"{path}.podManagementPolicy"))
    elif policy not in ("OrderedReady", "Parallel"):
        causes.append(field.invalid(f"{path}.podManagementPolicy", policy,
                                    "must be 'OrderedReady' or 'Parallel'"))
    strategy = spec.get("updateStrategy") or {}
    kind = strategy.get("type", "")
    rolling = strategy.get("rollingUpdate")
    at = f"{path}.updateStrategy.rollingUpdate"
    if kind == "":
        causes.append(field.required(f"{path}.updateStrategy"))
    elif kind == "OnDelete":
        if rolling is not None:
            causes.append(field.invalid(at, rolling,
                                        "only allowed for updateStrategy 'RollingUpdate'"))
    elif kind == "RollingUpdate":
        if rolling is not None:
            causes.extend(nonnegative(rolling.get("partition"), f"{at}.partition"))
            unavailable = rolling.get("maxUnavailable")
            if unavailable is not None:
                causes.extend(positive_int_or_percent(unavailable, f"{at}.maxUnavailable"))
                if int_or_percent_value(unavailable) == 0:
                    causes.append(field.invalid(f"{at}.maxUnavailable", unavailable,
                                                "cannot be 0"))
                causes.extend(not_more_than_100_percent(unavailable, f"{at}.maxUnavailable"))
    else:
        causes.append(field.invalid(f"{path}.updateStrategy", strategy,
                                    "must be 'RollingUpdate' or 'OnDelete'"))
    retention = spec.get("persistentVolumeClaimRetentionPolicy")
    if retention is not None:
        for name in ("whenDeleted", "whenScaled"):
            value = retention.get(name, "")
            if value not in ("Retain", "Delete"):
                causes.append(field.not_supported(
                    f"{path}.persistentVolumeClaimRetentionPolicy.{name}", value,
                    ["Retain", "Delete"]))
    causes.extend(nonnegative(spec.get("replicas"), f"{path}.replicas"))
    causes.extend(nonnegative(spec.get("minReadySeconds"), f"{path}.minReadySeconds"))
    ordinals = spec.get("ordinals")
    if ordinals is not None:
        causes.extend(nonnegative(ordinals.get("start"), f"{path}.ordinals.start"))
    selector = spec.get("selector")
    if selector is None:
        causes.append(field.required(f"{path}.selector"))
    else:
        causes.extend(meta.validate_label_selector(selector, f"{path}.selector"))
        if is_empty_selector(selector):
            causes.append(field.invalid(f"{path}.selector", selector,
                                        "empty selector is invalid for statefulset"))
    tmpl = spec.get("template") or {}
    if not selector_is_usable(selector):
        causes.append(field.invalid(f"{path}.selector", selector))
    else:
        causes.extend(template_matches_selector(selector, tmpl, f"{path}.template"))
        tmeta = tmpl.get("metadata") or {}
        causes.extend(meta.validate_labels(tmeta.get("labels"), f"{path}.template.labels"))
        causes.extend(meta.validate_annotations(tmeta.get("annotations"),
                                                f"{path}.template.annotations"))
    causes.extend(_restart_always(tmpl, f"{path}.template", "StatefulSet"))
    return causes


def _dns_label_name(obj: Obj) -> list[Cause]:
    name = (obj.get("metadata") or {}).get("name")
    if not name:
        return []
    return [field.invalid("metadata.name", name, msg) for msg in names.is_dns1123_label(name)]


@on_create("apps", "StatefulSet")
def validate_stateful_set(obj: Obj) -> list[Cause]:
    return _dns_label_name(obj) + validate_stateful_set_spec(obj.get("spec") or {})


_STS_MUTABLE = ("replicas", "template", "updateStrategy", "minReadySeconds", "ordinals",
                "persistentVolumeClaimRetentionPolicy")


@on_update("apps", "StatefulSet")
def validate_stateful_set_update(new: Obj, old: Obj) -> list[Cause]:
    spec = new.get("spec") or {}
    causes = validate_stateful_set_spec(spec)
    old_spec = old.get("spec") or {}
    fixed_new = {k: v for k, v in spec.items() if k not in _STS_MUTABLE}
    fixed_old = {k: v for k, v in old_spec.items() if k not in _STS_MUTABLE}
    if fixed_new != fixed_old:
        causes.append(field.forbidden(
            "spec", "updates to statefulset spec for fields other than 'replicas', "
            "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' "
            "and 'minReadySeconds' are forbidden"))
    return causes


@on_status_update("apps", "StatefulSet")
def validate_stateful_set_status_update(new: Obj, old: Obj) -> list[Cause]:
    fields = ("replicas", "readyReplicas", "currentReplicas", "updatedReplicas",
              "availableReplicas", "observedGeneration", "collisionCount")
    return _status_counts(new.get("status") or {}, "status", fields) + _collision_count(new, old)


# DaemonSet


def _daemon_set_strategy(strategy: Obj, path: str) -> list[Cause]:
    kind = strategy.get("type", "")
    if kind == "OnDelete":
        return []
    if kind != "RollingUpdate":
        return [field.not_supported(path, strategy, ["RollingUpdate", "OnDelete"])]
    rolling = strategy.get("rollingUpdate")
    at = f"{path}.rollingUpdate"
    if rolling is None:
        return [field.required(at)]
    unavailable = rolling.get("maxUnavailable", 0)
    surge = rolling.get("maxSurge", 0)
    causes = positive_int_or_percent(unavailable, f"{at}.maxUnavailable")
    causes.extend(positive_int_or_percent(surge, f"{at}.maxSurge"))
    causes.extend(not_more_than_100_percent(unavailable, f"{at}.maxUnavailable"))
    causes.extend(not_more_than_100_percent(surge, f"{at}.maxSurge"))
    has_unavailable = int_or_percent_value(unavailable) != 0
    has_surge = int_or_percent_value(surge) != 0
    if has_unavailable and has_surge:
        causes.append(field.invalid(f"{at}.maxSurge", surge,
                                    "may not be set when maxUnavailable is non-zero"))
    elif not has_unavailable and not has_surge:
        causes.append(field.required(f"{at}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    return causes


def validate_daemon_set_spec(spec: Obj, path: str = "spec") -> list[Cause]:
    from kubeling.api.validation import meta

    selector = spec.get("selector")
    causes = meta.validate_label_selector(selector, f"{path}.selector")
    tmpl = spec.get("template") or {}
    if selector is None:
        causes.append(field.required(f"{path}.selector"))
    elif selector_is_usable(selector) and not selector_matches(selector, _template_labels(tmpl)):
        causes.append(field.invalid(f"{path}.template.metadata.labels", _template_labels(tmpl),
                                    "`selector` does not match template `labels`"))
    if selector is not None and is_empty_selector(selector):
        causes.append(field.invalid(f"{path}.selector", selector,
                                    "empty selector is invalid for daemonset"))
    causes.extend(validate_pod_template(tmpl, f"{path}.template"))
    causes.extend(_restart_always(tmpl, f"{path}.template", "DaemonSet"))
    causes.extend(nonnegative(spec.get("minReadySeconds"), f"{path}.minReadySeconds"))
    causes.extend(nonnegative(spec.get("templateGeneration"), f"{path}.templateGeneration"))
    causes.extend(_daemon_set_strategy(spec.get("updateStrategy") or {},
                                       f"{path}.updateStrategy"))
    causes.extend(nonnegative(spec.get("revisionHistoryLimit"), f"{path}.revisionHistoryLimit"))
    return causes


@on_create("apps", "DaemonSet")
def validate_daemon_set(obj: Obj) -> list[Cause]:
    return validate_daemon_set_spec(obj.get("spec") or {})


@on_update("apps", "DaemonSet")
def validate_daemon_set_update(new: Obj, old: Obj) -> list[Cause]:
    return validate_daemon_set(new) + _immutable_selector(new, old)


@on_status_update("apps", "DaemonSet")
def validate_daemon_set_status_update(new: Obj, old: Obj) -> list[Cause]:
    status = new.get("status") or {}
    causes: list[Cause] = []
    for name in ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled",
                 "numberReady", "observedGeneration", "updatedNumberScheduled",
                 "numberAvailable", "numberUnavailable", "collisionCount"):
        causes.extend(nonnegative(status.get(name), f"status.{name}"))
    return causes + _collision_count(new, old)


# ControllerRevision


@on_create("apps", "ControllerRevision")
def validate_controller_revision(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    if obj.get("data") is None:
        causes.append(field.required("data", "data is mandatory"))
    causes.extend(nonnegative(obj.get("revision"), "revision"))
    return causes


@on_update("apps", "ControllerRevision")
def validate_controller_revision_update(new: Obj, old: Obj) -> list[Cause]:
    causes = validate_controller_revision(new)
    if new.get("data") != old.get("data"):
        causes.append(field.immutable("data", new.get("data")))
    if new.get("revision") != old.get("revision"):
        causes.append(field.immutable("revision", new.get("revision")))
    return causes
