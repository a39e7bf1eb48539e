"""The OpenAPI documents kubectl reads: v3 per group-version, and the v2 (Swagger) whole.

kubectl depends on them for more than documentation: ``kubectl explain``
renders the v3 schemas, client-side ``kubectl apply`` takes list merge keys
and patch strategies from them, and kubectl decides whether the server does
field validation by looking for the ``fieldValidation`` query parameter on
the PATCH operation of a kind's path. Everything here is derived from the
kinds registry and the field schema, with schema names spelled as
Kubernetes spells them (``io.k8s.api.core.v1.Pod``). Documents are built
once per process and cached as bytes together with their hash.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

import orjson

from kubeling.api import schema as sch
from kubeling.api.fieldcheck import go_integer_type
from kubeling.api.kinds import KINDS, Kind, kinds_in
from kubeling.apiserver.discovery import subresource_info

K8S_VERSION = "v1.32.0"
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
TIME = META + "Time"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
PATCH = META + "Patch"

_META_TYPES = frozenset({
    "ObjectMeta", "ListMeta", "LabelSelector", "LabelSelectorRequirement", "OwnerReference",
    "ManagedFieldsEntry", "Condition", "DeleteOptions", "Preconditions", "Status",
    "StatusDetails", "StatusCause", "WatchEvent",
})
# Core types reached only from other groups' kinds.
_CORE_OVERRIDES = frozenset({"TopologySelectorTerm", "TopologySelectorLabelRequirement"})
# (group, version, kind) of types that are not served kinds but that operations return.
_EXTRA_KINDS = (
    ("", "v1", "Status"), ("", "v1", "DeleteOptions"), ("", "v1", "WatchEvent"),
    ("", "v1", "Binding"), ("autoscaling", "v1", "Scale"), ("policy", "v1", "Eviction"),
    ("authentication.k8s.io", "v1", "TokenRequest"),
)
# Kinds whose client model name does not follow ``V<version><Kind>``.
_MODELS = {
    ("", "v1", "EventList"): "CoreV1EventList",
    ("events.k8s.io", "v1", "EventList"): "EventsV1EventList",
    ("authentication.k8s.io", "v1", "TokenRequest"): "AuthenticationV1TokenRequest",
}
_META_KIND_NAMES = frozenset({"Status", "DeleteOptions", "WatchEvent"})

_LEAF_SCHEMAS: dict[str, dict[str, Any]] = {
    TIME: {"description": "Time is a wrapper around time.Time which supports correct marshaling "
           "to YAML and JSON. Timestamps are RFC 3339 strings.", "type": "string",
           "format": "date-time"},
    PATCH: {"description": "Patch is provided to give a concrete name and type to the "
            "Kubernetes PATCH request body.", "type": "object"},
}
_INT_OR_STRING_DESC = ("IntOrString is a type that can hold an int32 or a string. When used in "
                       "JSON or YAML marshalling and unmarshalling, it produces or consumes the "
                       "inner type.")
_QUANTITY_DESC = ("Quantity is a fixed-point representation of a number, written as a string "
                  "such as \"100m\", \"1.5Gi\" or \"2\" (suffixes: n u m k M G T P E, Ki Mi Gi "
                  "Ti Pi Ei, or a decimal exponent).")

KIND_DESCRIPTIONS: dict[str, str] = {
    "Namespace": "Namespace provides a scope for Names. Use of multiple namespaces is optional.",
    "Pod": "Pod is a collection of containers that can run on a host. This resource is "
           "created by clients and scheduled onto hosts.",
    "Node": "Node is a worker node in Kubernetes. Each node will have a unique identifier in "
            "the cache (i.e. in etcd).",
    "Service": "Service is a named abstraction of software service (for example, mysql) "
               "consisting of local port (for example 3306) that the proxy listens on, and the "
               "selector that determines which pods will answer requests sent through the proxy.",
    "Endpoints": "Endpoints is a collection of endpoints that implement the actual service.",
    "ConfigMap": "ConfigMap holds configuration data for pods to consume.",
    "Secret": "Secret holds secret data of a certain type. The total bytes of the values in the "
              "Data field must be less than MaxSecretSize bytes.",
    "Event": "Event is a report of an event somewhere in the cluster.",
    "ServiceAccount": "ServiceAccount binds together: a name, understood by users, and perhaps "
                      "by peripheral systems, for an identity; a principal that can be "
                      "authenticated and authorized; a set of secrets.",
    "ReplicationController": "ReplicationController represents the configuration of a "
                             "replication controller.",
    "PersistentVolume": "PersistentVolume (PV) is a storage resource provisioned by an "
                        "administrator. It is analogous to a node.",
    "PersistentVolumeClaim": "PersistentVolumeClaim is a user's request for and claim to a "
                             "persistent volume.",
    "ResourceQuota": "ResourceQuota sets aggregate quota restrictions enforced per namespace.",
    "LimitRange": "LimitRange sets resource usage limits for each kind of resource in a "
                  "Namespace.",
    "Deployment": "Deployment enables declarative updates for Pods and ReplicaSets.",
    "ReplicaSet": "ReplicaSet ensures that a specified number of pod replicas are running at "
                  "any given time.",
    "StatefulSet": "StatefulSet represents a set of pods with consistent identities.",
    "DaemonSet": "DaemonSet represents the configuration of a daemon set.",
    "ControllerRevision": "ControllerRevision implements an immutable snapshot of state data.",
    "HorizontalPodAutoscaler": "HorizontalPodAutoscaler is the configuration for a horizontal "
                               "pod autoscaler, which automatically manages the replica count "
                               "of any resource implementing the scale subresource based on "
                               "the metrics specified.",
    "Job": "Job represents the configuration of a single job.",
    "CronJob": "CronJob represents the configuration of a single cron job.",
    "Lease": "Lease defines a lease concept.",
    "EndpointSlice": "EndpointSlice represents a subset of the endpoints that implement a "
                     "service.",
    "StorageClass": "StorageClass describes the parameters for a class of storage for which "
                    "PersistentVolumes can be dynamically provisioned.",
    "Scale": "Scale represents a scaling request for a resource.",
    "Eviction": "Eviction evicts a pod from its node subject to certain policies and safety "
                "constraints.",
    "Binding": "Binding ties one object to another; for example, a pod is bound to a node by "
               "a scheduler.",
    "Status": "Status is a return value for calls that don't return other objects.",
    "DeleteOptions": "DeleteOptions may be provided when deleting an API object.",
    "WatchEvent": "Event represents a single event to a watched resource.",
    "ObjectMeta": "ObjectMeta is metadata that all persisted resources must have, which "
                  "includes all objects users must create.",
    "ListMeta": "ListMeta describes metadata that synthetic resources must have, including "
                "lists and various status objects.",
}


def _package(group: str) -> str:
    return "core" if not group else group.split(".")[0]


def _short(name: str) -> tuple[str, str]:
    """``v1.PodSpec`` -> (``v1``, ``PodSpec``); ``CoreV1Event`` -> (``v1``, ``Event``)."""
    if "." in name:
        version, _, short = name.partition(".")
        return version, short
    for prefix in ("Core", "Discovery", "Events", "Storage", "Authentication"):
        if name.startswith(prefix + "V"):
            rest = name[len(prefix):]
            version = rest[:2].lower()
            return version, rest[2:]
    return "v1", name


def _extra_struct(group: str, version: str, kind: str) -> sch.Struct:
    model = _MODELS.get((group, version, kind))
    if model is None:
        return sch.kind_schema(group, version, kind)
    # The schema module has no public way to build a struct by model name yet.
    return sch._builder().struct(model)


def _walk(st: sch.Struct, seen: set[str]) -> list[sch.Struct]:
    """Every struct reachable from ``st`` (itself included) not yet in ``seen``, in order."""
    out: list[sch.Struct] = []
    stack = [st]
    while stack:
        cur = stack.pop()
        if cur.name in seen:
            continue
        seen.add(cur.name)
        out.append(cur)
        for fi in reversed(cur.fields.values()):
            child = _struct_of(fi.node)
            if child is not None and child.name not in seen:
                stack.append(child)
    return out


def _struct_of(node: sch.Node) -> sch.Struct | None:
    while isinstance(node, sch.ListOf | sch.MapOf):
        node = node.item if isinstance(node, sch.ListOf) else node.value
    return node if isinstance(node, sch.Struct) else None


def _roots() -> list[tuple[str, str, str, sch.Struct]]:
    """(group, version, kind, struct) of every kind, list kind and extra kind; core first."""
    out = []
    ordered = sorted(KINDS, key=lambda k: k.group != "")
    for k in ordered:
        for v in k.versions:
            out.append((k.group, v, k.kind, sch.kind_schema(k.group, v, k.kind)))
            lst = _list_struct(k, v)
            if lst is not None:
                out.append((k.group, v, k.list_kind, lst))
    for g, v, kind in _EXTRA_KINDS:
        out.append((g, v, kind, _extra_struct(g, v, kind)))
    return out


def _list_struct(kind: Kind, version: str) -> sch.Struct | None:
    try:
        return _extra_struct(kind.group, version, kind.list_kind)
    except AttributeError:
        return None


@cache
def _catalog() -> tuple[dict[str, str], dict[str, list[dict[str, str]]], dict[str, set[str]]]:
    """Full names by struct name, GVK extensions by full name, and the structs each root reaches."""
    full: dict[str, str] = {}
    gvks: dict[str, list[dict[str, str]]] = {}
    reach: dict[str, set[str]] = {}
    seen: set[str] = set()
    for group, version, kind, st in _roots():
        for found in _walk(st, seen):
            ver, short = _short(found.name)
            if short in _META_TYPES:
                full[found.name] = META + short
            elif short in _CORE_OVERRIDES:
                full[found.name] = f"io.k8s.api.core.{ver}.{short}"
            else:
                full[found.name] = f"io.k8s.api.{_package(group)}.{ver}.{short}"
        if kind in _META_KIND_NAMES:
            full[st.name] = META + kind
        name = full[st.name]
        if kind in ("DeleteOptions", "WatchEvent"):
            gvks[name] = [
                {"group": g, "kind": kind, "version": v} for g, v in _served_group_versions()
            ]
        else:
            gvks.setdefault(name, []).append({"group": group, "kind": kind, "version": version})
        reach[name] = {s.name for s in _walk(st, set())}
    return full, gvks, reach


def _served_group_versions() -> list[tuple[str, str]]:
    return list(dict.fromkeys((k.group, v) for k in KINDS for v in k.versions))


def full_name(struct_name: str) -> str:
    """The OpenAPI schema name of a struct (``v1.PodSpec`` -> ``io.k8s.api.core.v1.PodSpec``)."""
    return _catalog()[0][struct_name]


def schema_name(group: str, version: str, kind: str) -> str:
    """The OpenAPI schema name of a served kind, list kind or operation kind (Scale, Status)."""
    return full_name(_extra_struct(group, version, kind).name)


# -- schema rendering -------------------------------------------------------------------------


def _ref(name: str, v3: bool) -> str:
    return ("#/components/schemas/" if v3 else "#/definitions/") + name


def _ref_schema(name: str, *, v3: bool, description: str, default: Any = None) -> dict[str, Any]:
    if not v3:
        out: dict[str, Any] = {"$ref": _ref(name, v3)}
        if description:
            out["description"] = description
        return out
    if not description and default is None:
        return {"$ref": _ref(name, v3)}
    out = {"allOf": [{"$ref": _ref(name, v3)}]}
    if default is not None:
        out["default"] = default
    if description:
        out["description"] = description
    return out


def _scalar(node: sch.Scalar, *, v3: bool, owner: str, field: str, desc: str) -> dict[str, Any]:
    t = node.type
    if t == sch.DATETIME:
        return _ref_schema(TIME, v3=v3, description=desc)
    if t == sch.INT_OR_STRING:
        return _ref_schema(INT_OR_STRING, v3=v3, description=desc)
    if t == sch.QUANTITY:
        return _ref_schema(QUANTITY, v3=v3, description=desc)
    out: dict[str, Any] = {}
    if desc:
        out["description"] = desc
    if t == sch.ANY:
        out["type"] = "object"
    elif t == sch.INTEGER:
        out["type"] = "integer"
        out["format"] = go_integer_type(owner, field)
    elif t == sch.NUMBER:
        out.update(type="number", format="double")
    else:
        out["type"] = t
    return out


def _node(node: sch.Node, *, v3: bool, owner: str, field: str, desc: str,
          item: bool = False) -> dict[str, Any]:
    if isinstance(node, sch.Struct):
        return _ref_schema(full_name(node.name), v3=v3, description=desc,
                           default={} if v3 else None)
    if isinstance(node, sch.Scalar):
        out = _scalar(node, v3=v3, owner=owner, field=field, desc=desc)
        if v3 and item and node.type == sch.STRING:
            out["default"] = ""
        return out
    if isinstance(node, sch.ListOf):
        out = {}
        if desc:
            out["description"] = desc
        out["type"] = "array"
        out["items"] = _node(node.item, v3=v3, owner=owner, field=field, desc="", item=True)
        if node.map_keys:
            out["x-kubernetes-list-map-keys"] = list(node.map_keys)
        if node.list_type != "atomic" or node.map_keys or node.patch_strategy:
            out["x-kubernetes-list-type"] = node.list_type
        else:
            out["x-kubernetes-list-type"] = "atomic"
        if node.merge_key:
            out["x-kubernetes-patch-merge-key"] = node.merge_key
        if node.patch_strategy:
            out["x-kubernetes-patch-strategy"] = node.patch_strategy
        return out
    out = {}
    if desc:
        out["description"] = desc
    out["type"] = "object"
    out["additionalProperties"] = _node(node.value, v3=v3, owner=owner, field=field, desc="",
                                        item=True)
    return out


_OBJECT_META_DESC = ("Standard object's metadata. More info: https://git.k8s.io/community/"
                     "contributors/devel/sig-architecture/api-conventions.md#metadata")
_LIST_META_DESC = ("Standard list metadata. More info: https://git.k8s.io/community/"
                   "contributors/devel/sig-architecture/api-conventions.md#metadata")


def _field_description(short: str, name: str, fi: sch.FieldInfo) -> str:
    """The field's own description; the client models drop it for struct-typed fields."""
    if fi.description or not isinstance(fi.node, sch.Struct | sch.ListOf):
        return fi.description
    if name == "metadata":
        return _LIST_META_DESC if short.endswith("List") else _OBJECT_META_DESC
    if name == "items" and short.endswith("List"):
        return f"List of {short[:-4]} objects."
    subject = short.removesuffix("Spec")
    if name == "spec":
        return (f"Specification of the desired behavior of the {subject}. More info: "
                "https://git.k8s.io/community/contributors/devel/sig-architecture/"
                "api-conventions.md#spec-and-status")
    if name == "status":
        return (f"Most recently observed status of the {subject}. This data may not be up to "
                "date. Populated by the system. Read-only. More info: https://git.k8s.io/"
                "community/contributors/devel/sig-architecture/api-conventions.md"
                "#spec-and-status")
    if name == "template":
        return "Template describes the pods that will be created."
    if name == "selector":
        return "A label query over the objects this applies to."
    return ""


