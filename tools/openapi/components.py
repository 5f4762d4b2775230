"""Reusable parts of the OpenAPI document: schemas, parameters, error responses, security schemes."""

from __future__ import annotations

from typing import Any

from openplatform.errors import ERRORS
from openplatform.models import KNOWN_SCOPES
from openplatform.services.directory_input import (
    CONTACT_MAX,
    CUSTOMER_STATUSES,
    DOMAIN_MAX,
    FILTER_MAX,
    NAME_MAX,
    SITE_STATUSES,
)
from openplatform.web.open_api import MAX_PAGE, MAX_PAGE_SIZE

Schema = dict[str, Any]


def ref(name: str, kind: str = "schemas") -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def obj(properties: dict[str, Schema], required: list[str] | None = None, closed: bool = True) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "required": required or list(properties)}
    if closed:
        schema["additionalProperties"] = False
    return schema


def envelope(result: Schema) -> Schema:
    return obj({"code": {"const": 0}, "msg": {"const": "success"}, "result": result})


def text(description: str, max_length: int | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "string", "description": description, **extra}
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


UNIX = {"type": "integer", "description": "UNIX time in seconds."}
VERSION = {"type": "integer", "minimum": 1, "description": "Starts at 1; every update adds 1. Also the ETag."}
VERSION_IN = {
    "type": ["integer", "string"],
    "pattern": "^[1-9][0-9]{0,8}$",
    "minimum": 1,
    "description": "Optimistic concurrency: the version you last read (a form sends its digits). "
    "If it is no longer current the update is refused with 409 / 40901 conflict.",
}

CUSTOMER = obj(
    {
        "customer_id": text("Customer id."),
        "xspe": text("The SPE the customer belongs to."),
        "name": text("Display name.", NAME_MAX),
        "contact": text("Free-form contact (e-mail, phone); may be empty.", CONTACT_MAX),
        "status": {"enum": list(CUSTOMER_STATUSES)},
        "created_at": UNIX,
        "updated_at": UNIX,
        "version": VERSION,
    }
)
SITE = obj(
    {
        "site_id": text("Site id."),
        "customer_id": text("The customer owning the site."),
        "xspe": text("The customer's SPE."),
        "name": text("Display name.", NAME_MAX),
        "domain": text("Hostname, lower-case IDNA A-labels (xn--…).", DOMAIN_MAX),
        "status": {"enum": list(SITE_STATUSES)},
        "created_at": UNIX,
        "updated_at": UNIX,
        "version": VERSION,
    }
)


def page_of(item: str, with_xspe: bool = False) -> Schema:
    properties: dict[str, Schema] = {
        "items": {"type": "array", "items": ref(item)},
        "total": {"type": "integer", "minimum": 0, "description": "Matching objects over all pages."},
        "page": {"type": "integer", "minimum": 1},
        "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
    }
    if with_xspe:
        properties["xspe"] = {"type": ["string", "null"], "description": "The SPE listed (null: none reachable)."}
    return obj(properties)


NAME_IN = text("1 to 200 characters, no control characters; surrounding spaces are trimmed.", NAME_MAX)
DOMAIN_IN = text(
    "A bare hostname: no scheme, path, port or wildcard, not an IP address, at least two labels of at "
    "most 63 letters, digits or hyphens, at most 253 characters. Internationalised names are accepted "
    "and stored as IDNA A-labels (bücher.example → xn--bcher-kva.example).",
    4 * DOMAIN_MAX,
)
REQUEST_BODIES: dict[str, Schema] = {
    "CustomerCreate": obj(
        {
            "name": NAME_IN,
            "contact": text("Optional contact.", CONTACT_MAX),
            "status": {"enum": list(CUSTOMER_STATUSES), "default": "active"},
            "xspe": text("Required when the app is installed SPE-wide at several SPEs."),
        },
        ["name"],
    ),
    "CustomerUpdate": obj(
        {
            "name": NAME_IN,
            "contact": text("Contact.", CONTACT_MAX),
            "status": {"enum": list(CUSTOMER_STATUSES)},
            "version": VERSION_IN,
        },
        [],
    ),
    "SiteCreate": obj(
        {"name": NAME_IN, "domain": DOMAIN_IN, "status": {"enum": list(SITE_STATUSES), "default": "active"}},
        ["name", "domain"],
    ),
    "SiteUpdate": obj(
        {"name": NAME_IN, "domain": DOMAIN_IN, "status": {"enum": list(SITE_STATUSES)}, "version": VERSION_IN}, []
    ),
}

