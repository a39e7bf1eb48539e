"""Copies of JSON-shaped data, made fast.

Objects are copied on every write (a caller's body must not change under
it); a round trip through orjson copies plain JSON several times faster than
``copy.deepcopy``. Values orjson cannot carry (integers beyond 64 bits from
a YAML body) fall back to a plain recursive copy.
"""

from __future__ import annotations

from typing import Any

import orjson


def _slow_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _slow_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_slow_copy(v) for v in value]
    return value


def json_copy(value: Any) -> Any:
    """A copy of ``value`` that shares no dict or list with it."""
    if not isinstance(value, dict | list):
        return value
    try:
        return orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return _slow_copy(value)