def _struct_schema(st: sch.Struct, *, v3: bool) -> dict[str, Any]:
    full = full_name(st.name)
    short = full.rsplit(".", 1)[1]
    out: dict[str, Any] = {}
    desc = st.description or KIND_DESCRIPTIONS.get(short, "")
    if desc:
        out["description"] = desc
    out["properties"] = {
        name: _node(fi.node, v3=v3, owner=st.name, field=name,
                    desc=_field_description(short, name, fi))
        for name, fi in st.fields.items()
    }
    if st.required:
        out["required"] = list(st.required)
    out["type"] = "object"
    gvk = _catalog()[1].get(full)
    if gvk:
        out["x-kubernetes-group-version-kind"] = gvk
    if st.atomic:
        out["x-kubernetes-map-type"] = "atomic"
    return out


def _leaf_schemas(v3: bool) -> dict[str, dict[str, Any]]:
    out = dict(_LEAF_SCHEMAS)
    if v3:
        out[INT_OR_STRING] = {"description": _INT_OR_STRING_DESC, "format": "int-or-string",
                              "oneOf": [{"type": "integer"}, {"type": "string"}]}
        out[QUANTITY] = {"description": _QUANTITY_DESC,
                         "oneOf": [{"type": "string"}, {"type": "number"}]}
    else:
        out[INT_OR_STRING] = {"description": _INT_OR_STRING_DESC, "type": "string",
                              "format": "int-or-string"}
        out[QUANTITY] = {"description": _QUANTITY_DESC, "type": "string"}
    return out


