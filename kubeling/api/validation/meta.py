"""Validation of ``metadata`` shared by every kind, and of label selectors.

Every object goes through here before its kind's own rules: name syntax
(per the kind's naming rule), namespace presence, labels, annotations,
owner references, finalizers; on update, the fields that may never change.
The causes are worded and pathed as kube-apiserver words them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeling.api import field, names
from kubeling.api.errors import Cause
from kubeling.api.kinds import Kind

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"

NameFn = Callable[[str, bool], list[str]]

_NAME_RULES: dict[str, NameFn] = {
    "subdomain": names.name_is_dns_subdomain,
    "label": names.name_is_dns_label,
    "dns1035": names.name_is_dns1035_label,
    "path": names.name_is_path_segment,
}
# Kinds whose naming rule is stricter than the registry records.
_RULE_OVERRIDES: dict[tuple[str, str], str] = {("", "Service"): "dns1035"}


def name_rule(kind: Kind) -> NameFn:
    """The function that judges names of ``kind`` (``fn(name, is_prefix)``)."""
    rule = _RULE_OVERRIDES.get((kind.group, kind.kind), kind.name_rule)
    return _NAME_RULES.get(rule, names.name_is_dns_subdomain)


def validate_labels(labels: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not labels:
        return causes
    if not isinstance(labels, dict):
        return [field.invalid(path, labels, "must be a map of string keys to string values")]
    for key, value in labels.items():
        causes.extend(validate_label_name(key, path))
        if not isinstance(value, str):
            causes.append(field.invalid(path, value, "must be a string"))
            continue
        causes.extend(field.invalid(path, value, msg) for msg in names.is_valid_label_value(value))
    return causes


def validate_label_name(key: str, path: str) -> list[Cause]:
    return [field.invalid(path, key, msg) for msg in names.is_qualified_name(key)]


def validate_annotations(annotations: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not annotations:
        return causes
    if not isinstance(annotations, dict):
        return [field.invalid(path, annotations, "must be a map of string keys to string values")]
    size = 0
    for key, value in annotations.items():
        causes.extend(field.invalid(path, key, msg) for msg in names.is_qualified_name(key.lower()))
        size += len(key.encode()) + len(str(value).encode())
    if size > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(field.too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return causes


def _split_api_version(api_version: str) -> tuple[str, str]:
    if "/" in api_version:
        group, _, version = api_version.partition("/")
        return group, version
    return "", api_version


def validate_owner_references(refs: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not refs:
        return causes
    controllers: list[str] = []
    for ref in refs:
        api_version = ref.get("apiVersion") or ""
        _, version = _split_api_version(api_version)
        if not version:
            causes.append(field.invalid(f"{path}.apiVersion", api_version,
                                        "version must not be empty"))
        if not ref.get("kind"):
            causes.append(field.invalid(f"{path}.kind", ref.get("kind") or "",
                                        "kind must not be empty"))
        if not ref.get("name"):
            causes.append(field.invalid(f"{path}.name", ref.get("name") or "",
                                        "name must not be empty"))
        if not ref.get("uid"):
            causes.append(field.invalid(f"{path}.uid", ref.get("uid") or "",
                                        "uid must not be empty"))
        if ref.get("controller"):
            controllers.append(f"{ref.get('kind', '')}/{ref.get('name', '')}")
    if len(controllers) > 1:
        causes.append(field.invalid(
            path, refs,
            'Only one reference can have Controller set to true. Found "true" in references for '
            + " and ".join(controllers)))
    return causes


def validate_finalizers(finalizers: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not finalizers:
        return causes
    for name in finalizers:
        causes.extend(field.invalid(path, name, msg) for msg in names.is_qualified_name(name))
    if ORPHAN_FINALIZER in finalizers and FOREGROUND_FINALIZER in finalizers:
        causes.append(field.invalid(
            path, finalizers,
            f"finalizer {ORPHAN_FINALIZER} and {FOREGROUND_FINALIZER} cannot be both set"))
    return causes


def validate_object_meta(meta: dict[str, Any], kind: Kind, path: str = "metadata",
                         *, name_fn: NameFn | None = None) -> list[Cause]:
    """Rules for a new object's metadata; ``name_fn`` overrides the kind's naming rule."""
    judge = name_fn or name_rule(kind)
    causes: list[Cause] = []
    generate_name = meta.get("generateName") or ""
    name = meta.get("name") or ""
    if generate_name:
        causes.extend(field.invalid(f"{path}.generateName", generate_name, msg)
                      for msg in judge(generate_name, True))
    if not name:
        if not generate_name:
            causes.append(field.required(f"{path}.name", "name or generateName is required"))
    else:
        causes.extend(field.invalid(f"{path}.name", name, msg) for msg in judge(name, False))
    namespace = meta.get("namespace") or ""
    if kind.namespaced:
        if not namespace:
            causes.append(field.required(f"{path}.namespace"))
        else:
            causes.extend(field.invalid(f"{path}.namespace", namespace, msg)
                          for msg in names.name_is_dns_label(namespace))
    elif namespace:
        causes.append(field.forbidden(f"{path}.namespace", "not allowed on this type"))
    generation = meta.get("generation")
    if isinstance(generation, int) and generation < 0:
        causes.append(field.invalid(f"{path}.generation", generation,
                                    "must be greater than or equal to 0"))
    causes.extend(validate_labels(meta.get("labels"), f"{path}.labels"))
    causes.extend(validate_annotations(meta.get("annotations"), f"{path}.annotations"))
    causes.extend(validate_owner_references(meta.get("ownerReferences"),
                                            f"{path}.ownerReferences"))
    causes.extend(validate_finalizers(meta.get("finalizers"), f"{path}.finalizers"))
    return causes


def _go_string_slice(values: list[str]) -> str:
    return "[]string{" + ", ".join(field.show(v) for v in values) + "}"


def validate_object_meta_update(new: dict[str, Any], old: dict[str, Any], kind: Kind,
                                path: str = "metadata") -> list[Cause]:
    """Rules for metadata on update: what may never change, and the usual syntax checks."""
    causes: list[Cause] = []
    if old.get("deletionTimestamp"):
        added = sorted(set(new.get("finalizers") or []) - set(old.get("finalizers") or []))
        if added:
            causes.append(field.forbidden(
                f"{path}.finalizers",
                "no new finalizers can be added if the object is being deleted, found new "
                f"finalizers {_go_string_slice(added)}"))
    if not new.get("resourceVersion"):
        causes.append(field.invalid(f"{path}.resourceVersion", new.get("resourceVersion") or "",
                                    "must be specified for an update"))
    new_gen, old_gen = new.get("generation") or 0, old.get("generation") or 0
    if isinstance(new_gen, int) and isinstance(old_gen, int) and new_gen < old_gen:
        causes.append(field.invalid(f"{path}.generation", new_gen, "must not be decremented"))
    for key, empty in (("name", ""), ("namespace", ""), ("uid", ""), ("creationTimestamp", None),
                       ("deletionTimestamp", None), ("deletionGracePeriodSeconds", None)):
        new_value = new.get(key) or empty
        if new_value != (old.get(key) or empty):
            causes.append(field.immutable(f"{path}.{key}", new_value))
    causes.extend(validate_labels(new.get("labels"), f"{path}.labels"))
    causes.extend(validate_annotations(new.get("annotations"), f"{path}.annotations"))
    causes.extend(validate_owner_references(new.get("ownerReferences"),
                                            f"{path}.ownerReferences"))
    causes.extend(validate_finalizers(new.get("finalizers"), f"{path}.finalizers"))
    return causes


_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_label_selector(sel: dict[str, Any] | None, path: str) -> list[Cause]:
    """A metav1.LabelSelector (matchLabels and matchExpressions)."""
    causes: list[Cause] = []
    if sel is None:
        return causes
    causes.extend(validate_labels(sel.get("matchLabels"), f"{path}.matchLabels"))
    for i, expr in enumerate(sel.get("matchExpressions") or []):
        at = f"{path}.matchExpressions[{i}]"
        operator = expr.get("operator") or ""
        values = expr.get("values") or []
        if operator in ("In", "NotIn"):
            if not values:
                causes.append(field.required(
                    f"{at}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                causes.append(field.forbidden(
                    f"{at}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            causes.append(field.invalid(f"{at}.operator", operator,
                                        "not a valid selector operator"))
        causes.extend(validate_label_name(expr.get("key") or "", f"{at}.key"))
        for j, value in enumerate(values):
            causes.extend(field.invalid(f"{at}.values[{j}]", value, msg)
                          for msg in names.is_valid_label_value(value))
    return causes


def validate_label_selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a plain map selector (as ReplicationController uses) selects ``labels``."""
    return all(labels.get(k) == v for k, v in selector.items())
