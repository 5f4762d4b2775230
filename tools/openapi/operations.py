"""Every API operation of the server, described once (SPEC §2 and §3)."""

from __future__ import annotations

from typing import Any

from tools.openapi.components import Schema, envelope, obj, query, ref, text

OPEN_API = [{"bearer": []}, {"access_token": []}]
APP_CREDENTIALS = [{}, {"app_basic": []}]  # app_id/secret in the body, or HTTP Basic
API_ERRORS = (400, 401, 403, 404, 429, 500, 503)
TOKEN_ERRORS = (400, 401, 403, 429, 500, 503)


def body(schema: str) -> Schema:
    return {
        "required": True,
        "content": {
            "application/json": {"schema": ref(schema)},
            "application/x-www-form-urlencoded": {"schema": ref(schema)},
        },
    }


def success(result: Schema, headers: tuple[str, ...] = (), description: str = "Success.") -> Schema:
    response: Schema = {"description": description, "content": {"application/json": {"schema": envelope(result)}}}
    if headers:
        response["headers"] = {name: ref(name, "headers") for name in headers}
    return response


def operation(
    op_id: str,
    tag: str,
    summary: str,
    description: str,
    ok: dict[str, Schema],
    errors: tuple[int, ...] = API_ERRORS,
    **extra: Any,
) -> Schema:
    responses = {**ok, **{str(s): ref(f"E{s}", "responses") for s in errors}}
    return {"operationId": op_id, "tags": [tag], "summary": summary, "description": description,
            "responses": responses, **extra}  # fmt: skip


def params(*names: str) -> list[Schema]:
    return [ref(name, "parameters") for name in names]


# ---------------------------------------------------------------------- OAuth

TOKEN_REQUESTS: dict[str, Schema] = {
    "AccessTokenRequest": obj(
        {
            "app_id": text("APP_ID (or HTTP Basic)."),
            "secret": text("The app's secret (or HTTP Basic)."),
            "code": text("The code from /oauth/connect (single use, 300 s)."),
            "grant_type": {"enum": ["authorization_code"]},
            "redirect_uri": text("If given, must equal the one sent to /oauth/connect."),
            "code_verifier": text("PKCE (RFC 7636), when a code_challenge was sent."),
        },
        ["code", "grant_type"],
        closed=False,
    ),
    "RefreshTokenRequest": obj(
        {
            "app_id": text("APP_ID."),
            "refresh_token": text("The latest refresh token."),
            "grant_type": {"enum": ["refresh_code", "refresh_token"]},
            "secret": text("Optional (verified when given; may be required by configuration)."),
        },
        ["app_id", "refresh_token", "grant_type"],
        closed=False,
    ),
    "CreditTokenRequest": obj(
        {
            "app_id": text("APP_ID (or HTTP Basic)."),
            "secret": text("The app's secret (or HTTP Basic)."),
            "grant_type": {"enum": ["client_credential", "client_credentials", "authorization_code"]},
            "code": text("Only with grant_type=authorization_code (accepted here for compatibility)."),
        },
        ["grant_type"],
        closed=False,
    ),
    "TokenRequest": obj(
        {
            "token": text("The token to inspect or revoke (one of the calling app's own)."),
            "token_type_hint": {"enum": ["access_token", "refresh_token"]},
            "app_id": text("APP_ID (or HTTP Basic)."),
            "secret": text("The app's secret (or HTTP Basic)."),
        },
        ["token"],
        closed=False,
    ),
}

CONNECT_PARAMETERS = [
    query("app_id", {"type": "string"}, "APP_ID.", required=True),
    query("redirect_uri", {"type": "string"}, "Must share the host (and port) of the app's host_url.", required=True),
    query("response_type", {"enum": ["code"]}, "Always code.", required=True),
    query("scope", {"type": "string", "default": "install_login"}, "install_login, plus registered scopes."),
    query("xspe", {"type": "string"}, "The customer's SPE.", required=True),
    query("state", {"type": "string", "maxLength": 1024}, "Echoed back byte for byte."),
    query("customer_id", {"type": "string"}, "The customer installing the app.", required=True),
    query("code_challenge", {"type": "string"}, "PKCE S256 challenge (RFC 7636), optional."),
    query("code_challenge_method", {"enum": ["S256"]}, "PKCE method."),
]


def token_endpoint(op_id: str, summary: str, description: str, request: str, result: Schema) -> Schema:
    return {
        "post": operation(
            op_id,
            "OAuth",
            summary,
            description,
            {"200": success(result, ("Cache-Control",))},
            TOKEN_ERRORS,
            requestBody=body(request),
            security=APP_CREDENTIALS,
        )  # fmt: skip
    }