@cache
def _all_schemas(v3: bool) -> dict[str, dict[str, Any]]:
    full, _, _ = _catalog()
    out: dict[str, dict[str, Any]] = {}
    for struct_name, name in full.items():
        st = sch.struct_named(struct_name)
        if st is not None:
            out[name] = _struct_schema(st, v3=v3)
    out.update(_leaf_schemas(v3))
    return dict(sorted(out.items()))


def _refs_in(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str):
            found.add(ref.rsplit("/", 1)[1])
        for v in value.values():
            _refs_in(v, found)
    elif isinstance(value, list):
        for v in value:
            _refs_in(v, found)


def _closure(names: set[str], schemas: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    todo = list(names)
    keep: set[str] = set()
    while todo:
        name = todo.pop()
        if name in keep or name not in schemas:
            continue
        keep.add(name)
        refs: set[str] = set()
        _refs_in(schemas[name], refs)
        todo.extend(refs - keep)
    return {n: schemas[n] for n in sorted(keep)}


# -- paths ------------------------------------------------------------------------------------

_JSON_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
_WATCH_TYPES = (*_JSON_TYPES, "application/json;stream=watch",
                "application/vnd.kubernetes.protobuf;stream=watch")
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
                "application/strategic-merge-patch+json", "application/apply-patch+yaml")

