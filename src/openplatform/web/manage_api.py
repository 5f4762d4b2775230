"""The admin API under ``/api/manage/`` (SPEC §10): operators' portals and scripts.

Every request carries an admin key (``openplatform admin-key create``) as
``Authorization: Bearer <key>``; without a live one the answer is 401 / 40102
with ``WWW-Authenticate: Bearer``. Handlers only translate HTTP: the key, the
query and the JSON body go in, ``openplatform.services.manage`` decides (with
the same services as the CLI and the screens), the envelope comes out, never to
be cached. Each key has a rate limit (``admin`` in ``OPENPLATFORM_RATE_LIMITS``,
42901 with ``Retry-After``); a key made with ``--metrics-only`` is answered 403.
Uses are audited (``admin_key.used``, with the key id, the operation and the
answer's code; never the key): every write, and a read at most once a minute per
key and operation in each process. Every change a key makes is audited by the
service that makes it with ``key_id`` and ``via: admin_api``
(``records.audit_actor``, which every backend's ``ManagementStore.audit`` merges in).

The paths, bodies and the reach of a key bound to an SPE are in docs/api.md
("Admin API") and ``/openapi.json``.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from functools import wraps

from openplatform.core.requests import json_object
from openplatform.core.text import CONTROL_CHARS
from openplatform.errors import OAuthError
from openplatform.models import ACTIVE, SUSPENDED, Customer
from openplatform.records import AdminKey, AuditFilter, audit_actor
from openplatform.services.accounts import build_accounts
from openplatform.services.admin_keys import AdminKeys
from openplatform.services.directory import Page
from openplatform.services.directory_input import Fields, invalid
from openplatform.services.manage import (
    Manage,
    app_json,
    as_oauth_error,
    fields_of,
    installation_json,
    user_json,
)
from openplatform.services.validation import NotFound, ValidationError
from openplatform.web.kernel import JSON_TYPE, Answer, ApiRoute, Call, Handler, ok
from openplatform.web.open_api import MAX_PAGE, MAX_PAGE_SIZE, int_param
from openplatform.web.responses import API_NO_STORE, encode_success

PREFIX = "/api/manage"
MAX_FIELDS = 32
MAX_STRING = 4096  # the longest field (a URL) is 2048, a password 1024
MAX_FILTER = 200
MAX_TIME = 10**11  # UNIX seconds: year 5138
CHALLENGE = 'Bearer realm="openplatform"'
READS = ("GET", "HEAD")  # audited at most once a minute per key and operation (services.admin_keys)

ManageHandler = Callable[[Call, Manage], Awaitable[Answer]]
OPERATION_NAMES: dict[Handler, str] = {}  # endpoint → its name (metrics, routes, the OpenAPI operationId)


# ------------------------------------------------------------------ the door


async def admitted(call: Call) -> tuple[AdminKeys, AdminKey]:
    """The request's live admin key, charged one request of its rate limit; the door of the admin
    API and of ``/metrics`` (``web.health``), each checking the key's reach after it.

    Raises 401 / 40102 without a live key (RFC 6750 §3; ``WWW-Authenticate: Bearer``), 429 /
    42901 with ``Retry-After`` when the key's ``admin`` budget (``OPENPLATFORM_RATE_LIMITS``) is
    spent: checked before any database work but the key's own lookup, so a flood costs one
    indexed read a request and writes nothing.
    """
    admin = call.app.state.admin
    keys = AdminKeys(admin.stores, admin.keyring)
    # The header's first line as sent ("" included), not ``Call.authorization`` (the first non-empty
    # one): an empty header was sent, so its 401 says error="invalid_token".
    authorization = call.header(b"authorization")
    key = await keys.authenticate(authorization)
    if key is None:
        sent = authorization is not None
        raise OAuthError(
            "invalid_token",
            "A live admin key is required: Authorization: Bearer <key> (openplatform admin-key create).",
            headers={"WWW-Authenticate": CHALLENGE + (', error="invalid_token"' if sent else "")},
        )
    await keys.charge(call.platform.limiter, key)
    return keys, key


def managing(call: Call, key: AdminKey) -> Manage:
    """The operations of ``key``; 403 / 40301 for a key made with ``--metrics-only``."""
    if key.metrics_only:
        raise OAuthError("access_denied", "This admin key is for /metrics only (admin-key create --metrics-only).")
    admin, platform = call.app.state.admin, call.platform
    accounts = build_accounts(admin.stores, admin.keyring, platform.limiter, platform.settings.session_idle_seconds)
    return Manage(admin, accounts, key)


def operation(name: str) -> Callable[[ManageHandler], Handler]:
    """An admin API endpoint: the key checked and charged, its use audited (``AdminKeys.record_use``:
    every write, a read at most once a minute per key and operation), the services' refusals as
    envelopes."""

    def decorate(handler: ManageHandler) -> Handler:
        @wraps(handler)
        async def wrapped(call: Call) -> Answer:
            keys, key = await admitted(call)
            acting = audit_actor.set({"key_id": key.key_id, "via": "admin_api"})
            code = 0
            try:
                return await handler(call, managing(call, key))
            except (ValidationError, NotFound) as exc:
                code = as_oauth_error(exc).code
                raise as_oauth_error(exc) from exc
            except OAuthError as exc:
                code = exc.code
                raise
            finally:
                audit_actor.reset(acting)
                # A metrics-only key changes nothing here, whatever the method: audited as a read.
                write = call.scope["method"] not in READS and not key.metrics_only
                await keys.record_use(key, name, code, write)

        OPERATION_NAMES[wrapped] = name
        return wrapped

    return decorate


# --------------------------------------------------------------- reading input


def _checked(value: object, name: str) -> object:
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise invalid(name, f"must be at most {MAX_STRING} characters")
        if CONTROL_CHARS.search(value):
            raise invalid(name, "must not contain control characters")
    elif isinstance(value, list):
        for item in value:
            if not isinstance(item, str):
                raise invalid(name, "must be a list of strings")
            _checked(item, name)
    elif value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise invalid(name, "must be a string, a whole number or a list of strings")
    return value


async def json_body(call: Call) -> Fields:
    """The JSON object body, bounded like every other body; null means "not given"."""
    raw = await call.body()
    if not raw.strip():
        return {}
    media = (call.header(b"content-type") or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise invalid("Content-Type", "must be application/json")
    data = json_object(raw)
    if len(data) > MAX_FIELDS:
        raise OAuthError("invalid_request", f"The body has more than {MAX_FIELDS} fields.")
    return fields_of({name: _checked(value, name) for name, value in data.items()})


def query_text(call: Call, name: str) -> str | None:
    value = call.query(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_FILTER or CONTROL_CHARS.search(value):
        raise invalid(name, f"must be at most {MAX_FILTER} characters without control characters")
    return value


def query_time(call: Call, name: str) -> float | None:
    value = query_text(call, name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not value.isascii() or not math.isfinite(number) or not 0 <= number <= MAX_TIME:
        raise invalid(name, "must be a UNIX time in seconds")
    return number


def page_of(call: Call) -> Page:
    return Page(int_param(call, "page", 1, 1, MAX_PAGE), int_param(call, "page_size", 20, 1, MAX_PAGE_SIZE))


def one_customer(customer: Customer) -> Answer:
    """A customer with its version as a strong ETag (RFC 9110 §8.8.3), for ``If-Match`` on PUT."""
    return 200, encode_success(customer.public()), [(b"etag", b'"%d"' % customer.version), JSON_TYPE]


# ------------------------------------------------------------------------ SPEs


@operation("manage.spes.list")
async def list_spes(call: Call, manage: Manage) -> Answer:
    return ok(await manage.list_spes(page_of(call)))


@operation("manage.spes.create")
async def create_spe(call: Call, manage: Manage) -> Answer:
    return ok(await manage.create_spe(await json_body(call)))


@operation("manage.spe.get")
async def get_spe(call: Call, manage: Manage) -> Answer:
    return ok(await manage.get_spe(call.path_params["xspe"]))


# ------------------------------------------------------------------- customers


@operation("manage.customers.list")
async def list_customers(call: Call, manage: Manage) -> Answer:
    xspe, status, name = (query_text(call, n) for n in ("xspe", "status", "name"))
    return ok(await manage.list_customers(xspe, status, name, page_of(call)))


@operation("manage.customers.create")
async def create_customer(call: Call, manage: Manage) -> Answer:
    return one_customer(await manage.create_customer(await json_body(call)))


@operation("manage.customer.get")
async def get_customer(call: Call, manage: Manage) -> Answer:
    return one_customer(await manage.customer(call.path_params["customer_id"]))


@operation("manage.customer.update")
async def update_customer(call: Call, manage: Manage) -> Answer:
    fields, if_match = await json_body(call), call.header(b"if-match")
    return one_customer(await manage.update_customer(call.path_params["customer_id"], fields, if_match))


@operation("manage.customer.disable")
async def disable_customer(call: Call, manage: Manage) -> Answer:
    return one_customer(await manage.update_customer(call.path_params["customer_id"], {"status": "disabled"}, None))


@operation("manage.customer.enable")
async def enable_customer(call: Call, manage: Manage) -> Answer:
    return one_customer(await manage.update_customer(call.path_params["customer_id"], {"status": ACTIVE}, None))


@operation("manage.customer.delete")
async def delete_customer(call: Call, manage: Manage) -> Answer:
    return ok(await manage.delete_customer(call.path_params["customer_id"]))


# ------------------------------------------------------------------------ apps


@operation("manage.apps.list")
async def list_apps(call: Call, manage: Manage) -> Answer:
    return ok(await manage.list_apps(query_text(call, "owner"), page_of(call)))


@operation("manage.apps.create")
async def create_app(call: Call, manage: Manage) -> Answer:
    app, secret = await manage.create_app(await json_body(call))
    return ok({**app_json(app), "secret": secret})  # the only time the secret is shown


@operation("manage.app.get")
async def get_app(call: Call, manage: Manage) -> Answer:
    return ok(manage.show_app(await manage.app(call.path_params["app_id"])))


@operation("manage.app.update")
async def update_app(call: Call, manage: Manage) -> Answer:
    return ok(app_json(await manage.update_app(call.path_params["app_id"], await json_body(call))))


@operation("manage.app.rotate_secret")
async def rotate_secret(call: Call, manage: Manage) -> Answer:
    return ok(await manage.rotate_secret(call.path_params["app_id"], await json_body(call)))


@operation("manage.app.suspend")
async def suspend_app(call: Call, manage: Manage) -> Answer:
    return ok(app_json(await manage.set_app_status(call.path_params["app_id"], SUSPENDED)))


@operation("manage.app.resume")
async def resume_app(call: Call, manage: Manage) -> Answer:
    return ok(app_json(await manage.set_app_status(call.path_params["app_id"], ACTIVE)))


# --------------------------------------------------------------- installations


@operation("manage.installations.list")
async def list_installations(call: Call, manage: Manage) -> Answer:
    app_id, xspe = query_text(call, "app_id"), query_text(call, "xspe")
    return ok(await manage.list_installations(app_id, xspe, page_of(call)))


@operation("manage.installations.create")
async def install(call: Call, manage: Manage) -> Answer:
    return ok(installation_json(await manage.install(await json_body(call))))


@operation("manage.installation.delete")
async def uninstall(call: Call, manage: Manage) -> Answer:
    return ok(installation_json(await manage.uninstall(call.path_params["installation_id"])))


# ----------------------------------------------------------------------- users


@operation("manage.users.list")
async def list_users(call: Call, manage: Manage) -> Answer:
    return ok(await manage.list_users(page_of(call)))


@operation("manage.users.create")
async def create_user(call: Call, manage: Manage) -> Answer:
    return ok(user_json(await manage.create_user(await json_body(call))))


@operation("manage.user.password")
async def set_password(call: Call, manage: Manage) -> Answer:
    user = await manage.set_password(call.path_params["user_id"], await json_body(call))
    return ok(user_json(user))


# ----------------------------------------------------------------------- audit


@operation("manage.audit_events.list")
async def audit_events(call: Call, manage: Manage) -> Answer:
    spec = AuditFilter(
        app_id=query_text(call, "app_id"), xspe=query_text(call, "xspe"), event=query_text(call, "event"),
        since=query_time(call, "since"), until=query_time(call, "until"),
    )  # fmt: skip
    return ok(await manage.audit_events(spec, page_of(call)))


def _route(method: str, path: str, handler: Handler) -> ApiRoute:
    """One admin route for the app's table (``web.kernel``): its answers never cached (SPEC §9)."""
    return ApiRoute(method, PREFIX + path, handler, OPERATION_NAMES[handler], API_NO_STORE)


