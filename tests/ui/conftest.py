"""Fixtures of the management-screen tests: signed-in people, and a real browser."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Harness, need
from tests.ui.support import Person, person

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
MakePerson = Callable[..., Awaitable[Person]]


@pytest.fixture
async def people(harness: Harness) -> AsyncIterator[MakePerson]:
    """``await people(email, role, xspe=None)``: a new account, signed in with its own cookies."""
    made: list[Person] = []

    async def make(email: str, role: str, xspe: str | None = None) -> Person:
        made.append(await person(harness, email, role, xspe))
        return made[-1]

    yield make
    for someone in made:
        await someone.client.aclose()


@pytest.fixture
def browser(live_server: str) -> Iterator[Any]:
    """Debian's chromium driven by Playwright (never a downloaded browser).

    It needs the live server and is started after it: Playwright's sync API keeps
    an event loop running in the test's thread, and the database fixtures use
    ``asyncio.run`` while they are set up.
    """
    need(os.path.exists(CHROMIUM), f"{CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def screenshots(tmp_path: Path, settings: Any) -> Path | None:
    """Where the journey saves screenshots: ``OPENPLATFORM_SCREENSHOTS`` (``docs/screenshots`` refreshes
    the README's) or a temporary folder; taken on the SQLite run only (the screens are the same)."""
    if not settings.is_sqlite:
        return None
    target = Path(os.environ.get("OPENPLATFORM_SCREENSHOTS") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


@pytest.fixture(autouse=True)
def quick_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process tests hash with argon2id at minimal cost (the production cost, ~0.3 s a hash on CI,
    is what the browser tests' real server uses; test_password_hash_parameters checks it)."""
    from argon2 import PasswordHasher

    from openplatform.services import accounts

    monkeypatch.setattr(accounts, "hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