# name -> (type, description)
_PARAMS: dict[str, tuple[str, str]] = {
    "pretty": ("string", "If 'true', then the output is pretty printed."),
    "allowWatchBookmarks": ("boolean", "Requests watch events of type BOOKMARK."),
    "continue": ("string", "The continue token of a previous paginated list call."),
    "fieldSelector": ("string", "A selector to restrict the list of returned objects by "
                      "their fields. Defaults to everything."),
    "labelSelector": ("string", "A selector to restrict the list of returned objects by "
                      "their labels. Defaults to everything."),
    "limit": ("integer", "The maximum number of responses to return for a list call."),
    "resourceVersion": ("string", "Constrains which resource versions the request may be "
                        "served from. Defaults to unset."),
    "resourceVersionMatch": ("string", "Determines how resourceVersion is applied to list "
                             "calls."),
    "sendInitialEvents": ("boolean", "Starts a watch with synthetic events for the current "
                          "state, followed by a bookmark."),
    "timeoutSeconds": ("integer", "Timeout for the list/watch call."),
    "watch": ("boolean", "Watch for changes to the described resources and return them as a "
              "stream of add, update, and remove notifications."),
    "dryRun": ("string", "When present, indicates that modifications should not be persisted. "
               "The only valid value is All."),
    "fieldManager": ("string", "A name associated with the actor or entity that is making "
                     "these changes."),
    "fieldValidation": ("string", "Instructs the server how to handle fields in the request "
                        "that are unknown or duplicated: Ignore, Warn (the default) or Strict."),
    "force": ("boolean", "Force is going to \"force\" Apply requests: re-acquire conflicting "
              "fields owned by other people. Only for apply patch requests."),
    "gracePeriodSeconds": ("integer", "The duration in seconds before the object should be "
                           "deleted."),
    "ignoreStoreReadErrorWithClusterBreakingPotential": (
        "boolean", "Delete a corrupt object that cannot be read from storage (unsafe)."),
    "orphanDependents": ("boolean", "Deprecated: use propagationPolicy."),
    "propagationPolicy": ("string", "Whether and how garbage collection will be performed: "
                          "Orphan, Background or Foreground."),
    "container": ("string", "The container for which to run the request."),
    "follow": ("boolean", "Follow the log stream of the pod."),
    "insecureSkipTLSVerifyBackend": ("boolean", "Do not verify the serving certificate of the "
                                     "backend the logs are read from."),
    "limitBytes": ("integer", "The number of bytes to read from the server before "
                   "terminating the log output."),
    "previous": ("boolean", "Return previous terminated container logs."),
    "sinceSeconds": ("integer", "A relative time in seconds before the current time from "
                     "which to show logs."),
    "stream": ("string", "Specify which container log stream to return: All, Stdout or "
               "Stderr."),
    "tailLines": ("integer", "The number of lines from the end of the logs to show."),
    "timestamps": ("boolean", "Add an RFC3339 timestamp at the beginning of every line."),
    "command": ("string", "Command is the remote command to execute. argv array."),
    "stderr": ("boolean", "Redirect the standard error stream of the container."),
    "stdin": ("boolean", "Redirect the standard input stream of the container."),
    "stdout": ("boolean", "Redirect the standard output stream of the container."),
    "tty": ("boolean", "Allocate a terminal."),
    "ports": ("integer", "List of ports to forward."),
    "path": ("string", "Path is the URL path to use for the current proxy request."),
}
_LIST_PARAMS = ("allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
                "resourceVersion", "resourceVersionMatch", "sendInitialEvents",
                "timeoutSeconds", "watch")
