"""The Python SDK as its own package (SPEC §11): ``openplatform-client`` from clients/python installs
into a fresh virtualenv with httpx and nothing of the server, and works there against a live
``openplatform serve``; the server uses the very same code (one implementation, aliases kept)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import openplatform.client
import openplatform.core.signing
import openplatform_client
import openplatform_client.signing
from openplatform.core.signing import sign_launch, sign_webhook
from openplatform.models import Installation
from openplatform.services import webhooks
from tests.client.conftest import USER_SCOPE, Partner

REPO = Path(__file__).resolve().parents[2]
SDK = REPO / "clients" / "python"
SERVER_ONLY = {"starlette", "sqlalchemy", "asyncpg", "uvicorn", "alembic", "aiosqlite", "redis", "pydantic",
               "pydantic-settings", "typer", "jinja2", "argon2-cffi", "orjson", "openplatform"}  # fmt: skip


def run(*args: str, cwd: Path, stdin: str = "") -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(args, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def sdk_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m venv`` + ``pip install ./clients/python``, nothing else: the venv's python.

    pip builds a local folder in place, so it builds a copy: the test writes nothing into the repository.
    """
    where = tmp_path_factory.mktemp("sdk-venv")
    source = where / "openplatform-client"
    shutil.copytree(SDK, source, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"))
    run(sys.executable, "-m", "venv", str(where / "venv"), cwd=where)
    python = where / "venv" / "bin" / "python"
    run(str(python), "-m", "pip", "install", "-q", str(source), cwd=where)
    return python


def test_the_package_installs_with_httpx_and_nothing_of_the_server(sdk_python: Path) -> None:
    listed = json.loads(run(str(sdk_python), "-m", "pip", "list", "--format=json", cwd=sdk_python.parent))
    installed = {p["name"].lower().replace("_", "-"): p["version"] for p in listed}
    assert installed["openplatform-client"] == openplatform_client.__version__
    assert "httpx" in installed
    assert not SERVER_ONLY & set(installed), sorted(SERVER_ONLY & set(installed))
    probe = (
        "import json, sys, pathlib, openplatform_client\n"
        "here = pathlib.Path(openplatform_client.__file__).parent\n"
        "print(json.dumps({'file': str(here), 'typed': (here / 'py.typed').exists(),\n"
        "  'version': openplatform_client.__version__, 'top': sorted({m.split('.')[0] for m in sys.modules})}))"
    )
    found = json.loads(run(str(sdk_python), "-c", probe, cwd=sdk_python.parent))
    # Imported from the venv's site-packages, not from the repository.
    assert found["file"].startswith(str(sdk_python.parents[1])) and "site-packages" in found["file"]
    assert found["typed"] and found["version"] == openplatform_client.__version__
    assert "openplatform" not in found["top"] and "httpx" in found["top"]


# Runs in the fresh venv: the documented flow, both clients, and a launch signed by the server's code.
JOURNEY = """
import asyncio, json, sys
import httpx
from urllib.parse import parse_qs, urlsplit
from openplatform_client import AppClient, AsyncAppClient, InvalidSignature, NotFound, OpenPlatformError

given = json.load(sys.stdin)
out = {}
with AppClient(given["app_id"], given["secret"], given["base_url"]) as client:
    out["customers"] = sorted(c.customer_id for c in client.customers.iter(xspe=given["xspe"]))
    url, state = client.connect_url(xspe=given["xspe"], customer_id=given["customer_id"],
                                    redirect_uri=given["redirect_uri"], scope=given["scope"])
    query = parse_qs(urlsplit(httpx.get(url).headers["location"]).query)
    token = client.exchange_code(query["code"][0], state=query["state"][0], expected_state=state)
    me = client.as_customer(token.customer_id)
    out["me"] = me.get().customer_id
    out["site"] = me.sites.create("Shop", "shop.venv.example").domain
    try:
        client.customers.get("cus_0000000000000000")
    except NotFound as exc:
        out["not_found"] = [exc.code, exc.error, isinstance(exc, OpenPlatformError)]
    out["launch"] = client.verify_launch(given["launch"]).customer_id
    try:
        client.verify_launch({**given["launch"], "customer_id": "cus_other"})
    except InvalidSignature as exc:
        out["tampered"] = exc.field
    event = client.verify_webhook(given["webhook_body"].encode(), given["webhook_headers"])
    out["webhook"] = [event.type, event.customer_id]

async def main():
    async with AsyncAppClient(given["app_id"], given["secret"], given["base_url"]) as client:
        return (await client.customers.list(xspe=given["xspe"])).total
out["async_total"] = asyncio.run(main())
print(json.dumps(out))
"""


@pytest.mark.sql  # a live `openplatform serve` on the database this process seeds: not memory://
def test_the_installed_sdk_works_against_a_live_server(sdk_python: Path, partner: Partner) -> None:
    body, headers = server_webhook(partner)
    given: dict[str, Any] = {
        "app_id": partner.app_id, "secret": partner.secret, "base_url": partner.base_url, "xspe": partner.xspe,
        "customer_id": partner.customer_id, "redirect_uri": partner.redirect_uri, "scope": USER_SCOPE,
        "launch": sign_launch(partner.secret, partner.app_id, partner.xspe, partner.customer_id),
        "webhook_body": body.decode(), "webhook_headers": headers,
    }  # fmt: skip
    out = json.loads(run(str(sdk_python), "-c", JOURNEY, cwd=sdk_python.parent, stdin=json.dumps(given)))
    assert out == {
        "customers": sorted(partner.customer_ids), "me": partner.customer_id, "site": "shop.venv.example",
        "not_found": [40401, "not_found", True], "launch": partner.customer_id, "tampered": "signature",
        "webhook": [2, partner.customer_id], "async_total": len(partner.customer_ids),
    }  # fmt: skip


def server_webhook(partner: Partner) -> tuple[bytes, dict[str, str]]:
    """An uninstall notification built and signed as the server's webhook sender does."""
    now = time.time()
    installation = Installation("ins_1", partner.app_id, partner.xspe, partner.customer_id, now - 60)
    payload = webhooks.notification(webhooks.UNINSTALL, installation, now)
    body = webhooks.notification_body(payload, partner.app_id, partner.secret, now)
    return body, sign_webhook(partner.secret, body, int(now))


def test_one_implementation_with_the_server() -> None:
    """The server signs with the SDK's code, and ``openplatform.client`` is the SDK itself."""
    assert openplatform.core.signing.sign_launch is openplatform_client.signing.sign_launch
    assert openplatform.core.signing.sign_webhook is openplatform_client.signing.sign_webhook
    assert openplatform.core.signing.legacy_notification_signature is (
        openplatform_client.signing.legacy_notification_signature
    )
    assert openplatform.client.AppClient is openplatform_client.AppClient
    assert set(openplatform.client.__all__) == set(openplatform_client.__all__)
    assert Path(openplatform_client.__file__).resolve().parent == SDK / "src" / "openplatform_client"
    assert (REPO / "src" / "openplatform_client").is_symlink()


def test_the_guide_lists_every_error_code_with_the_class_each_sdk_raises() -> None:
    """docs/sdk.md's error table: one row per code of the server's table, naming the SDK's class."""
    from openplatform.errors import ERRORS
    from openplatform_client.errors import BY_ERROR

    guide = (REPO / "docs" / "sdk.md").read_text()
    rows = {int(m[0]): m[1:] for m in re.findall(r"^\| (\d{5}) \| (\w+) \| `(\w+)` \| `(\w+)` \|", guide, re.MULTILINE)}
    assert set(rows) == {kind.code for kind in ERRORS.values()}
    for kind in ERRORS.values():
        error, python_class, typescript_class = rows[kind.code]
        assert error == kind.error
        assert python_class == typescript_class == BY_ERROR[kind.error].__name__
