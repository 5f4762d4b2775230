"""Property-based fuzz of every operation in the server's own ``/openapi.json`` (SPEC §9, issue 9).

Schemathesis turns the document into Hypothesis strategies, positive (valid by the
schema) and negative (violating it); each case goes through the raw ASGI entry of
the in-process app (``fuzz_support.asgi_call``), on SQLite and on PostgreSQL, in a
seeded world: an SPE, a customer, an app installed SPE-wide, its app token, a user
token, sites, and signed-in people of each role for the management screens. A drawn
part of the cases carries valid credentials (Bearer, ``?access_token=``, Basic, the
secret in the body, a session cookie and its CSRF token) and real identifiers in place
of generated ones, so the checks behind authentication are reached too. A case that
changes or deletes something acts on a victim made for it, not on the shared world.

Every answer: never a 5xx, never an exception out of the app, and every 4xx is the
error envelope, except on HTML pages (the management screens and ``/docs``), which
answer their 4xx as pages. The document the cases come from is checked to be the one
the app serves.

Bounded: ``EXAMPLES`` per operation; CI (``CI=true``) replays one fixed seed, a
developer's run draws a new one.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import pytest_asyncio
import requests
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from openplatform.config import Settings
from openplatform.services.admin_keys import AdminKeys
from openplatform.web.app import create_app
from openplatform.web.docs import DOCUMENT
from tests.conftest import TEST_SECRET_KEY, FakeClock, Harness, World, _truncate
from tests.ui.support import PASSWORD, Person, csrf_in, make_user, person
from tests.web.fuzz_support import (
    FUZZ_SETTINGS,
    Answer,
    asgi_call,
    assert_envelope,
    assert_no_server_error,
    ci_seed,
    examples,
)
from tests.web.open_api_support import bearer, user_token

EXAMPLES = examples(30)
DOC: dict[str, Any] = json.loads(DOCUMENT.read_text(encoding="utf-8"))
# schemathesis changes the dict it is given while it draws cases (the first module-scoped fixture
# passed, the PostgreSQL one then found the served document "different"): it gets its own copy.
SCHEMA = schemathesis.openapi.from_dict(copy.deepcopy(DOC))
OPERATIONS = {op.definition.raw["operationId"]: op for op in (r.ok() for r in SCHEMA.get_all_operations())}
PAGES = {name for name in OPERATIONS if name.startswith("ui.")} | {"docs"}
ROLES = ("admin", "developer", "spe-admin")
GRANT_OF = {"access_token": "authorization_code", "refresh_token": "refresh_code", "credit_token": "client_credential"}
# The fields of the management forms (the templates' inputs); the document does not describe the forms.
FORM_FIELDS = (
    "app_id", "back", "confirmed", "contact", "current_password", "customer_id", "email", "grace_seconds",
    "host_url", "ip_whitelist", "name", "new_password", "new_password_again", "next", "password", "q", "role",
    "scope", "status", "username", "version", "webhook_url", "xspe",
)  # fmt: skip
FORMS = st.dictionaries(
    st.sampled_from(FORM_FIELDS) | st.text(max_size=8),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
    | st.sampled_from(["", "on", "1", "active", "disabled", "customer:read", "https://shop.example.com/"]),
    max_size=6,
)


def body_fields(operation: dict[str, Any]) -> frozenset[str]:
    """The fields the document names for an operation's body."""
    names: set[str] = set()
    for media in operation.get("requestBody", {}).get("content", {}).values():
        schema = media.get("schema", {})
        while "$ref" in schema:
            schema = DOC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        names |= set(schema.get("properties", {}))
    return frozenset(names)


FIELDS = {name: body_fields(op.definition.raw) for name, op in OPERATIONS.items()}
# Which role a management page is for, by its path (a request of that role gets past the role check).
ROLE_OF_PATH = {"/admin": "admin", "/console": "developer", "/portal": "spe-admin"}
STRATEGIES = {
    name: op.as_strategy(GenerationMode.POSITIVE) | op.as_strategy(GenerationMode.NEGATIVE)
    for name, op in OPERATIONS.items()
}