_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
_PATCH_PARAMS = (*_WRITE_PARAMS, "force")
_DELETE_PARAMS = ("dryRun", "gracePeriodSeconds",
                  "ignoreStoreReadErrorWithClusterBreakingPotential", "orphanDependents",
                  "propagationPolicy")
_SUB_PARAMS: dict[str, tuple[str, ...]] = {
    "log": ("container", "follow", "insecureSkipTLSVerifyBackend", "limitBytes", "previous",
            "sinceSeconds", "stream", "tailLines", "timestamps"),
    "exec": ("command", "container", "stderr", "stdin", "stdout", "tty"),
    "attach": ("container", "stderr", "stdin", "stdout", "tty"),
    "portforward": ("ports",),
    "proxy": ("path",),
}


def _param(name: str, *, v3: bool, where: str = "query", desc: str = "") -> dict[str, Any]:
    typ, default_desc = _PARAMS.get(name, ("string", ""))
    out: dict[str, Any] = {"name": name, "in": where, "description": desc or default_desc}
    if where == "path":
        out["required"] = True
    if v3:
        out["schema"] = {"type": typ, "uniqueItems": True}
    else:
        out.update(type=typ, uniqueItems=True)
    return out


def _gv_title(group: str, version: str) -> tuple[str, str]:
    """(operation id part, tag): ("", "v1") -> ("CoreV1", "core_v1")."""
    base = group.split(".")[0] if group else "core"
    return base.capitalize() + version.capitalize(), f"{base}_{version}"


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "kind": kind, "version": version}


class _Op:
    """One operation, rendered as OpenAPI v3 or Swagger 2.0."""

    def __init__(self, action: str, op_id: str, desc: str, *, response: str | None,
                 gvk: dict[str, str], params: tuple[str, ...] = (), body: str | None = None,
                 patch: bool = False, watch: bool = False, plain: bool = False) -> None:
        self.action, self.op_id, self.desc = action, op_id, desc
        self.response, self.gvk, self.params = response, gvk, params
        self.body, self.patch, self.watch, self.plain = body, patch, watch, plain

    def render(self, tag: str, *, v3: bool) -> dict[str, Any]:
        params = [_param(p, v3=v3) for p in self.params]
        body_types = _PATCH_TYPES if self.patch else ("*/*",)
        out_types = ("*/*",) if self.plain else (_WATCH_TYPES if self.watch else _JSON_TYPES)
        resp_schema: dict[str, Any] = (
            {"type": "string"} if self.response is None else {"$ref": _ref(self.response, v3)})
        codes = {"post": ("200", "201", "202"), "put": ("200", "201"),
                 "delete": ("200", "202")}.get(self.action_method, ("200",))
        names = {"200": "OK", "201": "Created", "202": "Accepted"}
        op: dict[str, Any] = {"tags": [tag], "description": self.desc, "operationId": self.op_id}
        if v3:
            op["parameters"] = params
            if self.body:
                op["requestBody"] = {
                    "content": {t: {"schema": {"$ref": _ref(self.body, v3)}} for t in body_types},
                    "required": self.action not in ("delete", "deletecollection"),
                }
            responses: dict[str, Any] = {
                c: {"description": names[c],
                    "content": {t: {"schema": resp_schema} for t in out_types}}
                for c in codes}
        else:
            op["consumes"] = list(body_types)
            op["produces"] = list(out_types)
            op["schemes"] = ["https"]
            if self.body:
                params.insert(0, {"name": "body", "in": "body",
                                  "required": self.action not in ("delete", "deletecollection"),
                                  "schema": {"$ref": _ref(self.body, v3)}})
            op["parameters"] = params
            responses = {c: {"description": names[c], "schema": resp_schema} for c in codes}
        responses["401"] = {"description": "Unauthorized"}
        op["responses"] = responses
        op["x-kubernetes-action"] = self.action
        op["x-kubernetes-group-version-kind"] = self.gvk
        return op

    @property
    def action_method(self) -> str:
        return {"create": "post", "update": "put", "delete": "delete",
                "deletecollection": "delete", "post": "post", "put": "put"}.get(self.action, "")