routes = [
    _route("GET", "/spes", list_spes),
    _route("POST", "/spes", create_spe),
    _route("GET", "/spes/{xspe}", get_spe),
    _route("GET", "/customers", list_customers),
    _route("POST", "/customers", create_customer),
    _route("GET", "/customers/{customer_id}", get_customer),
    _route("PUT", "/customers/{customer_id}", update_customer),
    _route("DELETE", "/customers/{customer_id}", delete_customer),
    _route("POST", "/customers/{customer_id}/disable", disable_customer),
    _route("POST", "/customers/{customer_id}/enable", enable_customer),
    _route("GET", "/apps", list_apps),
    _route("POST", "/apps", create_app),
    _route("GET", "/apps/{app_id}", get_app),
    _route("PUT", "/apps/{app_id}", update_app),
    _route("POST", "/apps/{app_id}/rotate-secret", rotate_secret),
    _route("POST", "/apps/{app_id}/suspend", suspend_app),
    _route("POST", "/apps/{app_id}/resume", resume_app),
    _route("GET", "/installations", list_installations),
    _route("POST", "/installations", install),
    _route("DELETE", "/installations/{installation_id}", uninstall),
    _route("GET", "/users", list_users),
    _route("POST", "/users", create_user),
    _route("POST", "/users/{user_id}/password", set_password),
    _route("GET", "/audit-events", audit_events),
]
