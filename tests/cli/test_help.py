"""The command line explains itself (SPEC §5, §11; issue 10 item 5).

Every command and option has help text and names its value with a METAVAR (no Python type such
as ``<str>`` or ``<list[str]>``); a bad setting names its ``OPENPLATFORM_…`` variable in one line
on stderr, without a traceback; every exit status the CLI uses is in the README's table.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from openplatform import cli

ROOT = Path(__file__).resolve().parents[2]
PYTHON_TYPES = re.compile(r"<(?:str|int|float|bool|path|list|tuple|dict|NoneType)\b|list\[|Optional\[|NoneType")
USAGE_ERROR = 2  # click's status for an unknown option, a missing one or a bad value


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group of the click tree Typer builds (its own vendored click), with the
    words that invoke it."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from commands(sub, (*path, name))


def options(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "option" and not p.hidden]


TREE = list(commands(typer.main.get_command(cli.app)))


def test_the_tree_has_every_documented_command() -> None:
    names = {" ".join(path) for path, _command in TREE}
    for wanted in ("serve", "demo", "db upgrade", "db cleanup", "db reencrypt", "spe create", "spe list",
                   "customer create", "customer list", "app create", "app rotate-secret", "app suspend",
                   "app resume", "app list", "app show", "install", "install list", "uninstall", "user create",
                   "user list", "user set-password", "admin-key create", "admin-key list",
                   "admin-key revoke"):  # fmt: skip
        assert wanted in names, wanted


@pytest.mark.parametrize(("path", "command"), TREE, ids=[" ".join(p) or "openplatform" for p, _ in TREE])
def test_every_command_and_option_is_explained(path: tuple[str, ...], command: Any) -> None:
    assert (command.help or "").strip(), f"openplatform {' '.join(path)} has no help text"
    for param in options(command):
        assert (param.help or "").strip(), f"{' '.join(path)} {param.opts[0]} has no help text"
        if not param.is_flag:
            assert param.metavar and param.metavar.isupper(), f"{' '.join(path)} {param.opts[0]}: {param.metavar!r}"

    shown = CliRunner().invoke(cli.app, [*path, "--help"], prog_name="openplatform")
    assert shown.exit_code == 0, shown.output
    assert not PYTHON_TYPES.search(shown.output), shown.output
    assert shown.output.startswith(f"Usage: openplatform {' '.join(path)}".rstrip()), shown.output
    for param in options(command):
        assert param.opts[0] in shown.output


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OPENPLATFORM_")}
    return subprocess.run(
        [sys.executable, "-m", "openplatform.cli", *args], env={**clean, **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "variables", "secret"),
    [
        ({"OPENPLATFORM_ACCESS_TOKEN_TTL": "abc"}, ["OPENPLATFORM_ACCESS_TOKEN_TTL"], None),
        ({"OPENPLATFORM_DATABASE_URL": "mysql://root:hunter2@db/x"}, ["OPENPLATFORM_DATABASE_URL"], "hunter2"),
        ({"OPENPLATFORM_OLD_SECRET_KEYS": "s3cret-one,,s3cret-two", "OPENPLATFORM_CODE_TTL": "5"},
         ["OPENPLATFORM_OLD_SECRET_KEYS", "OPENPLATFORM_CODE_TTL"], "s3cret"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_named_in_one_line_per_variable(
    tmp_path: Path, env: dict[str, str], variables: list[str], secret: str | None
) -> None:
    env = {"OPENPLATFORM_DATABASE_URL": f"sqlite:///{tmp_path}/x.db", **env}
    result = run("spe", "list", **env)
    assert result.returncode == 7 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert sorted(line.split(":", 2)[1].strip() for line in lines) == sorted(variables), result.stderr
    assert all(line.startswith("error: OPENPLATFORM_") and len(line.split(": ", 2)[2]) > 10 for line in lines)
    for line in lines:  # the reason speaks of the variable, never of the code's field name (database_url)
        _error, variable, reason = line.split(": ", 2)
        assert variable.removeprefix("OPENPLATFORM_").lower() not in reason, line
    assert "Traceback" not in result.stderr and "pydantic" not in result.stderr
    assert secret is None or secret not in result.stderr


def test_a_config_file_that_cannot_be_read_is_a_bad_setting(tmp_path: Path) -> None:
    """OPENPLATFORM_CONFIG_FILE naming a missing file (a typo in a unit file) was silently ignored:
    the command ran on the defaults, a new SQLite file and a newly generated server key."""
    database = f"sqlite:///{tmp_path}/x.db"
    for path in (tmp_path / "missing.env", tmp_path):  # no such file; a directory
        result = run("spe", "list", OPENPLATFORM_CONFIG_FILE=str(path), OPENPLATFORM_DATABASE_URL=database)
        assert result.returncode == 7 and result.stdout == "", result.stdout
        (line,) = result.stderr.splitlines()
        assert line.startswith("error: OPENPLATFORM_CONFIG_FILE: ") and str(path) in line, line
    config = tmp_path / "openplatform.env"
    config.write_text("OPENPLATFORM_ACCESS_TOKEN_TTL=abc\n")  # read: its bad value is reported
    result = run("spe", "list", OPENPLATFORM_CONFIG_FILE=str(config), OPENPLATFORM_DATABASE_URL=database)
    assert result.returncode == 7 and result.stderr.startswith("error: OPENPLATFORM_ACCESS_TOKEN_TTL: ")
    config.write_text("OPENPLATFORM_ACCESS_TOKEN_TTL=600\n")
    assert run("spe", "list", OPENPLATFORM_CONFIG_FILE=str(config), OPENPLATFORM_DATABASE_URL=database).returncode == 0


def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    result = run("spe", "list", OPENPLATFORM_DATABASE_URL="postgresql://op:hunter2@127.0.0.1:1/nowhere")
    assert result.returncode == 3 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: cannot prepare the database at postgresql://***@127.0.0.1:1/nowhere")
    assert "OPENPLATFORM_DATABASE_URL" in line and "hunter2" not in line


def readme_exit_statuses() -> dict[int, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Exit status", 1)[1].split("\n#", 1)[0]
    return {int(m[1]): m[2] for m in re.finditer(r"^\| (\d+) \| (.+) \|$", section, re.MULTILINE)}


def exit_statuses_in_cli() -> set[int]:
    """Every status cli.py can exit with: ``fail(message, N)`` (1 by default), ``typer.Exit(N)``,
    and click's usage error."""
    found = {0, USAGE_ERROR}
    for node in ast.walk(ast.parse(Path(cli.__file__).read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name == "fail":
            status = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords), None)
            found.add(1 if status is None else ast.literal_eval(status))
        elif name == "Exit" and node.args and isinstance(node.args[0], ast.Name):
            assert node.args[0].id == "status", ast.unparse(node)  # only fail() passes its status on
        elif name == "Exit":
            found.add(ast.literal_eval(node.args[0]) if node.args else 0)
    return found


def test_every_exit_status_is_in_the_readme_table() -> None:
    documented = readme_exit_statuses()
    assert set(documented) == exit_statuses_in_cli()
    assert all(len(meaning) > 10 for meaning in documented.values())


@pytest.mark.parametrize(
    ("args", "status"),
    [(["app", "show", "--app-id", "app_nope"], 4), (["app", "show"], USAGE_ERROR), (["nope"], USAGE_ERROR),
     (["install", "list"], 2)],
)  # fmt: skip
def test_the_documented_statuses_are_the_ones_returned(tmp_path: Path, args: list[str], status: int) -> None:
    result = run(*args, OPENPLATFORM_DATABASE_URL=f"sqlite:///{tmp_path}/x.db", OPENPLATFORM_SECRET_KEY="k" * 40)
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