def _kind_paths(k: Kind, group: str, version: str) -> dict[str, dict[str, _Op]]:
    gv, _ = _gv_title(group, version)
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    scope = "Namespaced" if k.namespaced else ""
    base = f"{prefix}/namespaces/{{namespace}}/{k.resource}" if k.namespaced else \
        f"{prefix}/{k.resource}"
    obj = schema_name(group, version, k.kind)
    lst = schema_name(group, version, k.list_kind)
    status = META + "Status"
    gvk = _gvk(group, version, k.kind)
    name = f"{scope}{k.kind}"
    verbs = set(k.verbs)
    out: dict[str, dict[str, _Op]] = {base: {}, f"{base}/{{name}}": {}}
    coll, item = out[base], out[f"{base}/{{name}}"]
    if "list" in verbs:
        coll["get"] = _Op("list", f"list{gv}{name}", f"list or watch objects of kind {k.kind}",
                          response=lst, gvk=gvk, params=_LIST_PARAMS, watch=True)
        if k.namespaced:
            out[f"{prefix}/{k.resource}"] = {"get": _Op(
                "list", f"list{gv}{k.kind}ForAllNamespaces",
                f"list or watch objects of kind {k.kind}", response=lst, gvk=gvk,
                params=_LIST_PARAMS, watch=True)}
    if "create" in verbs:
        coll["post"] = _Op("post", f"create{gv}{name}", f"create a {k.kind}", response=obj,
                           gvk=gvk, params=_WRITE_PARAMS, body=obj)
    if "deletecollection" in verbs:
        coll["delete"] = _Op("deletecollection", f"deleteCollection{gv}{name}",
                             f"delete collection of {k.kind}", response=status, gvk=gvk,
                             params=(*_DELETE_PARAMS, *_LIST_PARAMS), body=META + "DeleteOptions")
    if "get" in verbs:
        item["get"] = _Op("get", f"read{gv}{name}", f"read the specified {k.kind}",
                          response=obj, gvk=gvk)
    if "update" in verbs:
        item["put"] = _Op("put", f"replace{gv}{name}", f"replace the specified {k.kind}",
                          response=obj, gvk=gvk, params=_WRITE_PARAMS, body=obj)
    if "delete" in verbs:
        item["delete"] = _Op("delete", f"delete{gv}{name}", f"delete a {k.kind}", response=obj,
                             gvk=gvk, params=_DELETE_PARAMS, body=META + "DeleteOptions")
    if "patch" in verbs:
        item["patch"] = _Op("patch", f"patch{gv}{name}", f"partially update the specified "
                            f"{k.kind}", response=obj, gvk=gvk, params=_PATCH_PARAMS, body=PATCH,
                            patch=True)
    for sub in k.subresources:
        s_group, s_version, s_kind, s_verbs = subresource_info(k, sub, version)
        s_gvk = _gvk(s_group, s_version, s_kind)
        title = sub.capitalize()
        path = f"{base}/{{name}}/{sub}"
        ops: dict[str, _Op] = {}
        if sub in _SUB_PARAMS or sub == "log":
            params = _SUB_PARAMS.get(sub, ())
            if sub == "log":
                ops["get"] = _Op("get", f"read{gv}{name}Log", f"read log of the specified "
                                 f"{k.kind}", response=None, gvk=s_gvk, params=params, plain=True)
            else:
                for verb in sorted(s_verbs):
                    method = {"create": "post", "get": "get", "update": "put",
                              "delete": "delete", "patch": "patch"}[verb]
                    ops[method] = _Op("connect", f"connect{gv}{method.capitalize()}{name}{title}",
                                      f"connect {method.upper()} requests to {sub} of {k.kind}",
                                      response=None, gvk=s_gvk, params=params, plain=True)
        else:
            try:
                s_obj = schema_name(s_group, s_version, s_kind)
            except (AttributeError, KeyError):
                continue
            if "get" in s_verbs:
                ops["get"] = _Op("get", f"read{gv}{name}{title}",
                                 f"read {sub} of the specified {k.kind}", response=s_obj,
                                 gvk=s_gvk)
            if "update" in s_verbs:
                ops["put"] = _Op("put", f"replace{gv}{name}{title}",
                                 f"replace {sub} of the specified {k.kind}", response=s_obj,
                                 gvk=s_gvk, params=_WRITE_PARAMS, body=s_obj)
            if "patch" in s_verbs:
                ops["patch"] = _Op("patch", f"patch{gv}{name}{title}",
                                   f"partially update {sub} of the specified {k.kind}",
                                   response=s_obj, gvk=s_gvk, params=_PATCH_PARAMS, body=PATCH,
                                   patch=True)
            if "create" in s_verbs:
                ops["post"] = _Op("post", f"create{gv}{name}{title}",
                                  f"create {sub} of a {k.kind}", response=s_obj, gvk=s_gvk,
                                  params=_WRITE_PARAMS, body=s_obj)
        if ops:
            out[path] = ops
    return out


