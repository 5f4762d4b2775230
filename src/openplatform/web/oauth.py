"""The documented token endpoints (SPEC §2.1–2.4) and the RFC 7662/7009/8414 ones."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from openplatform.core import authorize, introspection, server
from openplatform.core.authorize import RedirectError
from openplatform.core.requests import parse_params
from openplatform.errors import OAuthError
from openplatform.web.http import endpoint, platform_of, token_request
from openplatform.web.responses import NO_STORE, json_response, success


@endpoint("connect", NO_STORE, html_errors=True)
async def connect(request: Request) -> Response:
    platform = platform_of(request)
    params = parse_params(request.scope.get("query_string", b""), b"", "")
    try:
        location = await authorize.connect(platform, params)
    except RedirectError as err:
        location = authorize.error_redirect(err)
    return RedirectResponse(location, status_code=302)


def _token_endpoint(name: str) -> Route:
    @endpoint(name, NO_STORE)
    async def handle(request: Request) -> Response:
        platform = platform_of(request)
        issued = await server.token_response(platform, name, await token_request(request, platform))
        return success(issued.result())

    path = {"access_token": "/oauth/access_token", "refresh_token": "/oauth/refresh_token",
            "credit_token": "/oauth/credit/token"}[name]  # fmt: skip
    return Route(path, handle, methods=["POST"], name=name)


@endpoint("introspect", NO_STORE)
async def introspect(request: Request) -> Response:
    platform = platform_of(request)
    body = await introspection.introspect(platform, await token_request(request, platform))
    # RFC 7662 clients read the members at the top level; envelope clients read result.
    return json_response({"code": 0, "msg": "success", "result": body, **body})


@endpoint("revoke", NO_STORE)
async def revoke(request: Request) -> Response:
    platform = platform_of(request)
    await introspection.revoke(platform, await token_request(request, platform))
    return success({})


def issuer_of(request: Request) -> str:
    configured = platform_of(request).settings.issuer
    return configured.rstrip("/") if configured else str(request.base_url).rstrip("/")


@endpoint("metadata")
async def metadata(request: Request) -> Response:
    return json_response(introspection.metadata(issuer_of(request)))


async def method_not_allowed(_request: Request) -> Response:
    raise OAuthError("method_not_allowed")


# Starlette tries routes in order (about a microsecond each): the app puts these first.
token_routes = [
    _token_endpoint("credit_token"),
    _token_endpoint("access_token"),
    _token_endpoint("refresh_token"),
]
other_routes = [
    Route("/oauth/connect", connect, methods=["GET"], name="connect"),
    Route("/oauth/introspect", introspect, methods=["POST"], name="introspect"),
    Route("/oauth/revoke", revoke, methods=["POST"], name="revoke"),
    Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"], name="metadata"),
]
routes = [*token_routes, *other_routes]
