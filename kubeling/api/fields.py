"""Field selectors: ``?fieldSelector=spec.nodeName=n1`` and the fields each kind exposes.

Kubernetes lets a client filter on a small, per-kind set of field labels
(the node agent lists its pods by ``spec.nodeName``; kubectl finds events by
``involvedObject.name``). Parsing follows apimachinery's fields.ParseSelector
(escapes included); the set of accepted labels and the values each object
offers follow the registry strategies and field label conversions of
kube-apiserver, so the errors for unknown labels read the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kubeling.api.errors import bad_request
from kubeling.api.kinds import Kind

Obj = Mapping[str, Any]

_OPERATORS = ("!=", "==", "=")


class FieldTerm:
    __slots__ = ("field", "negate", "value")

    def __init__(self, field: str, value: str, *, negate: bool = False) -> None:
        self.field = field
        self.value = value
        self.negate = negate

    def matches(self, fields: Mapping[str, str]) -> bool:
        return (fields.get(self.field, "") == self.value) != self.negate

    def __str__(self) -> str:
        return f"{self.field}{'!=' if self.negate else '='}{escape_value(self.value)}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldTerm) and (self.field, self.value, self.negate) == (
            other.field, other.value, other.negate)

    def __hash__(self) -> int:
        return hash((self.field, self.value, self.negate))


class FieldSelector:
    """An AND of ``field=value`` / ``field!=value`` terms; a missing field reads as ""."""

    __slots__ = ("terms",)

    def __init__(self, terms: tuple[FieldTerm, ...] = ()) -> None:
        self.terms = terms

    @property
    def empty(self) -> bool:
        return not self.terms

    def matches(self, fields: Mapping[str, str]) -> bool:
        for t in self.terms:
            if (fields.get(t.field, "") == t.value) == t.negate:
                return False
        return True

    def requires_exact_match(self, field: str) -> str | None:
        for t in self.terms:
            if t.field == field and not t.negate:
                return t.value
        return None

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldSelector) and self.terms == other.terms

    def __hash__(self) -> int:
        return hash(self.terms)


def escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_value(value: str) -> str:
    """fields.UnescapeValue: ``\\\\``, ``\\,`` and ``\\=`` are escapes; bare , or = are errors."""
    if not any(c in value for c in "\\,="):
        return value
    out: list[str] = []
    in_slash = False
    for c in value:
        if in_slash:
            if c not in "\\,=":
                raise ValueError(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            # Go prints the rune with %v: its code point.
            raise ValueError(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise ValueError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    if not text:
        return []
    terms: list[str] = []
    start = 0
    in_slash = False
    for i, c in enumerate(text):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in _OPERATORS:
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


def parse_field_selector(text: str) -> FieldSelector:
    """Parse as fields.ParseSelector; 400 BadRequest with its wording on error."""
    terms: list[FieldTerm] = []
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        lhs, op, rhs = split
        try:
            value = unescape_value(rhs)
        except ValueError as e:
            raise bad_request(str(e)) from None
        terms.append(FieldTerm(lhs, value, negate=op == "!="))
    return FieldSelector(tuple(terms))


def _get(obj: Obj, *path: str) -> Any:
    cur: Any = obj
    for p in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(p)
    return cur


def _s(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _pod_fields(obj: Obj) -> dict[str, str]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ips = status.get("podIPs") or []
    pod_ip = (ips[0].get("ip") or "") if ips else ""
    return {
        "spec.nodeName": _s(spec.get("nodeName")),
        "spec.restartPolicy": _s(spec.get("restartPolicy")),
        "spec.schedulerName": _s(spec.get("schedulerName")),
        "spec.serviceAccountName": _s(spec.get("serviceAccountName")),
        "spec.hostNetwork": "true" if spec.get("hostNetwork") else "false",
        "status.phase": _s(status.get("phase")),
        "status.podIP": pod_ip,
        "status.nominatedNodeName": _s(status.get("nominatedNodeName")),
    }


def _core_event_fields(obj: Obj) -> dict[str, str]:
    io = obj.get("involvedObject") or {}
    source = _s(_get(obj, "source", "component")) or _s(obj.get("reportingComponent"))
    return {
        "involvedObject.kind": _s(io.get("kind")),
        "involvedObject.namespace": _s(io.get("namespace")),
        "involvedObject.name": _s(io.get("name")),
        "involvedObject.uid": _s(io.get("uid")),
        "involvedObject.apiVersion": _s(io.get("apiVersion")),
        "involvedObject.resourceVersion": _s(io.get("resourceVersion")),
        "involvedObject.fieldPath": _s(io.get("fieldPath")),
        "reason": _s(obj.get("reason")),
        "reportingComponent": _s(obj.get("reportingComponent")),
        "source": source,
        "type": _s(obj.get("type")),
    }


def _events_v1_fields(obj: Obj) -> dict[str, str]:
    # events.k8s.io/v1 names the same stored fields differently (regarding, reportingController).
    reg = obj.get("regarding") or {}
    return {
        "regarding.kind": _s(reg.get("kind")),
        "regarding.namespace": _s(reg.get("namespace")),
        "regarding.name": _s(reg.get("name")),
        "regarding.uid": _s(reg.get("uid")),
        "regarding.apiVersion": _s(reg.get("apiVersion")),
        "regarding.resourceVersion": _s(reg.get("resourceVersion")),
        "regarding.fieldPath": _s(reg.get("fieldPath")),
        "reason": _s(obj.get("reason")),
        "reportingController": _s(obj.get("reportingController")),
        "type": _s(obj.get("type")),
    }


def _int_field(*path: str, label: str) -> Callable[[Obj], dict[str, str]]:
    def fields(obj: Obj) -> dict[str, str]:
        return {label: str(int(_get(obj, *path) or 0))}

    return fields


_SPECIFIC: dict[tuple[str, str], Callable[[Obj], dict[str, str]]] = {
    ("", "Pod"): _pod_fields,
    ("", "Node"): lambda o: {"spec.unschedulable": _s(bool(_get(o, "spec", "unschedulable")))},
    ("", "Namespace"): lambda o: {"status.phase": _s(_get(o, "status", "phase"))},
    ("", "Secret"): lambda o: {"type": _s(o.get("type"))},
    ("", "Service"): lambda o: {"spec.clusterIP": _s(_get(o, "spec", "clusterIP")),
                                "spec.type": _s(_get(o, "spec", "type"))},
    ("", "Event"): _core_event_fields,
    ("events.k8s.io", "Event"): _events_v1_fields,
    ("", "ReplicationController"): _int_field("status", "replicas", label="status.replicas"),
    ("apps", "ReplicaSet"): _int_field("status", "replicas", label="status.replicas"),
    ("batch", "Job"): _int_field("status", "succeeded", label="status.successful"),
}

# The labels the API accepts per kind (its field label conversion); a kind not listed
# accepts only metadata.name and metadata.namespace, with the default conversion's error.
_ACCEPTED: dict[tuple[str, str], frozenset[str]] = {
    ("", "Pod"): frozenset({
        "metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy",
        "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
        "status.podIP", "status.podIPs", "status.nominatedNodeName", "spec.host"}),
    ("", "Node"): frozenset({"metadata.name", "spec.unschedulable"}),
    ("", "ReplicationController"): frozenset({
        "metadata.name", "metadata.namespace", "status.replicas"}),
    ("", "Event"): frozenset({
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type",
        "metadata.namespace", "metadata.name"}),
    ("events.k8s.io", "Event"): frozenset({
        "regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid",
        "regarding.apiVersion", "regarding.resourceVersion", "regarding.fieldPath", "reason",
        "reportingController", "type", "metadata.namespace", "metadata.name"}),
    ("", "Namespace"): frozenset({"metadata.name", "status.phase"}),
    ("", "Secret"): frozenset({"metadata.name", "metadata.namespace", "type"}),
    ("", "Service"): frozenset({"metadata.name", "metadata.namespace", "spec.clusterIP",
                                "spec.type"}),
    ("batch", "Job"): frozenset({"metadata.name", "metadata.namespace", "status.successful"}),
}

# Labels that are accepted under an old name and matched under the new one.
_RENAMED = {("", "Pod"): {"spec.host": "spec.nodeName"}}


def selectable_fields(kind: Kind, obj: Obj) -> dict[str, str]:
    """The field labels and values a field selector is matched against for ``obj``."""
    meta = obj.get("metadata") or {}
    fields = {"metadata.name": _s(meta.get("name"))}
    if kind.namespaced:
        fields["metadata.namespace"] = _s(meta.get("namespace"))
    specific = _SPECIFIC.get((kind.group, kind.kind))
    if specific is not None:
        fields.update(specific(obj))
    return fields


def check_field_selector(kind: Kind, sel: FieldSelector) -> FieldSelector:
    """Reject labels the kind does not support (400, Kubernetes' wording).

    Returns the selector with deprecated label names mapped to current ones
    (``spec.host`` to ``spec.nodeName`` for pods); match with what it returns.
    """
    accepted = _ACCEPTED.get((kind.group, kind.kind))
    renamed = _RENAMED.get((kind.group, kind.kind), {})
    for term in sel.terms:
        if accepted is None:
            if term.field not in ("metadata.name", "metadata.namespace"):
                raise bad_request(f'"{term.field}" is not a known field selector: only '
                                  '"metadata.name", "metadata.namespace"')
        elif term.field not in accepted:
            if (kind.group, kind.kind) == ("batch", "Job"):
                raise bad_request(f'field label "{term.field}" not supported for Job')
            raise bad_request(f"field label not supported: {term.field}")
    if not renamed or not any(t.field in renamed for t in sel.terms):
        return sel
    return FieldSelector(tuple(
        FieldTerm(renamed.get(t.field, t.field), t.value, negate=t.negate) for t in sel.terms))