ERROR = obj(
    {
        "code": {"type": "integer", "enum": sorted(k.code for k in ERRORS.values())},
        "msg": text("A sentence for the developer; never a stack trace."),
        "error": {"enum": sorted(ERRORS)},
        "result": {"type": "null"},
        "field": text("Validation errors only: the parameter, field or header at fault."),
    },
    ["code", "msg", "error", "result"],
)

USER_TOKENS = obj(
    {
        "access_token": text("Bearer token for the Open APIs."),
        "expires_in": {"type": "integer", "description": "Seconds (7200 by default)."},
        "refresh_token": text("Single use: every refresh returns a new one."),
        "scope": text("Space-separated scopes granted."),
    }
)
APP_TOKEN = obj({"access_token": text("App token."), "expires_in": {"type": "integer"}})

INTROSPECTION_MEMBERS: dict[str, Schema] = {
    "active": {"type": "boolean"},
    "scope": {"type": "string"},
    "client_id": text("The app_id."),
    "token_type": {"enum": ["Bearer", "refresh_token"]},
    "exp": UNIX,
    "iat": UNIX,
    "iss": {"type": "string"},
    "sub": text("The customer of a user token."),
    "customer_id": {"type": "string"},
    "xspe": {"type": "string"},
}
INTROSPECTION = obj(INTROSPECTION_MEMBERS, ["active"])
INTROSPECTION_RESPONSE = obj(
    {"code": {"const": 0}, "msg": {"const": "success"}, "result": ref("Introspection"), **INTROSPECTION_MEMBERS},
    ["code", "msg", "result", "active"],
)

METADATA = obj(
    {
        "issuer": {"type": "string", "format": "uri"},
        "authorization_endpoint": {"type": "string"},
        "token_endpoint": {"type": "string"},
        "introspection_endpoint": {"type": "string"},
        "revocation_endpoint": {"type": "string"},
        "response_types_supported": {"type": "array", "items": {"type": "string"}},
        "grant_types_supported": {"type": "array", "items": {"type": "string"}},
        "scopes_supported": {"type": "array", "items": {"enum": list(KNOWN_SCOPES)}},
        "code_challenge_methods_supported": {"type": "array", "items": {"type": "string"}},
        "service_documentation": {"type": "string"},
    },
    ["issuer", "authorization_endpoint", "token_endpoint", "introspection_endpoint", "revocation_endpoint"],
    closed=False,
)

SCHEMAS: dict[str, Schema] = {
    "Error": ERROR,
    "Customer": CUSTOMER,
    "Site": SITE,
    "CustomerPage": page_of("Customer", with_xspe=True),
    "SitePage": page_of("Site"),
    "CustomerDeleted": obj({"customer_id": {"type": "string"}, "deleted": {"const": True}}),
    "SiteDeleted": obj({"site_id": {"type": "string"}, "deleted": {"const": True}}),
    "UserTokens": USER_TOKENS,
    "AppToken": APP_TOKEN,
    "Introspection": INTROSPECTION,
    "IntrospectionResponse": INTROSPECTION_RESPONSE,
    "Metadata": METADATA,
    "Health": obj({"status": {"enum": ["ok", "ready"]}}),
    **REQUEST_BODIES,
}


