"""The OpenAPI 3.1 document: generated from its description, covers every route, and real answers match it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from starlette.routing import Mount, Route
from tools.openapi.build import render

from openplatform.config import Settings
from openplatform.services.admin_keys import AdminKeys
from openplatform.web.app import create_app
from openplatform.web.docs import DOCUMENT
from tests.conftest import TEST_SECRET_KEY, Harness
from tests.web.manage_support import exercise_admin_api
from tests.web.open_api_support import bearer, user_token

JSON = "application/json"
METHODS = ("get", "post", "put", "delete", "patch", "head", "options")
DOC: dict[str, Any] = json.loads(DOCUMENT.read_text(encoding="utf-8"))


# ------------------------------------------------------- a small JSON Schema check


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        _, _, kind, name = node["$ref"].split("/")
        node = DOC["components"][kind][name]
    return node


def same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b  # True is not 1 in a schema


TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def problems(value: Any, schema: dict[str, Any], at: str = "$") -> list[str]:
    """What is wrong with ``value`` under the JSON Schema 2020-12 subset the document uses."""
    schema = resolve(schema)
    if "oneOf" in schema:
        matching = [s for s in schema["oneOf"] if not problems(value, s, at)]
        return [] if len(matching) == 1 else [f"{at}: matches {len(matching)} of oneOf"]
    if "const" in schema and not same(value, schema["const"]):
        return [f"{at}: {value!r} is not {schema['const']!r}"]
    if "enum" in schema and not any(same(value, option) for option in schema["enum"]):
        return [f"{at}: {value!r} not in {schema['enum']}"]
    kinds = schema.get("type")
    if kinds is not None and not any(TYPES[k](value) for k in ([kinds] if isinstance(kinds, str) else kinds)):
        return [f"{at}: {value!r} is not {kinds}"]
    if isinstance(value, dict):
        return object_problems(value, schema, at)
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in problems(item, schema.get("items", {}), f"{at}[{i}]")]
    if isinstance(value, str) and len(value) > schema.get("maxLength", len(value)):
        return [f"{at}: longer than {schema['maxLength']}"]
    if TYPES["integer"](value) and not schema.get("minimum", value) <= value <= schema.get("maximum", value):
        return [f"{at}: {value} out of range"]
    return []


def object_problems(value: dict[str, Any], schema: dict[str, Any], at: str) -> list[str]:
    found = [f"{at}: missing {name}" for name in schema.get("required", []) if name not in value]
    properties = schema.get("properties", {})
    for name, item in value.items():
        if name in properties:
            found += problems(item, properties[name], f"{at}.{name}")
        elif schema.get("additionalProperties") is False:
            found.append(f"{at}: unexpected {name}")
    return found


def documented(method: str, url: str) -> tuple[str, dict[str, Any]]:
    """The path template and operation that answer ``method url``."""
    path = urlsplit(url).path
    for template, item in DOC["paths"].items():
        pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"{method} {path} is not documented")


def check_response(response: httpx.Response) -> str:
    if response.status_code == 405:  # a method the path does not offer: the path exists, the method not
        template, _ = documented("GET", str(response.request.url))
        assert response.request.method.lower() not in DOC["paths"][template]
        assert not problems(response.json(), resolve(DOC["components"]["responses"]["E405"])["content"][JSON]["schema"])
        return "method_not_allowed"
    template, operation = documented(response.request.method, str(response.request.url))
    status = str(response.status_code)
    assert status in operation["responses"], f"{response.request.method} {template}: {status} not documented"
    declared = resolve(operation["responses"][status])
    media = response.headers.get("content-type", "").split(";")[0]
    if not declared.get("content"):
        assert not response.content or status.startswith("3"), template
        return operation["operationId"]
    assert media in declared["content"] or "*/*" in declared["content"], f"{template} {status}: {media}"
    if media == "application/json":
        errors = problems(response.json(), declared["content"][media]["schema"])
        assert not errors, f"{response.request.method} {template} {status}: {errors}"
    return operation["operationId"]


# ---------------------------------------------------------------------- tests


def test_committed_document_is_the_generated_one() -> None:
    assert DOCUMENT.read_text(encoding="utf-8") == render(), "run: .venv/bin/python -m tools.openapi"


def test_document_has_the_openapi_31_shape() -> None:
    assert DOC["openapi"] == "3.1.0"
    assert DOC["info"]["title"] and DOC["info"]["version"]
    assert set(DOC["components"]) >= {"schemas", "parameters", "responses", "securitySchemes"}
    ids = [op["operationId"] for item in DOC["paths"].values() for m, op in item.items() if m in METHODS]
    assert len(ids) == len(set(ids))
    for path, item in DOC["paths"].items():
        assert path.startswith("/")
        for method, operation in ((m, o) for m, o in item.items() if m in METHODS):
            assert operation["responses"], (method, path)
            declared = {resolve(p)["name"] for p in item.get("parameters", []) + operation.get("parameters", [])}
            assert set(re.findall(r"{([^}]+)}", path)) <= declared, (method, path)
    refs = re.findall(r'"\$ref": "([^"]+)"', json.dumps(DOC))
    for target in refs:  # every reference resolves
        resolve({"$ref": target})


def test_every_route_is_documented_with_its_methods(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/x.db", secret_key=TEST_SECRET_KEY))
    routed: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Mount):
            routed.add((route.path + "/{path}", "get"))
            continue
        assert isinstance(route, Route)
        path = re.sub(r"{([^}:]+):[^}]+}", r"{\1}", route.path)
        routed |= {(path, m.lower()) for m in route.methods or () if m != "HEAD"}  # HEAD comes with GET
    in_document = {(p, m) for p, item in DOC["paths"].items() for m in item if m in METHODS}
    assert routed - in_document == set(), "routes missing from the document"
    assert in_document - routed == set(), "documented operations without a route"


async def test_real_answers_match_the_documented_schemas(harness: Harness) -> None:
    seen: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        seen.append(response)

    harness.client.event_hooks["response"].append(keep)
    await run_every_api_operation(harness)
    exercised = {check_response(r) for r in seen}
    api_operations = {
        op["operationId"] for item in DOC["paths"].values() for m, op in item.items()
        if m in METHODS and not op["operationId"].startswith("ui.")
    }  # fmt: skip
    assert api_operations - exercised == set()


async def run_every_api_operation(harness: Harness) -> None:
    """At least one answer of every API operation, successes and the usual errors."""
    c = harness.client
    world = await harness.world(spe_wide=True)
    assert (await harness.connect(world, app_id="nope")).status_code == 401
    code = await harness.code(world, scope="install_login site:read site:write")
    tokens = (await harness.exchange(world, code)).json()["result"]
    refreshed = (await harness.refresh(world, tokens["refresh_token"])).json()["result"]
    user = refreshed["access_token"]
    app_token = await harness.app_token(world)
    creds = {"app_id": world.app_id, "secret": world.secret}
    assert (
        await c.post("/oauth/credit/token", data={**creds, "secret": "x", "grant_type": "client_credential"})
    ).status_code == 401
    await c.post("/oauth/introspect", data={**creds, "token": user})
    await c.post("/oauth/introspect", json={**creds, "token": "unknown"})
    for path in (
        "/.well-known/oauth-authorization-server",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/docs",
    ):
        assert (await c.get(path)).status_code == 200, path
    _key, admin_key = await AdminKeys(harness.admin.stores, harness.admin.keyring).create("the document's test")
    assert (await c.get("/metrics", headers={"Authorization": f"Bearer {admin_key}"})).status_code == 200
    assert (await c.get("/metrics")).status_code == 401

    h = bearer(app_token)
    assert (await c.get("/api/spe/customers")).status_code == 401
    assert (await c.get("/api/spe/customers", headers=h, params={"status": "gone"})).status_code == 400
    assert (await c.get("/api/spe/customers", headers=bearer(user))).status_code == 403
    await c.get("/api/spe/customers", headers=h)
    created = (await c.post("/api/spe/customers", headers=h, json={"name": "Doc Co"})).json()["result"]
    one = f"/api/spe/customer/{created['customer_id']}"
    await c.get(one, headers=h)
    await c.put(one, headers=h, json={"name": "Doc Co 2", "version": 1})
    assert (await c.put(one, headers=h, json={"name": "late", "version": 1})).status_code == 409
    assert (await c.patch(one, headers=h, json={})).status_code == 405

    sites = f"/api/spe/customer/{created['customer_id']}/sites"
    assert (await c.post(sites, headers=h, json={"name": "x", "domain": "http://x"})).status_code == 400
    site = (await c.post(sites, headers=h, json={"name": "S", "domain": "s.example"})).json()["result"]
    await c.get(sites, headers=h)
    for method, kwargs in (("GET", {}), ("PUT", {"json": {"status": "paused"}}), ("DELETE", {})):
        await c.request(method, f"{sites}/{site['site_id']}", headers=h, **kwargs)
    await c.delete(one, headers=h)
    assert (await c.get(one, headers=h)).status_code == 404

    u = bearer(user)
    assert (await c.get("/api/specp/sites", headers=h)).status_code == 403
    mine = (await c.post("/api/specp/sites", headers=u, data={"name": "M", "domain": "m.example"})).json()["result"]
    await c.get("/api/specp/sites", headers=u)
    for method, kwargs in (("GET", {}), ("PUT", {"json": {"name": "M2"}}), ("DELETE", {})):
        await c.request(method, f"/api/specp/sites/{mine['site_id']}", headers=u, **kwargs)
    await c.post("/oauth/revoke", data={**creds, "token": refreshed["refresh_token"]})
    replayed = await harness.code(world)
    await harness.exchange(world, replayed)
    assert (await harness.exchange(world, replayed)).status_code == 400
    second = await user_token(harness, world)
    assert (await c.get(f"/api/spe/customer/{world.customer_id}", headers=bearer(second))).status_code == 200
    await exercise_admin_api(harness)


async def test_connect_redirect_is_documented(harness: Harness) -> None:
    world = await harness.world()
    response = await harness.connect(world)
    assert check_response(response) == "connect"
    assert parse_qs(urlsplit(response.headers["location"]).query)["state"] == ["st-123"]


async def test_reference_page_is_self_contained(harness: Harness) -> None:
    page = await harness.client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    text = page.text
    assert "<script" not in text and not re.search(r'(src|href)="(https?:)?//', text)
    for path, item in DOC["paths"].items():
        for method, operation in ((m, o) for m, o in item.items() if m in METHODS):
            assert f'id="{operation["operationId"]}"' in text, (method, path)
    assert "40901" in text and "conflict" in text
    stylesheet = await harness.client.get("/static/docs.css")
    assert stylesheet.status_code == 200 and stylesheet.headers["content-type"].startswith("text/css")
    served = await harness.client.get("/openapi.json")
    assert served.json() == DOC
