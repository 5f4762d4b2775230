"""The customer Open APIs (SPEC §2.5) and what every Open API handler shares.

Handlers only translate HTTP: the token, query parameters and the body go in,
``openplatform.services.directory`` decides, the envelope comes out, never to be
cached (``Cache-Control: no-store``, SPEC §9: it is private data). Single
objects carry their version as a strong ``ETag`` so a client can send it back
in ``If-Match`` (RFC 9110 §13.1.1).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from openplatform.core.context import Platform
from openplatform.core.requests import json_object, parse_params
from openplatform.core.resources import Access, authenticate_bearer, bearer_from
from openplatform.errors import OAuthError
from openplatform.models import Customer, Site
from openplatform.services.directory import Directory, Page
from openplatform.storage.cache import CachedStore
from openplatform.storage.sql.directory import DirectoryDb
from openplatform.web.http import endpoint, path_param, platform_of, read_body
from openplatform.web.lean import Call, Headers, LeanEndpoint, caller_ip, encode_success
from openplatform.web.responses import API_NO_STORE, success

MAX_PAGE_SIZE = 100
MAX_PAGE = 1_000_000
MAX_FIELDS = 32


async def bearer_access(platform: Platform, scope: Scope, authorization: str | None, forwarded: list[str]) -> Access:
    query_token: list[str] = []
    query = scope.get("query_string")
    if query:  # callers sending the header mostly have no query to parse
        query_token = [v for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True) if k == "access_token"]
    if len(query_token) > 1:
        raise OAuthError("invalid_request", "The access_token parameter is repeated.")
    raw = bearer_from(authorization, query_token[0] if query_token else None)
    return await authenticate_bearer(platform, raw, caller_ip(scope, forwarded, platform))


async def access_of(request: Request) -> Access:
    headers = request.headers
    return await bearer_access(
        platform_of(request), request.scope, headers.get("authorization"), headers.getlist("x-forwarded-for")
    )


def directory_of(app: Any) -> Directory:
    state = app.state
    directory: Directory | None = getattr(state, "directory", None)
    if directory is None:  # built once per app: it only holds the database layer and the caches
        admin = state.admin  # the management path's queries, on the process's one driver
        store = state.platform.store
        if not isinstance(store, CachedStore):  # runtime.build_platform always wraps the SQL store
            raise TypeError("the Open APIs need the cached store, to drop changed customers from it")
        directory = state.directory = Directory(DirectoryDb(admin.db.database, admin.db.clock), store, admin.db.audit)
    return directory


def query_value(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise OAuthError("invalid_request", f"The {name} parameter is repeated.", field=name)
    return values[0] if values else None


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = query_value(request, name)
    if value is None:
        return default
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise OAuthError("invalid_request", f"{name} must be a whole number.", field=name)
    if not low <= int(value) <= high:
        raise OAuthError("invalid_request", f"{name} must be between {low} and {high}.", field=name)
    return int(value)


def page_of(request: Request) -> Page:
    return Page(int_param(request, "page", 1, 1, MAX_PAGE), int_param(request, "page_size", 20, 1, MAX_PAGE_SIZE))


def _json_fields(raw: bytes) -> dict[str, object]:
    data = json_object(raw)
    if len(data) > MAX_FIELDS:
        raise OAuthError("invalid_request", "Too many fields.")
    for name, value in data.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
            raise OAuthError("invalid_request", f"{name} must be a string or a whole number.", field=name)
    return {name: value for name, value in data.items() if value is not None}  # null: not given


async def body_fields(request: Request) -> dict[str, object]:
    """A JSON object or a form, bounded like every other body; null means "not given"."""
    raw = await read_body(request, platform_of(request).settings.max_body_bytes)
    if not raw.strip():
        return {}
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return _json_fields(raw)
    return dict(parse_params(b"", raw, content_type))


def one(obj: Customer | Site) -> Response:
    return success(obj.public(), headers={"ETag": f'"{obj.version}"'})


# ------------------------------------------------------------------ customers


@endpoint("api.customers.list", API_NO_STORE)
async def list_customers(request: Request) -> Response:
    access = await access_of(request)
    xspe, status, name = (query_value(request, n) for n in ("xspe", "status", "name"))
    return success(await directory_of(request.app).list_customers(access, xspe, status, name, page_of(request)))


@endpoint("api.customers.create", API_NO_STORE)
async def create_customer(request: Request) -> Response:
    access = await access_of(request)
    return one(await directory_of(request.app).create_customer(access, await body_fields(request)))


async def _get_customer(call: Call) -> tuple[bytes, Headers]:
    access = await bearer_access(call.platform, call.scope, call.authorization, call.forwarded)
    customer_id = path_param(call.scope, "customer_id")
    customer = await directory_of(call.scope["app"]).get_customer(access, customer_id)
    return encode_success(customer.public()), [(b"etag", b'"%d"' % customer.version)]


get_customer = LeanEndpoint("api.customer.get", _get_customer, API_NO_STORE)


@endpoint("api.customer.update", API_NO_STORE)
async def update_customer(request: Request) -> Response:
    access = await access_of(request)
    fields, if_match = await body_fields(request), request.headers.get("if-match")
    directory = directory_of(request.app)
    return one(await directory.update_customer(access, request.path_params["customer_id"], fields, if_match))


@endpoint("api.customer.delete", API_NO_STORE)
async def delete_customer(request: Request) -> Response:
    access = await access_of(request)
    return success(await directory_of(request.app).delete_customer(access, request.path_params["customer_id"]))


# Dispatched before Starlette's stack (web.app): GET /api/spe/customer/{customer_id}.
lean_prefix_endpoints = [("GET", "/api/spe/customer/", "customer_id", get_customer)]

routes = [
    Route("/api/spe/customer/{customer_id}", get_customer, methods=["GET"], name="api.customer.get"),
    Route("/api/spe/customers", list_customers, methods=["GET"], name="api.customers.list"),
    Route("/api/spe/customers", create_customer, methods=["POST"], name="api.customers.create"),
    Route("/api/spe/customer/{customer_id}", update_customer, methods=["PUT"], name="api.customer.update"),
    Route("/api/spe/customer/{customer_id}", delete_customer, methods=["DELETE"], name="api.customer.delete"),
]
