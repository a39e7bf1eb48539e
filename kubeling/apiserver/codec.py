"""Request bodies in, responses out: content types and content negotiation.

Bodies arrive as JSON, YAML or Kubernetes protobuf (kubectl 1.32 sends
protobuf for its typed ``create`` commands); patches carry their type in the
content type. Responses are JSON (or YAML when asked for), and become a
``meta.k8s.io/v1`` Table or PartialObjectMetadata when the Accept header
asks for those shapes, as kubectl's ``get`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from kubeling.api import errors

try:
    _Loader: Any = yaml.CSafeLoader
    _Dumper: Any = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader
    _Dumper = yaml.SafeDumper

MAX_BODY = 3 * 1024 * 1024

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)
DISCOVERY_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def media_type(header: str | None) -> tuple[str, dict[str, str]]:
    """``application/json; charset=utf-8`` -> (``application/json``, {charset: utf-8})."""
    if not header:
        return "", {}
    parts = [p.strip() for p in header.split(";")]
    params: dict[str, str] = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        if k:
            params[k.strip().lower()] = v.strip().strip('"')
    return parts[0].lower(), params


def _yaml_load(body: bytes) -> Any:
    try:
        return yaml.load(body, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise errors.bad_request(f"error converting YAML to JSON: {exc}") from None


def _json_load(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.bad_request(
            f"the object provided is unrecognized or malformed: json parse error: {exc}"
        ) from None


def decode_body(content_type: str | None, body: bytes, *, patch: bool = False) -> Any:
    """Decode a request body by its content type (400 malformed, 415 unknown type)."""
    mt, _ = media_type(content_type)
    if not body.strip():
        raise errors.bad_request("the request body is empty")
    if patch:
        if mt in (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH):
            return _json_load(body)
        if mt == APPLY_PATCH:
            return _yaml_load(body)
        raise errors.StatusError(
            415, "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types "
            f"include: {', '.join(PATCH_TYPES)}")
    if mt in (JSON, "") or mt.endswith("+json"):
        return _json_load(body)
    if mt in (YAML, "application/x-yaml", "text/yaml"):
        return _yaml_load(body)
    if mt == PROTOBUF:
        from kubeling.api.protobuf import decode_protobuf

        return decode_protobuf(body)
    raise errors.StatusError(
        415, "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{JSON}, {YAML}, {PROTOBUF}")


@dataclass(frozen=True)
class Want:
    """What the client accepts: the shape (object, Table, PartialObjectMetadata) and format."""

    shape: str = "object"  # object | Table | PartialObjectMetadata | discovery
    yaml: bool = False
    table_version: str = "v1"


def negotiate(accept: str | None) -> Want:
    """Pick the first acceptable representation from an Accept header (406 if none)."""
    if not accept:
        return Want()
    saw_any = False
    for item in accept.split(","):
        mt, params = media_type(item)
        if not mt:
            continue
        saw_any = True
        as_ = params.get("as")
        if as_:
            g = params.get("g", "")
            if mt != JSON:
                continue
            if as_ == "Table" and g == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
                return Want("Table", table_version=params["v"])
            if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList") and \
                    g == "meta.k8s.io":
                return Want("PartialObjectMetadata", table_version=params.get("v", "v1"))
            if as_ == "APIGroupDiscoveryList" and g == "apidiscovery.k8s.io" and \
                    params.get("v") == "v2":
                return Want("discovery")
            continue
        if mt in (JSON, "application/*", "*/*", "application/json-patch+json"):
            return Want()
        if mt in (YAML, "application/x-yaml"):
            return Want(yaml=True)
    if not saw_any:
        return Want()
    raise errors.not_acceptable(
        f"only the following media types are accepted: {JSON}, {YAML}")


def encode(obj: Any, want: Want | None = None) -> tuple[bytes, str]:
    if want is not None and want.yaml:
        return yaml.dump(obj, Dumper=_Dumper, sort_keys=False).encode(), YAML
    return orjson.dumps(obj), JSON


def from_json_bytes(raw: bytes, want: Want) -> tuple[bytes, str]:
    """Send stored JSON as it is, or as YAML when asked."""
    if want.yaml:
        return encode(orjson.loads(raw), want)
    return raw, JSON
