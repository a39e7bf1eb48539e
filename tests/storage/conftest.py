"""The storage fixtures: one ``store`` per backend in BACKENDS, so every test of the
conformance suite runs against every backend through the Store protocol only.

A backend is a function from a fresh temporary directory to a storage URL; opening that
URL again (after closing) must reach the same data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from kubeling.storage import Store, open_store


def _sqlite(tmp: Path) -> str:
    return f"sqlite://{tmp / 'state.db'}"


BACKENDS: dict[str, Callable[[Path], str]] = {
    "sqlite": _sqlite,
}


@pytest.fixture(params=sorted(BACKENDS))
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return BACKENDS[request.param](tmp_path)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        await opened.close()
