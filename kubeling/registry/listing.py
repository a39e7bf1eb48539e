"""List options and continue tokens, shared by the registry and its callers.

A continue token is what Kubernetes sends: base64 (URL alphabet, no padding)
of ``{"v": "meta.k8s.io/v1", "rv": <revision>, "start": "<key>\\x00"}`` with the
key relative to the list's prefix, so a page resumes at the same revision.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from kubeling.api import errors

Obj = dict[str, Any]


@dataclass
class ListOptions:
    label_selector: str = ""
    field_selector: str = ""
    limit: int = 0
    continue_: str = ""
    resource_version: str = ""
    resource_version_match: str = ""


def encode_continue(revision: int, start: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        rv = int(data["rv"])
        start = str(data["start"])
        if data.get("v") != "meta.k8s.io/v1" or rv <= 0:
            raise ValueError("bad version")
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise errors.bad_request(f"continue key is not valid: {exc}") from None
    if start.startswith("/") or ".." in start.split("/"):
        raise errors.bad_request("continue key is not valid: illegal start key")
    return rv, start


Predicate = Callable[[Obj], bool]
