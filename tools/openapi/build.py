"""Assemble the OpenAPI 3.1 document and write src/openplatform/web/openapi.json.

The API operations are described by hand (operations.py, open_apis.py); the
management UI's HTML pages are listed from its routes, with the summaries of
ui.py. ``python -m tools.openapi`` rewrites the JSON; the
test suite fails when the committed file differs from what this produces.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute, Mount, Route

from openplatform import __version__
from openplatform.errors import ERRORS
from tools.openapi import manage
from tools.openapi.components import HEADERS, PARAMETERS, RESPONSES, SCHEMAS, SECURITY_SCHEMES, Schema
from tools.openapi.open_apis import CUSTOMER_PATHS, SITE_PATHS
from tools.openapi.operations import OAUTH, OPERATIONS, TOKEN_REQUESTS
from tools.openapi.ui import ui_summary

TARGET = Path(__file__).resolve().parents[2] / "src" / "openplatform" / "web" / "openapi.json"

TAGS = [
    ("OAuth", "The documented token endpoints (SPEC §2.1–2.4) and RFC 7662 / 7009 / 8414."),
    ("Open APIs: customers", "Customers of an SPE, for apps (SPEC §2.5)."),
    ("Open APIs: sites", "A customer's sites, the customer named in the path."),
    ("Open APIs: customer-side sites", "The same sites, the customer taken from a user token (/api/specp)."),
    ("Admin API", "For operators' portals and scripts (SPEC §10): everything the CLI does, with an admin key."),
    ("Operations", "Health, readiness and metrics."),
    ("Documentation", "This document and its reference page."),
    ("Management UI", "Server-rendered HTML pages for people (SPEC §4): session cookie, CSRF-checked forms."),
]

INTRO = """\
Every JSON answer uses the envelope `{"code": 0, "msg": "success", "result": ...}`. A failure is
`{"code": N, "msg": "...", "error": "...", "result": null}`, plus `"field"` for validation errors; the first
three digits of `code` are the HTTP status. With `OPENPLATFORM_ERROR_STATUS=always-200` every answer has HTTP
status 200 and the same body. An unknown path answers 404 / 40401 and a method a path does not offer
405 / 40501, request headers larger than 16 KiB in total 431 / 43101, all with the error envelope.
Under an https issuer every answer carries `Strict-Transport-Security: max-age=63072000; includeSubDomains`.

Parameters come as a form body, a JSON body or the query string. Open APIs take the access token as
`Authorization: Bearer` or `?access_token=`. Scopes: `install_login` (every user token), `customer:read`,
`customer:write`, `site:read`, `site:write` (registered per app, requested at /oauth/connect).

| code | error | when |
|---|---|---|
"""


def description() -> str:
    return INTRO + "\n".join(f"| {k.code} | {k.error} | {k.message} |" for k in ERRORS.values()) + "\n"


def _path_parameters(path: str) -> list[Schema]:
    names = re.findall(r"{([^}:]+)(?::[^}]*)?}", path)
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]


def _html(description: str) -> Schema:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _ui_operation(route: Route, method: str) -> Schema:
    summary = ui_summary(route.path, method)
    responses: dict[str, Schema] = {
        "200": _html("The page (or the form again, with its errors)."),
        "303": {"description": "Redirect (after a successful form, or to /login without a session)."},
        "403": _html("The role may not see this page, or the form's CSRF token or Origin was refused."),
    }
    slug = re.sub(r"[^a-z0-9]+", "_", route.path.lower()).strip("_") or "root"
    return {
        "operationId": f"ui.{slug}.{method}", "tags": ["Management UI"], "summary": summary,
        "security": [{"session": []}, {}], "responses": responses,
    }  # fmt: skip


def ui_paths(routes: list[BaseRoute]) -> dict[str, Schema]:
    paths: dict[str, Schema] = {}
    for route in routes:
        if isinstance(route, Mount):
            static = {"200": {"description": "The file.", "content": {"*/*": {"schema": {"type": "string"}}}}}
            static["404"] = {"description": "No such file."}
            paths[route.path + "/{path}"] = {
                "get": {"operationId": f"ui.{route.name}", "tags": ["Management UI"], "summary": "Static files "
                        "(stylesheets, the pages' scripts)", "responses": static},
                "parameters": _path_parameters("{path}"),
            }  # fmt: skip
        elif isinstance(route, Route) and route.name == "favicon":
            icon = {"200": {"description": "The icon.", "content": {"image/x-icon": {"schema": {"type": "string"}}}}}
            paths[route.path] = {
                "get": {"operationId": "ui.favicon", "tags": ["Management UI"],
                        "summary": "The icon browsers ask for (the pages link /static/favicon.svg)", "responses": icon},
            }  # fmt: skip
        elif isinstance(route, Route):
            item: Schema = {
                m.lower(): _ui_operation(route, m.lower()) for m in sorted(route.methods or ()) if m != "HEAD"
            }
            if "{" in route.path:
                item["parameters"] = _path_parameters(route.path)
            paths[route.path] = item
    return paths


def document() -> dict[str, Any]:
    from openplatform.web import ui

    return {
        "openapi": "3.1.0",
        "info": {"title": "openplatform", "version": __version__, "description": description(),
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "tags": [{"name": name, "description": text} for name, text in TAGS],
        "paths": {**OAUTH, **CUSTOMER_PATHS, **SITE_PATHS, **manage.PATHS, **OPERATIONS, **ui_paths(ui.routes)},
        "components": {
            "schemas": {**SCHEMAS, **TOKEN_REQUESTS, **manage.SCHEMAS},
            "parameters": {**PARAMETERS, **manage.PARAMETERS},
            "responses": RESPONSES,
            "headers": HEADERS,
            "securitySchemes": SECURITY_SCHEMES,
        },
    }  # fmt: skip


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET}")