@dataclass
class Seeded:
    """The world the cases run in; people and victims are made when a case first needs them."""

    harness: Harness
    world: World
    app_token: str
    user_token: str
    site_id: str
    own_site_id: str
    people: dict[str, Person] = field(default_factory=dict)
    made: dict[str, str] = field(default_factory=dict)

    async def signed_in(self, role: str) -> Person:
        if role not in self.people:
            xspe = self.world.xspe if role == "spe-admin" else None
            self.people[role] = await person(self.harness, f"{role}@example.com", role, xspe)
        elif self.people[role].csrf == "":  # signed out by a case: the same account signs in again
            someone = self.people[role]
            form = await someone.client.get("/login")
            data = {"csrf_token": csrf_in(form.text), "email": someone.user.email, "password": PASSWORD}
            home = await someone.client.post("/login", data=data, follow_redirects=True)
            assert home.status_code == 200, home.text
            someone.csrf = csrf_in(home.text)
        return self.people[role]

    def signed_out(self, role: str | None) -> None:
        """That person's session has ended (a /logout went through): sign in again next time."""
        if role in self.people:
            self.people[role].csrf = ""

    async def login_form(self) -> tuple[dict[str, str], str]:
        """The sign-in form's cookie and CSRF token, as a browser holds them before signing in."""
        async with self.harness.client_from("127.0.0.1") as browser:
            form = await browser.get("/login")
            return dict(browser.cookies.items()), csrf_in(form.text)

    async def once(self, name: str, make: Any) -> str:
        if name not in self.made:
            self.made[name] = await make()
        return self.made[name]

    async def victim_customer(self) -> str:
        customer = await self.harness.admin.create_customer(self.world.xspe, "Victim")
        return customer.customer_id

    async def victim_site(self) -> str:
        path = f"/api/spe/customer/{self.world.customer_id}/sites"
        made = await self.harness.client.post(
            path, headers=bearer(self.app_token), json={"name": "V", "domain": "v.example"}
        )
        assert made.status_code == 200, made.text
        return made.json()["result"]["site_id"]  # type: ignore[no-any-return]

    async def victim_own_site(self) -> str:
        made = await self.harness.client.post("/api/specp/sites", headers=bearer(self.user_token),
                                              data={"name": "V", "domain": "w.example"})  # fmt: skip
        assert made.status_code == 200, made.text
        return made.json()["result"]["site_id"]  # type: ignore[no-any-return]

    async def developer_app(self) -> str:
        """An app the signed-in developer owns (the console reaches only those)."""
        developer = await self.signed_in("developer")
        made = await developer.post("/console/apps/new", {"name": "Fuzz", "host_url": "https://fuzz.example.com/",
                                                           "scope": ["customer:read"]})  # fmt: skip
        assert made.status_code == 303, made.text
        return made.headers["location"].split("/")[3]

    async def victim_user(self) -> str:
        return (await make_user(self.harness, "victim@example.com", "developer")).user_id

    async def victim_app(self) -> str:
        """An app for an admin API change (suspending or rotating the world's app would stop its tokens)."""
        app, _secret = await self.harness.admin.create_app("Victim", "https://victim.example.com/", ["customer:read"])
        return app.app_id

    async def victim_installation(self) -> str:
        customer_id = await self.victim_customer()
        installed = await self.harness.admin.install(self.world.app_id, customer_id=customer_id)
        return installed.installation_id

    async def admin_key(self, bound: bool) -> str:
        """An admin key of the whole platform, or one bound to the world's SPE (SPEC §10)."""

        async def make() -> str:
            _key, value = await AdminKeys(self.harness.admin.stores, self.harness.admin.keyring).create(
                "fuzz", self.world.xspe if bound else None
            )
            return value

        return await self.once(f"admin key {bound}", make)


