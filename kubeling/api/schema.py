"""The field schema of every served kind, as one tree of typed nodes.

The official ``kubernetes`` client ships a generated model class per API type
whose ``openapi_types`` and ``attribute_map`` give each field's JSON name and
type, and whose docstrings carry the field descriptions. We read them once,
at first use, rather than writing thousands of field definitions by hand.
What those models do not carry -- how lists merge (patch strategy, merge
key, list type and map keys), which string fields are quantities or
int-or-strings -- is overlaid from :mod:`kubeling.api.listmeta`.

Everything that needs to know the shape of an object reads it here: strict
field validation (unknown fields), strategic merge patch, server-side apply,
the OpenAPI documents and ``kubectl explain``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from kubeling.api import listmeta

# Scalar type names used in Scalar.type.
STRING = "string"
INTEGER = "integer"
NUMBER = "number"
BOOLEAN = "boolean"
DATETIME = "date-time"
INT_OR_STRING = "int-or-string"
QUANTITY = "quantity"
ANY = "any"  # free-form JSON (RawExtension, JSON)


@dataclass
class Scalar:
    type: str


@dataclass
class ListOf:
    item: Node
    # "atomic" | "set" | "map" (x-kubernetes-list-type)
    list_type: str = "atomic"
    map_keys: tuple[str, ...] = ()
    # strategic merge patch: "" (replace) | "merge" | "merge,retainKeys"
    patch_strategy: str = ""
    merge_key: str = ""


@dataclass
class MapOf:
    value: Node


@dataclass
class Struct:
    name: str  # the Go-ish type name, e.g. "io.k8s.api.core.v1.PodSpec" short form "v1.PodSpec"
    fields: dict[str, FieldInfo] = field(default_factory=dict)
    description: str = ""
    required: tuple[str, ...] = ()
    # x-kubernetes-map-type atomic / granular
    atomic: bool = False


@dataclass
class FieldInfo:
    name: str
    node: Node
    description: str = ""


Node = Scalar | ListOf | MapOf | Struct

_PRIMS = {
    "str": Scalar(STRING),
    "int": Scalar(INTEGER),
    "float": Scalar(NUMBER),
    "bool": Scalar(BOOLEAN),
    "datetime": Scalar(DATETIME),
    "date": Scalar(DATETIME),
    "object": Scalar(ANY),
}

_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\(str, (.+)\)$")
_DOC_DESC = re.compile(
    r"^\s*Gets the \w+ of this \w+\.\s*# noqa: E501\s*\n\s*\n(.*?)# noqa: E501", re.S
)


def _models() -> Any:
    import kubernetes.client.models as models

    return models


def model_name_to_def(model: str) -> str:
    """``V1PodSpec`` -> ``v1.PodSpec``; ``V2HorizontalPodAutoscaler`` ->
    ``v2.HorizontalPodAutoscaler``."""
    m = re.match(r"^(V\d+(?:alpha\d+|beta\d+)?)(.*)$", model)
    if not m:
        return model
    return f"{m.group(1).lower()}.{m.group(2)}"


def _description(cls: Any, attr: str) -> str:
    prop = getattr(cls, attr, None)
    doc = getattr(prop, "__doc__", None) or ""
    m = _DOC_DESC.search(doc)
    text = " ".join(m.group(1).split()) if m else ""
    return "" if text.startswith(":return:") else text


def _class_description(cls: Any) -> str:
    doc = cls.__doc__ or ""
    # The generated class docstring is boilerplate; use nothing rather than noise.
    return "" if "Do not edit the class manually" in doc else " ".join(doc.split())


def _required(cls: Any) -> tuple[str, ...]:
    """Fields whose generated setter refuses None: the API's required fields."""
    from kubernetes.client.configuration import Configuration

    conf = Configuration()
    conf.client_side_validation = True
    obj = cls.__new__(cls)
    obj.local_vars_configuration = conf
    out = []
    for attr in cls.openapi_types:
        try:
            setattr(obj, attr, None)
        except ValueError:
            out.append(cls.attribute_map[attr])
        except Exception:
            continue
    return tuple(out)


class _Builder:
    def __init__(self) -> None:
        self.models = _models()
        self.structs: dict[str, Struct] = {}

    def node(self, type_name: str, owner: str, json_name: str) -> Node:
        if type_name in _PRIMS:
            override = listmeta.scalar_override(owner, json_name)
            if override:
                return Scalar(override)
            return _PRIMS[type_name]
        m = _LIST.match(type_name)
        if m:
            item = self.node(m.group(1), owner, json_name)
            meta = listmeta.list_meta(owner, json_name)
            if meta is None:
                lt = "atomic"
                return ListOf(item, list_type=lt)
            return ListOf(
                item,
                list_type=meta.list_type,
                map_keys=meta.map_keys,
                patch_strategy=meta.patch_strategy,
                merge_key=meta.merge_key,
            )
        m = _DICT.match(type_name)
        if m:
            value_type = m.group(1)
            value = self.node(value_type, owner, json_name)
            if listmeta.is_quantity_map(owner, json_name) and isinstance(value, Scalar):
                value = Scalar(QUANTITY)
            return MapOf(value)
        return self.struct(type_name)

    def struct(self, model: str) -> Struct:
        name = model_name_to_def(model)
        existing = self.structs.get(name)
        if existing is not None:
            return existing
        cls = getattr(self.models, model)
        st = Struct(name=name, description=_class_description(cls), required=_required(cls))
        self.structs[name] = st
        for attr, type_name in cls.openapi_types.items():
            json_name = cls.attribute_map[attr]
            st.fields[json_name] = FieldInfo(
                json_name, self.node(type_name, name, json_name), _description(cls, attr)
            )
        return st


@cache
def _builder() -> _Builder:
    return _Builder()


def model_for(group: str, version: str, kind: str) -> str:
    """The client model class name of a kind: ``apps``/``v1``/``Deployment`` -> ``V1Deployment``."""
    if kind == "Event" and group == "events.k8s.io":
        return f"Events{version.capitalize()}Event"
    if kind == "Event" and group == "":
        return "CoreV1Event"
    return f"{version.capitalize()}{kind}"


@cache
def kind_schema(group: str, version: str, kind: str) -> Struct:
    """The root schema node of a kind in a given version."""
    return _builder().struct(model_for(group, version, kind))


def struct_named(name: str) -> Struct | None:
    """A struct already built, by definition name (``v1.PodSpec``)."""
    return _builder().structs.get(name)


def all_structs() -> dict[str, Struct]:
    return _builder().structs


def lookup(root: Node, path: list[str | int]) -> Node | None:
    """Follow a path of field names and list indexes from ``root``."""
    node: Node | None = root
    for part in path:
        if node is None:
            return None
        if isinstance(node, Struct):
            fi = node.fields.get(str(part))
            node = fi.node if fi else None
        elif isinstance(node, ListOf):
            node = node.item
        elif isinstance(node, MapOf):
            node = node.value
        else:
            return None
    return node
