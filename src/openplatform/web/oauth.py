"""The documented token endpoints (SPEC §2.1–2.4) and the RFC 7662/7009/8414 ones.

The POST endpoints are lean ASGI endpoints (``web.lean``): they are the hot path.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from openplatform.core import authorize, introspection, server
from openplatform.core.authorize import RedirectError
from openplatform.core.requests import TokenRequest, parse_basic_auth, parse_params
from openplatform.web.http import endpoint, platform_of
from openplatform.web.lean import Call, Headers, LeanEndpoint, encode_success
from openplatform.web.responses import BASIC_CHALLENGE, NO_STORE, PAGE_HEADERS, json_response


# Every answer of connect, its 302s included, keeps the URL (code, state) out of Referer and frames (SPEC §9).
@endpoint("connect", {**NO_STORE, **PAGE_HEADERS}, html_errors=True)
async def connect(request: Request) -> Response:
    platform = platform_of(request)
    params = parse_params(request.scope.get("query_string", b""), b"", "")
    try:
        location = await authorize.connect(platform, params)
    except RedirectError as err:
        location = authorize.error_redirect(err)
    return RedirectResponse(location, status_code=302)


async def token_request(call: Call) -> TokenRequest:
    """Parameters from the query string and a form or JSON body; app credentials also as Basic auth."""
    params = parse_params(call.query_string, await call.body(), call.content_type)
    return TokenRequest(params=params, client_ip=call.client_ip(), basic_auth=parse_basic_auth(call.authorization))


def _token_endpoint(name: str) -> LeanEndpoint:
    async def handle(call: Call) -> tuple[bytes, Headers]:
        request = await token_request(call)
        result = (await server.token_response(call.platform, name, request)).result()
        if "client_id" in request.params or "application/json" in call.accept:
            # A standard OAuth client (RFC 6749 names, or asking for JSON as Authlib and
            # requests-oauthlib do) reads the §5.1 members at the top level, token_type included
            # (SPEC §2.2: it must work unchanged); the envelope stays as documented.
            return orjson.dumps({"code": 0, "msg": "success", "result": result, **result, "token_type": "Bearer"}), []
        return encode_success(result), []

    return LeanEndpoint(name, handle, NO_STORE, on_401=BASIC_CHALLENGE)


async def _introspect(call: Call) -> tuple[bytes, Headers]:
    body = await introspection.introspect(call.platform, await token_request(call))
    # RFC 7662 clients read the members at the top level; envelope clients read result.
    return orjson.dumps({"code": 0, "msg": "success", "result": body, **body}), []


async def _revoke(call: Call) -> tuple[bytes, Headers]:
    await introspection.revoke(call.platform, await token_request(call))
    return encode_success({}), []


def issuer_of(request: Request) -> str:
    configured = platform_of(request).settings.issuer
    return configured.rstrip("/") if configured else str(request.base_url).rstrip("/")


@endpoint("metadata")
async def metadata(request: Request) -> Response:
    return json_response(introspection.metadata(issuer_of(request)))


# Dispatched by exact method and path before Starlette's stack (web.app); in the router too, for the rest.
lean_endpoints = {
    ("POST", "/oauth/credit/token"): _token_endpoint("credit_token"),
    ("POST", "/oauth/access_token"): _token_endpoint("access_token"),
    ("POST", "/oauth/refresh_token"): _token_endpoint("refresh_token"),
    ("POST", "/oauth/introspect"): LeanEndpoint("introspect", _introspect, NO_STORE, on_401=BASIC_CHALLENGE),
    ("POST", "/oauth/revoke"): LeanEndpoint("revoke", _revoke, NO_STORE, on_401=BASIC_CHALLENGE),
}
routes = [
    Route("/oauth/connect", connect, methods=["GET"], name="connect"),
    *(Route(path, lean, methods=[method], name=lean.name) for (method, path), lean in lean_endpoints.items()),
    Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"], name="metadata"),
]