def fuzz_settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, secret_key=TEST_SECRET_KEY, rate_limits="off",
                    invalidation_poll_seconds=0.1)  # fmt: skip


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzz_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> str:
    """One database per module run (the cases share one world: setting it up per operation costs more
    than the cases)."""
    if request.param == "sqlite":
        target = tmp_path_factory.mktemp("fuzz") / "openplatform.db"
        shutil.copy(sqlite_template, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("pg_database")
    asyncio.run(_truncate(url))
    return url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seeded(fuzz_database: str) -> AsyncIterator[Seeded]:
    app = create_app(fuzz_settings(fuzz_database))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            harness = Harness(app, client, FakeClock())
            # The cases come from the committed document: it must be what the app serves.
            served = await client.get("/openapi.json")
            assert served.status_code == 200 and served.json() == DOC
            world = await harness.world(spe_wide=True)
            app_token = await harness.app_token(world)
            token = await user_token(harness, world, scope="install_login site:read site:write")
            site = await client.post(f"/api/spe/customer/{world.customer_id}/sites", headers=bearer(app_token),
                                     json={"name": "Shop", "domain": "shop.example"})  # fmt: skip
            own = await client.post("/api/specp/sites", headers=bearer(token),
                                    data={"name": "Mine", "domain": "mine.example"})  # fmt: skip
            assert site.status_code == own.status_code == 200, (site.text, own.text)
            seeded = Seeded(harness, world, app_token, token, site.json()["result"]["site_id"],
                            own.json()["result"]["site_id"])  # fmt: skip
            yield seeded
            for someone in seeded.people.values():
                await someone.client.aclose()


async def real_value(seeded: Seeded, operation_id: str, method: str, name: str) -> str | None:
    """A value of the seeded world for a parameter or field called ``name``, or None.

    A request that changes something (any method but GET) gets a victim of its own."""
    world, harness = seeded.world, seeded.harness
    changes = method != "GET"
    if name == "customer_id":
        return await seeded.victim_customer() if changes else world.customer_id
    if name == "site_id":
        if operation_id.startswith("specp."):
            return await seeded.victim_own_site() if changes else seeded.own_site_id
        return await seeded.victim_site() if changes else seeded.site_id
    if name == "app_id" and operation_id.startswith("ui.console"):
        return await seeded.once("developer app", seeded.developer_app)
    if name == "user_id":
        return await seeded.once("victim user", seeded.victim_user)
    if name == "app_id" and operation_id.startswith("manage.app.") and changes:
        return await seeded.victim_app()
    if name == "installation_id":
        return await seeded.victim_installation()
    if name == "code":
        return await harness.code(world)
    if name == "refresh_token":
        return (await harness.user_tokens(world))["refresh_token"]  # type: ignore[no-any-return]
    if name == "token":
        return await harness.app_token(world)  # introspect and revoke act on a token of their own
    if name == "grant_type":
        return GRANT_OF.get(operation_id)
    fixed = {
        "app_id": world.app_id, "secret": world.secret, "xspe": world.xspe, "redirect_uri": world.redirect_uri,
        "scope": "install_login", "response_type": "code", "state": "st-fuzz", "version": "1",
        "email": "victim@example.com", "password": PASSWORD, "status": "disabled",
    }  # fmt: skip
    return fixed.get(name)


async def substitute(seeded: Seeded, case: Any, data: st.DataObject) -> None:
    """Put real identifiers in place of generated ones: none, some (a coin each) or all of them."""
    how = data.draw(st.sampled_from(["as generated", "some real", "all real"]), label="identifiers")
    if how == "as generated":
        return
    operation_id = case.operation.definition.raw["operationId"]
    containers = [case.path_parameters, case.query]
    if isinstance(case.body, dict):
        if FIELDS[operation_id] and data.draw(st.booleans(), label="only documented fields"):
            case.body = {k: v for k, v in case.body.items() if k in FIELDS[operation_id]}
        containers.append(case.body)
    for container in containers:
        for name in sorted(n for n in container or {} if isinstance(n, str)):
            if how == "some real" and not data.draw(st.booleans(), label=name):
                continue
            value = await real_value(seeded, operation_id, case.method, name)
            if value is not None:
                container[name] = int(value) if name == "version" and case.media_type == "application/json" else value


async def authenticate(seeded: Seeded, case: Any, data: st.DataObject) -> str | None:
    """Valid credentials of the operation's kind, for a drawn part of the cases; the role signed in."""
    operation = case.operation.definition.raw
    schemes = {name for requirement in operation.get("security", []) for name in requirement}
    if "session" in schemes:
        return await sign_in_as(seeded, case, data)
    if "admin_key" in schemes:
        how = data.draw(st.sampled_from(["as generated", "platform key", "bound key"]), label="admin key")
        if how != "as generated":
            key = await seeded.admin_key(bound=how == "bound key")
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}
        return None
    if "bearer" in schemes:
        how = data.draw(st.sampled_from(["as generated", "app bearer", "user bearer", "app query"]), label="token")
        token = seeded.user_token if how == "user bearer" else seeded.app_token
        if how.endswith("bearer"):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        elif how == "app query":
            case.query = {**(case.query or {}), "access_token": token}
    elif "app_basic" in schemes:
        how = data.draw(st.sampled_from(["as generated", "basic", "body"]), label="client auth")
        world = seeded.world
        if how == "basic":
            pair = base64.b64encode(f"{world.app_id}:{world.secret}".encode()).decode()
            case.headers = {**(case.headers or {}), "Authorization": f"Basic {pair}"}
        elif how == "body" and isinstance(case.body, dict):
            case.body.update(app_id=world.app_id, secret=world.secret)
    return None


