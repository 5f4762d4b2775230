"""Fixtures the contract tests share: each test runs once per backend (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.storage.backends import BACKENDS, backend_location
from tests.storage.side_stores import Side, open_side


@pytest.fixture(params=BACKENDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Which backend a contract test runs on, and where (``backends.backend_location``)."""
    return backend_location(request, tmp_path)


@pytest.fixture
async def side(location: tuple[str, str]) -> AsyncIterator[Side]:
    """The accounts, admin keys and outbox of one backend (``side_stores.open_side``)."""
    async for opened in open_side(*location):
        yield opened
