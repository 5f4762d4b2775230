"""The documented token endpoints (SPEC §2.1–2.4) and the RFC 7662/7009/8414 ones.

The POST endpoints are the hot path: the kernel dispatches them before Starlette (``web.kernel``).
"""

from __future__ import annotations

from urllib.parse import quote

import orjson

from openplatform.core import authorize, introspection, server
from openplatform.core.authorize import RedirectError
from openplatform.core.requests import TokenRequest, parse_basic_auth, parse_params
from openplatform.web.kernel import JSON_ANSWER, Answer, ApiRoute, Call, Handler, ok
from openplatform.web.responses import BASIC_CHALLENGE, NO_STORE, PAGE_HEADERS, encode_success


async def connect(call: Call) -> Answer:
    """GET /oauth/connect (SPEC §2.1): a 302 to the app's redirect_uri, with a code or an error."""
    params = parse_params(call.query_string, b"", "")
    try:
        location = await authorize.connect(call.platform, params)
    except RedirectError as err:
        location = authorize.error_redirect(err)
    # Quoted as Starlette's RedirectResponse quotes a Location.
    return 302, b"", [(b"location", quote(location, safe=":/%#?=@[]!$&'()*+,;").encode("latin-1"))]


def token_request(call: Call, body: bytes) -> TokenRequest:
    """Parameters from the query string and a form or JSON ``body`` (``await call.body()``, read by
    the handler: a function, not a coroutine awaiting it, is about 1,000 instructions fewer a request);
    app credentials also as Basic auth."""
    params = parse_params(call.query_string, body, call.content_type)
    authorization = call.authorization  # mostly absent: then no call to parse it
    basic = parse_basic_auth(authorization) if authorization is not None else None
    return TokenRequest(params, call.client_ip(), basic)  # by position: cheaper


def token_endpoint(name: str) -> Handler:
    """POST /oauth/credit/token, /oauth/access_token, /oauth/refresh_token (SPEC §2.2–2.4)."""

    async def handle(call: Call) -> Answer:
        request = token_request(call, await call.body())
        result = (await server.token_response(call.platform, name, request)).result()
        if "client_id" in request.params or "application/json" in call.accept:
            # A standard OAuth client (RFC 6749 names, or asking for JSON as Authlib and
            # requests-oauthlib do) reads the §5.1 members at the top level, token_type included
            # (SPEC §2.2: it must work unchanged); the envelope stays as documented.
            body = {"code": 0, "msg": "success", "result": result, **result, "token_type": "Bearer"}
            return 200, orjson.dumps(body), JSON_ANSWER
        return 200, encode_success(result), JSON_ANSWER

    return handle


async def introspect(call: Call) -> Answer:
    """POST /oauth/introspect (RFC 7662)."""
    body = await introspection.introspect(call.platform, token_request(call, await call.body()))
    # RFC 7662 clients read the members at the top level; envelope clients read result.
    return 200, orjson.dumps({"code": 0, "msg": "success", "result": body, **body}), JSON_ANSWER


async def revoke(call: Call) -> Answer:
    """POST /oauth/revoke (RFC 7009)."""
    await introspection.revoke(call.platform, token_request(call, await call.body()))
    return ok({})


def issuer_of(call: Call) -> str:
    configured = call.platform.settings.issuer
    return configured.rstrip("/") if configured else str(call.request.base_url).rstrip("/")


async def metadata(call: Call) -> Answer:
    """GET /.well-known/oauth-authorization-server (RFC 8414): plain JSON, not an envelope."""
    return 200, orjson.dumps(introspection.metadata(issuer_of(call))), JSON_ANSWER


def _token_route(path: str, handler: Handler, name: str) -> ApiRoute:
    # A 401 names the scheme the client authenticates with (RFC 7235 §4.1, SPEC §9).
    return ApiRoute("POST", path, handler, name, NO_STORE, on_401=BASIC_CHALLENGE)


routes = [
    # Every answer of connect, its 302s included, keeps the URL (code, state) out of Referer and frames (SPEC §9).
    ApiRoute("GET", "/oauth/connect", connect, "connect", {**NO_STORE, **PAGE_HEADERS}, html_errors=True),
    _token_route("/oauth/credit/token", token_endpoint("credit_token"), "credit_token"),
    _token_route("/oauth/access_token", token_endpoint("access_token"), "access_token"),
    _token_route("/oauth/refresh_token", token_endpoint("refresh_token"), "refresh_token"),
    _token_route("/oauth/introspect", introspect, "introspect"),
    _token_route("/oauth/revoke", revoke, "revoke"),
    ApiRoute("GET", "/.well-known/oauth-authorization-server", metadata, "metadata"),
]
