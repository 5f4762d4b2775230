"""Helpers of the browser tests: accounts seeded in the database, signing in like a person does."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from openplatform.config import Settings
from openplatform.runtime import build_admin
from openplatform.services.accounts import build_accounts
from tests.conftest import cli_env
from tests.ui.support import PASSWORD


def create_user_with_cli(settings: Settings, email: str, role: str, xspe: str | None = None) -> dict[str, Any]:
    """``openplatform user create ... --password-stdin``, as an operator bootstraps the first admin."""
    import orjson

    args = ["user", "create", "--email", email, "--role", role, "--password-stdin"]
    args += ["--xspe", xspe] if xspe else []
    done = subprocess.run(
        [sys.executable, "-m", "openplatform.cli", *args],
        input=PASSWORD + "\n", env=cli_env(settings), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)  # type: ignore[no-any-return]


def seed(settings: Settings, *accounts: tuple[str, str]) -> str:
    """An SPE and accounts ``(email, role)`` straight in the database; the SPE's xspe."""

    async def go() -> str:
        admin = build_admin(settings)
        try:
            spe = await admin.create_spe("Acme Hosting")
            made = build_accounts(admin.stores, admin.keyring)
            for email, role in accounts:
                await made.create_user(email, role, PASSWORD, spe.xspe if role == "spe-admin" else None)
            return spe.xspe
        finally:
            await admin.db.close()

    # Playwright's sync API keeps an event loop running in this thread, so seed from another one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def sign_in(page: Any, base: str, email: str, password: str = PASSWORD) -> None:
    """Sign in with the keyboard only: type, Tab to the next field, Enter to submit."""
    page.goto(f"{base}/login")
    page.get_by_label("E-mail").focus()
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def shot(page: Any, folder: Path | None, name: str) -> None:
    if folder is not None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