def _group_version_paths(group: str, version: str, *, v3: bool) -> dict[str, Any]:
    _, tag = _gv_title(group, version)
    result: dict[str, Any] = {}
    for k in kinds_in(group, version):
        for path, ops in _kind_paths(k, group, version).items():
            if not ops:
                continue
            item: dict[str, Any] = {m: op.render(tag, v3=v3) for m, op in ops.items()}
            path_params = [_param(p, v3=v3, where="path", desc=_path_desc(p, k))
                           for p in ("name", "namespace") if "{" + p + "}" in path]
            item["parameters"] = [*path_params, _param("pretty", v3=v3)]
            result[path] = item
    return dict(sorted(result.items()))


def _path_desc(param: str, k: Kind) -> str:
    if param == "name":
        return f"name of the {k.kind}"
    return "object name and auth scope, such as for teams and projects"


# -- documents --------------------------------------------------------------------------------

_INFO = {"title": "Kubernetes", "version": K8S_VERSION}


@cache
def _v3_document(group: str, version: str) -> tuple[bytes, str] | None:
    served = kinds_in(group, version)
    if not served:
        return None
    path_items = _group_version_paths(group, version, v3=True)
    schemas = _all_schemas(True)
    needed: set[str] = set()
    _refs_in(path_items, needed)
    doc = {
        "openapi": "3.0.0",
        "info": _INFO,
        "paths": path_items,
        "components": {
            "schemas": _closure(needed, schemas),
            "securitySchemes": {"BearerToken": {
                "type": "apiKey", "description": "Bearer Token authentication",
                "name": "authorization", "in": "header"}},
        },
        "security": [{"BearerToken": []}],
    }
    data = orjson.dumps(doc)
    return data, hashlib.sha512(data).hexdigest().upper()


def openapi_v3_document(group: str, version: str) -> bytes | None:
    """``GET /openapi/v3/api/v1`` or ``/openapi/v3/apis/{group}/{version}``; None if not served."""
    built = _v3_document(group, version)
    return built[0] if built else None


def openapi_v3_hash(group: str, version: str) -> str | None:
    """The hash the index names for a group-version document (serve it as the ETag)."""
    built = _v3_document(group, version)
    return built[1] if built else None


def _v3_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


