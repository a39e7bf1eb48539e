"""Field errors worded as Kubernetes words them (apimachinery's field.Error).

Validation returns a list of causes; each names the field path and reads
like ``metadata.name: Invalid value: "Foo": a lowercase RFC 1123 ...``.
The cause ``reason`` is the CauseType kubectl and clients switch on.
"""

from __future__ import annotations

from typing import Any

import orjson

from kubeling.api.errors import Cause


def show(value: Any) -> str:
    """Render a value the way Go's ``%#v``-style field errors do, for the common types."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "null"
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def required(path: str, detail: str = "") -> Cause:
    msg = "Required value" + (f": {detail}" if detail else "")
    return {"reason": "FieldValueRequired", "message": msg, "field": path}


def invalid(path: str, value: Any, detail: str = "") -> Cause:
    msg = f"Invalid value: {show(value)}" + (f": {detail}" if detail else "")
    return {"reason": "FieldValueInvalid", "message": msg, "field": path}


def not_supported(path: str, value: Any, supported: list[str] | tuple[str, ...]) -> Cause:
    msg = f"Unsupported value: {show(value)}"
    if supported:
        msg += ": supported values: " + ", ".join(show(s) for s in supported)
    return {"reason": "FieldValueNotSupported", "message": msg, "field": path}


def duplicate(path: str, value: Any) -> Cause:
    return {"reason": "FieldValueDuplicate", "message": f"Duplicate value: {show(value)}",
            "field": path}


def forbidden(path: str, detail: str) -> Cause:
    return {"reason": "FieldValueForbidden", "message": f"Forbidden: {detail}", "field": path}


def too_long(path: str, max_length: int) -> Cause:
    return {"reason": "FieldValueTooLong",
            "message": f"Too long: may not be more than {max_length} bytes", "field": path}


def too_many(path: str, actual: int, max_items: int) -> Cause:
    return {"reason": "FieldValueTooMany",
            "message": f"Too many: {actual}: must have at most {max_items} items", "field": path}


def immutable(path: str, value: Any) -> Cause:
    """The wording of apimachinery's ValidateImmutableField."""
    return invalid(path, value, "field is immutable")
