"""The reference tables are generated from the code and cannot drift (issue 11 item 5).

README's settings table (config.py), docs/errors.md (errors.py) and docs/events.md
(events.py) are written by ``python -m tools.gen_docs``; the SDKs' error classes are
hand-written copies of the error table, checked here against errors.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from tools import gen_docs

from openplatform.config import Settings
from openplatform.errors import ERRORS
from openplatform.runtime import make_driver
from openplatform.storage.sql.postgres import PostgresDriver
from openplatform_client.errors import BY_ERROR
from tests.conftest import TEST_SECRET_KEY

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ("README.md", "docs/errors.md", "docs/events.md")


def gen_docs_command(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m tools.gen_docs`` as README's Development section prints it."""
    return subprocess.run(
        [sys.executable, "-m", "tools.gen_docs", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_the_generated_tables_are_up_to_date() -> None:
    result = gen_docs_command(ROOT, "--check")
    assert result.returncode == 0, result.stderr


def test_the_command_rewrites_a_stale_table_and_the_check_names_it(tmp_path: Path) -> None:
    """In a copy of the files: a hand-edited row is caught by ``--check`` and put back by the command."""
    for relative in (*GENERATED, "tools/__init__.py", "tools/gen_docs.py", "src/openplatform/events.py"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, tmp_path / relative)
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text().replace("| `7200` |", "| `3600` |"))
    errors = tmp_path / "docs/errors.md"
    errors.write_text(errors.read_text().replace("| 40303 | insufficient_scope | 403 |", "| 40303 | no_scope | 403 |"))

    stale = gen_docs_command(tmp_path, "--check")
    assert stale.returncode == 1
    assert "README.md" in stale.stderr and "docs/errors.md" in stale.stderr and "events.md" not in stale.stderr

    assert gen_docs_command(tmp_path).returncode == 0
    for relative in GENERATED:
        assert (tmp_path / relative).read_text() == (ROOT / relative).read_text(), relative
    assert gen_docs_command(tmp_path, "--check").returncode == 0


def test_every_setting_is_described_and_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        assert field.description and field.description.strip(), f"Settings.{name} has no description"
        assert f"| `OPENPLATFORM_{name.upper()}` |" in readme, name


def test_the_settings_table_shows_defaults_and_accepted_values() -> None:
    table = gen_docs.settings_table()
    assert "| `OPENPLATFORM_CODE_TTL` | `300` | whole number, 10–600 |" in table
    assert "| `OPENPLATFORM_ERROR_STATUS` | `http` | `http` or `always-200` |" in table
    assert "| `OPENPLATFORM_REDIS_URL` | unset | text |" in table
    assert "| `OPENPLATFORM_INVALIDATION_POLL_SECONDS` | `0.5` | number, > 0, ≤ 5 |" in table


def test_every_error_is_in_docs_errors_md_with_its_status() -> None:
    doc = (ROOT / "docs/errors.md").read_text()
    for kind in ERRORS.values():
        assert kind.when.strip(), kind.error
        assert f"| {kind.code} | {kind.error} | {kind.status} |" in doc


def test_every_audit_event_is_in_docs_events_md() -> None:
    doc = (ROOT / "docs/events.md").read_text()
    declared = gen_docs.declared_events()
    assert len(declared) >= 40
    for name, value, meaning in declared:
        assert f"| `{value}` | {' '.join(meaning.split())} | `events.{name}` |" in doc


def test_the_python_sdk_has_one_class_per_error_of_the_table() -> None:
    assert {error: cls.default_code for error, cls in BY_ERROR.items()} == {
        error: kind.code for error, kind in ERRORS.items()
    }


def test_the_typescript_sdk_has_one_class_per_error_of_the_table() -> None:
    """clients/typescript/src/errors.ts: every class's defaultCode/defaultError pair is a row of
    errors.py, and BY_ERROR lists one class for each row."""
    source = (ROOT / "clients/typescript/src/errors.ts").read_text()
    classes = {
        name: (int(code), error)
        for name, code, error in re.findall(
            r"export class (\w+) extends \w+ \{\s*static override readonly defaultCode = (\d+);\s*"
            r'static override readonly defaultError = "([a-z_]+)";',
            source,
        )
    }
    table = {(kind.code, kind.error) for kind in ERRORS.values()}
    assert len(classes) >= len(table)
    assert set(classes.values()) <= table, set(classes.values()) - table
    listed = re.search(r"BY_ERROR[^=]*= new Map\(\s*\[(.*?)\]", source, re.S)
    assert listed is not None
    names = [name.strip() for name in listed.group(1).split(",") if name.strip()]
    assert sorted(classes[name] for name in names) == sorted(table)


# ------------------------------------------------------------ operator knobs moved into Settings


@pytest.mark.parametrize("variable", ["OPENPLATFORM_POSTGRES_POOL_SIZE", "OPENPLATFORM_CLEANUP_BATCH_SIZE"])
def test_a_knob_out_of_range_stops_the_command_with_its_name(variable: str, tmp_path: Path) -> None:
    env = dict(os.environ, OPENPLATFORM_DATABASE_URL=f"sqlite:///{tmp_path / 'op.db'}",
               OPENPLATFORM_SECRET_KEY=TEST_SECRET_KEY, **{variable: "0"})  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "openplatform.cli", "db", "cleanup"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert variable.removeprefix("OPENPLATFORM_").lower() in result.stderr.lower()
    with pytest.raises(ValidationError):
        Settings(**{variable.removeprefix("OPENPLATFORM_").lower(): 0})  # type: ignore[arg-type]


async def test_the_pool_size_setting_sizes_the_postgres_pool(pg_database: str) -> None:
    driver = make_driver(Settings(database_url=pg_database, secret_key=TEST_SECRET_KEY, postgres_pool_size=3))
    assert isinstance(driver, PostgresDriver)
    await driver.start()
    try:
        assert driver._pool.get_max_size() == 3
    finally:
        await driver.close()