def query(name: str, schema: Schema, description: str, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


PARAMETERS: dict[str, Schema] = {
    "customer_id": {"name": "customer_id", "in": "path", "required": True, "schema": {"type": "string"}},
    "site_id": {"name": "site_id", "in": "path", "required": True, "schema": {"type": "string"}},
    "page": query("page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}, "1-based page."),
    "page_size": query(
        "page_size", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": 20}, "Items per page."
    ),
    "xspe": query("xspe", {"type": "string"}, "Which SPE, when the app is installed at several."),
    "customer_status": query("status", {"enum": list(CUSTOMER_STATUSES)}, "Only customers with this status."),
    "site_status": query("status", {"enum": list(SITE_STATUSES)}, "Only sites with this status."),
    "name": query("name", {"type": "string", "maxLength": FILTER_MAX}, "Case-insensitive substring of the name."),
    "if_match": {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": 'Optimistic concurrency (RFC 9110 §13.1.1): the ETag you read, e.g. "3". A stale one '
        "gets 409 / 40901 conflict; `*` means no precondition.",
        "schema": {"type": "string"},
    },
}

ERROR_RESPONSES: dict[int, str] = {
    400: "40001–40006: a parameter or field is missing, repeated, malformed or too long (validation errors "
    "name the `field`), or an OAuth request is refused (unsupported grant, bad scope or redirect_uri, bad code).",
    401: "40101 invalid_client (app credentials) or 40102 invalid_token (access token missing, unknown, expired "
    "or revoked; its app suspended or uninstalled).",
    403: "40301 access_denied (not installed there, the wrong kind of token, or an admin key without the reach: "
    "a `--metrics-only` key on the admin API, a key bound to an SPE where it may not act), 40302 ip_not_allowed, "
    "40303 insufficient_scope.",
    404: "40401 not_found: no such object, or not within the token's reach (never 403 for others' objects).",
    405: "40501 method_not_allowed.",
    409: "40901 conflict: the version precondition (`version` or If-Match) no longer holds.",
    429: "42901 rate_limited (per client IP or app on the token endpoints, per admin key on the admin API and "
    "/metrics); see Retry-After.",
    500: "50001 server_error (details only in the server log).",
    503: "50301 temporarily_unavailable: a backing service is down; see Retry-After.",
}
HEADERS: dict[str, Schema] = {
    "ETag": {"description": 'The object\'s version as a strong entity tag, e.g. "3".', "schema": {"type": "string"}},
    "WWW-Authenticate": {
        "description": 'On the Open APIs the RFC 6750 §3 challenge: `Bearer realm="openplatform"`, with `error=` '
        'only when a token was sent; on every 401 of a token endpoint `Basic realm="openplatform"` (RFC 7235).',
        "schema": {"type": "string"},
    },
    "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}},
    "Location": {"description": "Where the browser goes next.", "schema": {"type": "string"}},
    "Cache-Control": {
        "description": "no-store on token responses (RFC 6749 §5.1) and on every Open API answer (SPEC §9).",
        "schema": {"type": "string"},
    },
}


def error_response(status: int) -> Schema:
    response: Schema = {
        "description": ERROR_RESPONSES[status],
        "content": {"application/json": {"schema": ref("Error")}},
    }
    extra = {401: "WWW-Authenticate", 403: "WWW-Authenticate", 429: "Retry-After", 503: "Retry-After"}.get(status)
    if extra:
        response["headers"] = {extra: ref(extra, "headers")}
    return response


RESPONSES: dict[str, Schema] = {f"E{status}": error_response(status) for status in ERROR_RESPONSES}

SECURITY_SCHEMES: dict[str, Schema] = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Access token (RFC 6750 §2.1)."},
    "access_token": {
        "type": "apiKey",
        "in": "query",
        "name": "access_token",
        "description": "Access token as a query parameter, as the original documentation shows.",
    },
    "app_basic": {
        "type": "http",
        "scheme": "basic",
        "description": "app_id and secret as HTTP Basic (RFC 6749 §2.3.1); or `app_id` and `secret` in the body.",
    },
    "admin_key": {
        "type": "http",
        "scheme": "bearer",
        "description": "An admin key (`openplatform admin-key create`, SPEC §10) as `Authorization: Bearer <key>`. "
        "A key made with `--metrics-only` opens `/metrics` alone (the admin API answers it 403 / 40301). Each key "
        "has a rate limit on the admin API and `/metrics` together (`admin` in `OPENPLATFORM_RATE_LIMITS`, "
        "default 100/2): past it 429 / 42901 with Retry-After.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "op_session",
        "description": "Management UI session; every form post also carries its CSRF token. Under an https "
        "issuer the cookie is `__Host-op_session` (Secure, Path=/, no Domain).",
    },
}