OAUTH: dict[str, Schema] = {
    "/oauth/connect": {
        "get": operation(
            "connect",
            "OAuth",
            "Get a code (no login: installation is consent)",
            "SPEC §2.1 / RFC 6749 §4.1.1. Redirects to `redirect_uri?code=CODE&state=STATE`. While app_id "
            "or redirect_uri is untrusted the error is answered here (JSON envelope, or an HTML page when the "
            "client asks for HTML); later errors go back to redirect_uri with error, error_description and state.",
            {
                "302": {
                    "description": "Redirect to the app with the code (or an error).",
                    "headers": {"Location": ref("Location", "headers")},
                }
            },
            (400, 401, 429, 500, 503),
            parameters=CONNECT_PARAMETERS,
        )  # fmt: skip
    },
    "/oauth/access_token": token_endpoint(
        "access_token",
        "Exchange a code for tokens",
        "SPEC §2.2 / RFC 6749 §4.1.3. A code presented twice fails and revokes the tokens issued from it.",
        "AccessTokenRequest",
        ref("UserTokens"),
    ),  # fmt: skip
    "/oauth/refresh_token": token_endpoint(
        "refresh_token",
        "Rotate a refresh token",
        "SPEC §2.3 / RFC 6749 §6. Returns a new pair; the old refresh token stops working. Replaying an older "
        "generation revokes the whole family; the immediately previous one within the leeway (5 s) returns "
        "the same new pair again.",
        "RefreshTokenRequest",
        ref("UserTokens"),
    ),  # fmt: skip
    "/oauth/credit/token": token_endpoint(
        "credit_token",
        "Get an app token",
        "SPEC §2.4 / RFC 6749 §4.4. Every call issues a new token; earlier ones stay valid until they expire.",
        "CreditTokenRequest",
        {"oneOf": [ref("AppToken"), ref("UserTokens")]},
    ),  # fmt: skip
    "/oauth/introspect": {
        "post": operation(
            "introspect",
            "OAuth",
            "Introspect one of the app's tokens (RFC 7662)",
            "Another app's token, or an unknown one, answers `active: false`. The RFC 7662 members are at the "
            "top level and, for envelope clients, in `result` too.",
            {
                "200": {
                    "description": "Token state.",
                    "content": {"application/json": {"schema": ref("IntrospectionResponse")}},
                }
            },
            TOKEN_ERRORS,
            requestBody=body("TokenRequest"),
            security=APP_CREDENTIALS,
        )  # fmt: skip
    },
    "/oauth/revoke": {
        "post": operation(
            "revoke",
            "OAuth",
            "Revoke one of the app's tokens (RFC 7009)",
            "Always 200 for a well-formed request (RFC 7009 §2.2). Revoking a refresh token revokes its family.",
            {"200": success(obj({}))},
            TOKEN_ERRORS,
            requestBody=body("TokenRequest"),
            security=APP_CREDENTIALS,
        )  # fmt: skip
    },
    "/.well-known/oauth-authorization-server": {
        "get": operation(
            "metadata",
            "OAuth",
            "Authorization server metadata (RFC 8414)",
            "Plain JSON, no envelope.",
            {"200": {"description": "Metadata.", "content": {"application/json": {"schema": ref("Metadata")}}}},
            (429, 500, 503),
        )  # fmt: skip
    },
}

# --------------------------------------------------------------- operations

OPERATIONS: dict[str, Schema] = {
    "/healthz": {
        "get": operation(
            "healthz", "Operations", "Liveness", "The process answers.", {"200": success(ref("Health"))}, ()
        )
    },
    "/readyz": {
        "get": operation(
            "readyz",
            "Operations",
            "Readiness",
            "The database answers too; 503 / 50301 when it does not.",
            {"200": success(ref("Health"))},
            (500, 503),
        )  # fmt: skip
    },
    "/metrics": {
        "get": operation(
            "metrics",
            "Operations",
            "Prometheus metrics",
            "Requests by endpoint and envelope code, latency histograms (text exposition format). Only with an "
            "admin key of the whole platform (SPEC §9), best one made with `admin-key create --metrics-only`: "
            "401 / 40102 without one, 403 / 40301 for a key bound to an SPE, 429 / 42901 past the key's rate limit.",
            {"200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}},
            (401, 403, 429),
            security=[{"admin_key": []}],
        )  # fmt: skip
    },
    "/openapi.json": {
        "get": operation(
            "openapi",
            "Documentation",
            "This document",
            "OpenAPI 3.1.",
            {"200": {"description": "The document.", "content": {"application/json": {"schema": {"type": "object"}}}}},
            (),
        )  # fmt: skip
    },
    "/docs": {
        "get": operation(
            "docs",
            "Documentation",
            "API reference (HTML)",
            "This document, readable; no external resources.",
            {"200": {"description": "The page.", "content": {"text/html": {"schema": {"type": "string"}}}}},
            (),
        )  # fmt: skip
    },
}
