"""The customer Open APIs (SPEC §2.5) and what every Open API handler shares.

Handlers only translate HTTP: the token, query parameters and the body go in,
``openplatform.services.directory`` decides, the envelope comes out, never to be
cached (``Cache-Control: no-store``, SPEC §9: it is private data). Single
objects carry their version as a strong ``ETag`` so a client can send it back
in ``If-Match`` (RFC 9110 §13.1.1).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qsl

from openplatform.core.requests import json_object, parse_params
from openplatform.core.resources import Access, authenticate_bearer, bearer_from
from openplatform.errors import OAuthError
from openplatform.models import Customer, Site
from openplatform.services.directory import Directory, Page
from openplatform.storage.cache import BoundedCache, CachedStore
from openplatform.web.kernel import JSON_TYPE, Answer, ApiRoute, Call, ok
from openplatform.web.responses import API_NO_STORE, encode_success

MAX_PAGE_SIZE = 100
MAX_PAGE = 1_000_000
MAX_FIELDS = 32


def access_of(call: Call) -> Coroutine[Any, Any, Access]:
    """The bearer token of the call (header, or ``access_token`` in the query), checked (SPEC §2.5, §3).

    A plain function returning the check's coroutine, for ``await access_of(call)``: one coroutine
    fewer per call than an ``async def`` awaiting it. A malformed or repeated token raises here, when
    ``access_of(call)`` is called (every caller awaits it at once), the rest of the check at the await.
    """
    query_token: list[str] = []
    query = call.query_string
    if query:  # callers sending the header mostly have no query to parse
        query_token = [v for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True) if k == "access_token"]
    if len(query_token) > 1:
        raise OAuthError("invalid_request", "The access_token parameter is repeated.")
    raw = bearer_from(call.authorization, query_token[0] if query_token else None)
    return authenticate_bearer(call.platform, raw, call.client_ip)


def directory_of(app: Any) -> Directory:
    """The app's directory service (``OpenPlatformApp.directory``), built on first use.

    Kept on the app itself, not in ``app.state``: Starlette's ``State`` answers through a
    Python ``__getattr__``, a call on every token-checked GET.
    """
    directory: Directory | None = app.directory
    if directory is None:  # built once per app: it only holds the database layer and the caches
        state = app.state
        admin = state.admin  # the management path's queries, on the process's one driver
        store = state.platform.store
        if not isinstance(store, CachedStore):  # runtime.build_platform wraps every backend's store
            raise TypeError("the Open APIs need the cached store, to drop changed customers from it")
        directory = app.directory = Directory(admin.stores.directory, store, admin.db.audit)
    return directory


def int_param(call: Call, name: str, default: int, low: int, high: int) -> int:
    """Query parameter ``name`` as an int from ``low`` to ``high`` (``default`` if absent).

    Raises OAuthError invalid_request (40001) naming the field: "must be a whole number" for
    anything but ASCII digits, "must be between low and high" for digits out of range, however
    many (they are not converted past 9, so a huge one costs nothing).
    """
    value = call.query(name)
    if value is None:
        return default
    if not value.isascii() or not value.isdigit():
        raise OAuthError("invalid_request", f"{name} must be a whole number.", field=name)
    digits = value.lstrip("0") or "0"
    if len(digits) > 9 or not low <= int(digits) <= high:
        raise OAuthError("invalid_request", f"{name} must be between {low} and {high}.", field=name)
    return int(digits)


def page_of(call: Call) -> Page:
    return Page(int_param(call, "page", 1, 1, MAX_PAGE), int_param(call, "page_size", 20, 1, MAX_PAGE_SIZE))


def _json_fields(raw: bytes) -> dict[str, object]:
    data = json_object(raw)
    if len(data) > MAX_FIELDS:
        raise OAuthError("invalid_request", "Too many fields.")
    for name, value in data.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
            raise OAuthError("invalid_request", f"{name} must be a string or a whole number.", field=name)
    return {name: value for name, value in data.items() if value is not None}  # null: not given


async def body_fields(call: Call) -> dict[str, object]:
    """A JSON object or a form, bounded like every other body; null means "not given"."""
    raw = await call.body()
    if not raw.strip():
        return {}
    media = call.content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return _json_fields(raw)
    return dict(parse_params(b"", raw, call.content_type))


def one(obj: Customer | Site) -> Answer:
    """One object in the envelope, its version as a strong ETag (RFC 9110 §8.8.3)."""
    return 200, encode_success(obj.public()), [JSON_TYPE, (b"etag", b'"%d"' % obj.version)]


# The answers of the customers answered last, by identity. The token-checked GET answers the
# Customer object the store's cache holds (storage/cache.py) until that customer changes, and a
# change is a new object (models are frozen): its public dict, the envelope, orjson and the ETag
# measured 11,000 instructions a GET (callgrind, bench/inprocess.py open-api). Each entry holds its
# object, so no id is reused while the entry lives; beyond ANSWER_MEMO_SIZE the oldest entry goes.
# Only that GET uses it: the other answers are of objects just read or written, never answered twice.
ANSWER_MEMO_SIZE = 4096
_ANSWERED = BoundedCache(ANSWER_MEMO_SIZE)  # id(customer) -> (customer, its answer)


def one_cached(customer: Customer) -> Answer:
    """``one`` for a customer from the store's cache: the answer made for that same object, if any."""
    found: tuple[Customer, Answer] | None = _ANSWERED.get(id(customer))
    if found is not None and found[0] is customer:
        return found[1]
    answer = one(customer)
    _ANSWERED.put(id(customer), (customer, answer))
    return answer


# ------------------------------------------------------------------ customers


async def list_customers(call: Call) -> Answer:
    access = await access_of(call)
    xspe, status, name = (call.query(n) for n in ("xspe", "status", "name"))
    return ok(await directory_of(call.app).list_customers(access, xspe, status, name, page_of(call)))


async def create_customer(call: Call) -> Answer:
    access = await access_of(call)
    return one(await directory_of(call.app).create_customer(access, await body_fields(call)))


async def get_customer(call: Call) -> Answer:
    access = await access_of(call)
    return one_cached(await directory_of(call.app).get_customer(access, call.path_params["customer_id"]))


async def update_customer(call: Call) -> Answer:
    access = await access_of(call)
    fields, if_match = await body_fields(call), call.header(b"if-match")
    directory = directory_of(call.app)
    return one(await directory.update_customer(access, call.path_params["customer_id"], fields, if_match))


async def delete_customer(call: Call) -> Answer:
    access = await access_of(call)
    return ok(await directory_of(call.app).delete_customer(access, call.path_params["customer_id"]))


CUSTOMERS = "/api/spe/customers"
CUSTOMER = "/api/spe/customer/{customer_id}"
routes = [
    ApiRoute("GET", CUSTOMER, get_customer, "api.customer.get", API_NO_STORE),  # the hot GET of the benchmarks
    ApiRoute("GET", CUSTOMERS, list_customers, "api.customers.list", API_NO_STORE),
    ApiRoute("POST", CUSTOMERS, create_customer, "api.customers.create", API_NO_STORE),
    ApiRoute("PUT", CUSTOMER, update_customer, "api.customer.update", API_NO_STORE),
    ApiRoute("DELETE", CUSTOMER, delete_customer, "api.customer.delete", API_NO_STORE),
]