async def sign_in_as(seeded: Seeded, case: Any, data: st.DataObject) -> str | None:
    """A management request: as nobody or as a signed-in role. A POST carries a form, with the
    right CSRF token where the draw says so (the sign-in form's own token on /login)."""
    fitting = next((r for prefix, r in ROLE_OF_PATH.items() if case.path.startswith(prefix)), "developer")
    role = data.draw(st.sampled_from([fitting, fitting, None, *ROLES]), label="signed in as")
    cookies: dict[str, str] = {}
    csrf = ""
    if role is not None:
        someone = await seeded.signed_in(role)
        cookies, csrf = dict(someone.client.cookies.items()), someone.csrf
    if case.operation.definition.raw["operationId"] == "ui.login.post":
        login_cookies, csrf = await seeded.login_form()
        cookies.update(login_cookies)
    if cookies:
        case.cookies = {**(case.cookies or {}), **cookies}
    if case.method == "POST" and not isinstance(case.body, dict):
        case.body = data.draw(FORMS, label="form")
        case.media_type = "application/x-www-form-urlencoded"
    if isinstance(case.body, dict) and csrf and data.draw(st.sampled_from([True, True, False]), label="csrf"):
        case.body["csrf_token"] = csrf
    return role


def as_request(case: Any) -> tuple[str, bytes, bytes, list[tuple[bytes, bytes]], bytes]:
    """The case as bytes on the wire: method, path, query, headers, body (serialised by requests)."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    wanted = ("method", "url", "headers", "params", "data", "json", "files", "cookies")
    prepared = requests.Request(**{k: v for k, v in kwargs.items() if k in wanted}).prepare()
    url = urlsplit(prepared.url or "/")
    headers = [(b"host", b"testserver")]
    for name, value in prepared.headers.items():
        if name.lower() not in ("connection", "host"):
            headers.append((name.lower().encode("latin-1"), encode(value)))
    return prepared.method or "GET", url.path.encode(), url.query.encode(), headers, encode(prepared.body or b"")


def encode(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def check(operation_id: str, answer: Answer, what: str) -> None:
    assert_no_server_error(answer, what)
    if 400 <= answer.status < 500 and not (operation_id in PAGES and answer.media == "text/html"):
        assert_envelope(answer, what)
    if answer.media == "application/json" and answer.body:
        orjson.loads(answer.body)  # whatever says it is JSON is JSON


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("operation_id", sorted(OPERATIONS))
@settings(FUZZ_SETTINGS, max_examples=EXAMPLES)
@ci_seed
@given(data=st.data())
async def test_no_case_answers_5xx_and_every_api_4xx_is_the_envelope(
    seeded: Seeded, operation_id: str, data: st.DataObject
) -> None:
    case = data.draw(STRATEGIES[operation_id], label="case")
    await substitute(seeded, case, data)
    role = await authenticate(seeded, case, data)
    method, path, query, headers, body = as_request(case)
    what = f"{operation_id}: {method} {path!r}?{query!r} headers={headers!r} body={body[:500]!r}"
    answer = await asgi_call(seeded.harness.app, method, path, query, headers, body)
    check(operation_id, answer, what)
    if operation_id == "ui.logout.post" and answer.status == 303:
        seeded.signed_out(role)


def test_every_documented_operation_is_fuzzed() -> None:
    documented = {op["operationId"] for item in DOC["paths"].values() for op in item.values()
                  if isinstance(op, dict) and "operationId" in op}  # fmt: skip
    assert documented == set(OPERATIONS) and len(documented) >= 50