@cache
def openapi_v3_index() -> dict[str, Any]:
    """``GET /openapi/v3``: where each group-version document lives, with its content hash."""
    out: dict[str, dict[str, str]] = {}
    for group, version in sorted(_served_group_versions(), key=lambda gv: _v3_path(*gv)):
        digest = openapi_v3_hash(group, version)
        path = _v3_path(group, version)
        out[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": out}


@cache
def openapi_v2_dict() -> dict[str, Any]:
    """The Swagger 2.0 document as a dict (shared; do not mutate)."""
    all_paths: dict[str, Any] = {}
    for group, version in _served_group_versions():
        all_paths.update(_group_version_paths(group, version, v3=False))
    return {
        "swagger": "2.0",
        "info": _INFO,
        "paths": dict(sorted(all_paths.items())),
        "definitions": _all_schemas(False),
        "securityDefinitions": {"BearerToken": {
            "description": "Bearer Token authentication", "type": "apiKey",
            "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    }


@cache
def openapi_v2_document() -> bytes:
    """``GET /openapi/v2`` as JSON."""
    return orjson.dumps(openapi_v2_dict())


def openapi_v2_hash() -> str:
    return hashlib.sha512(openapi_v2_document()).hexdigest().upper()


def group_version_of(path: str) -> tuple[str, str] | None:
    """``api/v1`` -> ("", "v1"); ``apis/apps/v1`` -> ("apps", "v1"); anything else None."""
    parts = path.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "api":
        return "", parts[1]
    if len(parts) == 3 and parts[0] == "apis":
        return parts[1], parts[2]
    return None


__all__ = [
    "full_name", "group_version_of", "openapi_v2_document", "openapi_v2_hash",
    "openapi_v2_protobuf", "openapi_v3_document", "openapi_v3_hash", "openapi_v3_index",
    "schema_name",
]


# -- Swagger 2.0 as gnostic's openapi_v2.Document protobuf -----------------------------------
# client-go asks for /openapi/v2 as application/com.github.proto-openapi.spec.v2@v1.0+protobuf
# and decodes google/gnostic's OpenAPIv2.proto. Only the fields our document uses are encoded;
# vendor extensions carry their value as YAML (JSON is YAML) in Any.yaml, as gnostic does.
# The answer's Content-Type is the dotted form: Go's mime parser (old kubectl) rejects the '@'.

PROTOBUF_V2_MEDIA_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes_field(num: int, data: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _str(num: int, value: str) -> bytes:
    return _bytes_field(num, value.encode()) if value else b""


def _bool(num: int, value: bool) -> bytes:
    return _varint(num << 3) + b"\x01" if value else b""


def _strs(num: int, values: list[str]) -> bytes:
    return b"".join(_bytes_field(num, v.encode()) for v in values)


def _named(num: int, name: str, value: bytes) -> bytes:
    return _bytes_field(num, _str(1, name) + _bytes_field(2, value))


def _extensions(num: int, obj: dict[str, Any]) -> bytes:
    return b"".join(
        _named(num, k, _str(2, orjson.dumps(v).decode())) for k, v in obj.items()
        if k.startswith("x-"))


def _pb_schema(s: dict[str, Any]) -> bytes:
    out = [_str(1, s.get("$ref", "")), _str(2, s.get("format", "")),
           _str(4, s.get("description", "")), _strs(19, s.get("required", []))]
    extra = s.get("additionalProperties")
    if isinstance(extra, dict):
        out.append(_bytes_field(21, _bytes_field(1, _pb_schema(extra))))
    if "type" in s:
        out.append(_bytes_field(22, _strs(1, [s["type"]])))
    if "items" in s:
        out.append(_bytes_field(23, _bytes_field(1, _pb_schema(s["items"]))))
    out.extend(_bytes_field(24, _pb_schema(sub)) for sub in s.get("allOf", []))
    if "properties" in s:
        props = b"".join(_named(1, k, _pb_schema(v)) for k, v in s["properties"].items())
        out.append(_bytes_field(25, props))
    out.append(_extensions(31, s))
    return b"".join(out)


def _pb_parameter(p: dict[str, Any]) -> bytes:
    if p["in"] == "body":
        body = (_str(1, p.get("description", "")) + _str(2, p["name"]) + _str(3, "body")
                + _bool(4, p.get("required", False)) + _bytes_field(5, _pb_schema(p["schema"])))
        param = _bytes_field(1, body)
    else:
        path = p["in"] == "path"
        sub = (_bool(1, p.get("required", False)) + _str(2, p["in"])
               + _str(3, p.get("description", "")) + _str(4, p["name"])
               + _str(5 if path else 6, p.get("type", ""))
               + _bool(19 if path else 20, p.get("uniqueItems", False)))
        param = _bytes_field(2, _bytes_field(4 if path else 3, sub))
    return _bytes_field(1, param)


def _pb_operation(op: dict[str, Any]) -> bytes:
    responses = b"".join(
        _named(1, code, _bytes_field(1, _str(1, r.get("description", "")) + (
            _bytes_field(2, _bytes_field(1, _pb_schema(r["schema"]))) if "schema" in r else b"")))
        for code, r in op.get("responses", {}).items())
    return b"".join([
        _strs(1, op.get("tags", [])), _str(3, op.get("description", "")),
        _str(5, op.get("operationId", "")), _strs(6, op.get("produces", [])),
        _strs(7, op.get("consumes", [])),
        b"".join(_bytes_field(8, _pb_parameter(p)) for p in op.get("parameters", [])),
        _bytes_field(9, responses), _strs(10, op.get("schemes", [])), _extensions(13, op),
    ])


_PATH_METHODS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def _pb_path_item(item: dict[str, Any]) -> bytes:
    out = [_bytes_field(num, _pb_operation(item[m])) for m, num in _PATH_METHODS.items()
           if m in item]
    out.extend(_bytes_field(9, _pb_parameter(p)) for p in item.get("parameters", []))
    return b"".join(out)


@cache
def openapi_v2_protobuf() -> bytes:
    """``GET /openapi/v2`` as gnostic's ``openapi_v2.Document`` (see PROTOBUF_V2_MEDIA_TYPE)."""
    doc = openapi_v2_dict()
    info = _str(1, doc["info"]["title"]) + _str(2, doc["info"]["version"])
    paths_pb = b"".join(_named(2, p, _pb_path_item(item)) for p, item in doc["paths"].items())
    defs = b"".join(_named(1, n, _pb_schema(s)) for n, s in doc["definitions"].items())
    security = b"".join(
        _bytes_field(12, b"".join(_named(1, k, _strs(1, v)) for k, v in req.items()))
        for req in doc["security"])
    sec_defs = b"".join(
        _named(1, name, _bytes_field(2, _str(1, d["type"]) + _str(2, d["name"])
                                     + _str(3, d["in"]) + _str(4, d.get("description", ""))))
        for name, d in doc["securityDefinitions"].items())
    return b"".join([
        _str(1, doc["swagger"]), _bytes_field(2, info), _bytes_field(8, paths_pb),
        _bytes_field(9, defs), security, _bytes_field(13, sec_defs),
    ])
