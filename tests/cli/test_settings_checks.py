"""Settings checked at start (operator review of issue 10): a server key too short to be a key, and a
misspelt ``OPENPLATFORM_`` name, which was silently ignored.

A key (``OPENPLATFORM_SECRET_KEY``, each entry of ``OPENPLATFORM_OLD_SECRET_KEYS``) shorter than 32
bytes is a bad setting: exit status 7, one line naming the variable, never the value. An
``OPENPLATFORM_`` name that is no setting gets one warning line on stderr (with the closest setting
when there is one) and the command runs on. Each test runs the real command in a fresh directory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from openplatform.config import MIN_SECRET_KEY_BYTES, OTHER_VARIABLES, Settings
from tests.conftest import TEST_SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]
BAD_SETTING = 7


def run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``openplatform ARGS`` in ``cwd`` with only the given ``OPENPLATFORM_`` variables (and a database there)."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("OPENPLATFORM_")}
    env = {"OPENPLATFORM_DATABASE_URL": f"sqlite:///{cwd}/x.db", **env}
    return subprocess.run([sys.executable, "-m", "openplatform.cli", *args], env={**clean, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


# ------------------------------------------------------------------ key strength


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"OPENPLATFORM_SECRET_KEY": "short-key-31-bytes-0123456789ab"}, "OPENPLATFORM_SECRET_KEY"),
        ({"OPENPLATFORM_SECRET_KEY": "k" * 31 + "   "}, "OPENPLATFORM_SECRET_KEY"),  # spaces are not key material
        ({"OPENPLATFORM_SECRET_KEY": "\u00e9" * 15}, "OPENPLATFORM_SECRET_KEY"),  # 30 bytes in UTF-8
        ({"OPENPLATFORM_SECRET_KEY": TEST_SECRET_KEY,
          "OPENPLATFORM_OLD_SECRET_KEYS": f"{TEST_SECRET_KEY}2,short-key-31-bytes-0123456789ab"},
         "OPENPLATFORM_OLD_SECRET_KEYS"),
    ],
)  # fmt: skip
def test_a_short_server_key_is_a_bad_setting(tmp_path: Path, env: dict[str, str], variable: str) -> None:
    result = run(tmp_path, "spe", "list", **env)
    assert (result.returncode, result.stdout) == (BAD_SETTING, ""), result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr  # one line
    assert result.stderr.startswith(f"error: {variable}: ") and str(MIN_SECRET_KEY_BYTES) in result.stderr
    assert "short-key" not in result.stderr and "kkkk" not in result.stderr and "\u00e9" not in result.stderr
    assert not (tmp_path / "x.db").exists()  # refused before anything was made


def test_a_key_of_32_bytes_or_none_is_accepted(tmp_path: Path) -> None:
    for env in (
        {"OPENPLATFORM_SECRET_KEY": "k" * MIN_SECRET_KEY_BYTES},
        {"OPENPLATFORM_SECRET_KEY": "\u00e9" * 16, "OPENPLATFORM_OLD_SECRET_KEYS": f" {'o' * 32} , {TEST_SECRET_KEY}"},
        {},  # none: generated into .openplatform-secret-key, 64 characters
    ):
        result = run(tmp_path, "spe", "list", **env)
        assert result.returncode == 0 and orjson.loads(result.stdout) == {"items": []}, result.stderr
        assert result.stderr == ""
    generated = (tmp_path / ".openplatform-secret-key").read_text().strip()
    assert Settings(secret_key=generated).secret_key == generated  # the generated key passes its own rule


# ------------------------------------------------------------ misspelt names


def test_a_misspelt_setting_is_warned_about_and_the_command_runs_on(tmp_path: Path) -> None:
    result = run(
        tmp_path, "spe", "list",
        OPENPLATFORM_SECRET_KEY=TEST_SECRET_KEY,
        OPENPLATFORM_ACESS_TOKEN_TTL="600-hunter2",  # one letter short
        OPENPLATFORM_DATABSE_URL="sqlite:///elsewhere.db",
        OPENPLATFORM_WORKERS="4",  # nothing close: a hint would mislead
        openplatform_code_ttl="60",  # a setting in lower case: read as such (pydantic-settings ignores case)
    )  # fmt: skip
    assert result.returncode == 0 and orjson.loads(result.stdout) == {"items": []}, result.stderr
    assert result.stderr.splitlines() == [
        "warning: OPENPLATFORM_ACESS_TOKEN_TTL is not a setting, ignored (did you mean OPENPLATFORM_ACCESS_TOKEN_TTL?)",
        "warning: OPENPLATFORM_DATABSE_URL is not a setting, ignored (did you mean OPENPLATFORM_DATABASE_URL?)",
        "warning: OPENPLATFORM_WORKERS is not a setting, ignored",
    ]
    assert "hunter2" not in result.stderr  # names only, never values


def test_a_misspelt_name_in_the_settings_file_is_warned_about_too(tmp_path: Path) -> None:
    settings_file = tmp_path / "openplatform.env"
    settings_file.write_text(f"OPENPLATFORM_SECRET_KEY={TEST_SECRET_KEY}\nOPENPLATFORM_REDIS_ULR=redis://x\n")
    result = run(tmp_path, "spe", "list", OPENPLATFORM_CONFIG_FILE=str(settings_file))
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "warning: OPENPLATFORM_REDIS_ULR is not a setting, ignored (did you mean OPENPLATFORM_REDIS_URL?)\n"
    )
    (tmp_path / ".env").write_text("OPENPLATFORM_LOG_LEVL=debug\n")  # the default file
    result = run(tmp_path, "spe", "list", OPENPLATFORM_SECRET_KEY=TEST_SECRET_KEY)
    assert result.returncode == 0 and "OPENPLATFORM_LOG_LEVL is not a setting" in result.stderr, result.stderr


def test_names_the_project_reads_outside_the_settings_are_not_warned_about(tmp_path: Path) -> None:
    """Every ``OPENPLATFORM_`` name in the code (tests, bench, SDKs, examples, CI) is a setting or
    listed in ``config.OTHER_VARIABLES``, and none of those is warned about."""
    named: set[str] = set()
    for folder in ("src", "tests", "bench", "tools", "clients", "examples", ".ci", "deploy"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in {"", ".py", ".ts", ".js", ".sh", ".yml", ".json", ".toml", ".md"}:
                # *.egg-info holds pip's copy of the README (PKG-INFO), whose example is a misspelt name.
                if any(part == "node_modules" or part.endswith(".egg-info") for part in path.parts):
                    continue
                if path.name == Path(__file__).name or path.name == "config.py":
                    continue
                named |= set(re.findall(r"\bOPENPLATFORM_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="ignore")))
    settings = {f"OPENPLATFORM_{name.upper()}" for name in Settings.model_fields}
    assert named - settings - set(OTHER_VARIABLES) == set()
    assert {"OPENPLATFORM_REQUIRE_SERVICES", "OPENPLATFORM_CONFIG_FILE"} <= named
    env = dict.fromkeys(sorted(set(OTHER_VARIABLES) - {"OPENPLATFORM_CONFIG_FILE"}), "1")
    result = run(tmp_path, "spe", "list", OPENPLATFORM_SECRET_KEY=TEST_SECRET_KEY, **env)
    assert result.returncode == 0 and result.stderr == "", result.stderr


# ------------------------------------------------------------------ memory://


@pytest.mark.parametrize(
    "args", [("serve", "--port", "1"), ("demo", "--port", "1"), ("spe", "list"), ("db", "upgrade")]
)
def test_no_command_takes_the_memory_backend(tmp_path: Path, args: tuple[str, ...]) -> None:
    """``memory://`` lives inside one Python process (an app built by a test): a command's changes, or a
    server no other command could seed, would be out of reach. One line naming the variable, exit 7."""
    result = run(tmp_path, *args, OPENPLATFORM_DATABASE_URL="memory://", OPENPLATFORM_SECRET_KEY=TEST_SECRET_KEY)
    assert (result.returncode, result.stdout) == (BAD_SETTING, ""), result.stderr
    assert result.stderr.startswith("error: OPENPLATFORM_DATABASE_URL: memory:// ") and "sqlite:///" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_an_unknown_database_url_names_the_memory_backend_among_the_choices(tmp_path: Path) -> None:
    result = run(
        tmp_path, "spe", "list", OPENPLATFORM_DATABASE_URL="mysql://x", OPENPLATFORM_SECRET_KEY=TEST_SECRET_KEY
    )
    assert result.returncode == BAD_SETTING and "memory://" in result.stderr, result.stderr
