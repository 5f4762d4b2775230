"""The endpoint kernel: every API request is answered one way, every API route is declared once.

A route is an ``ApiRoute``: method, path template (``{name}`` for a whole path segment),
handler, the name its metrics carry, and the headers of every one of its answers. A
handler takes a ``Call`` (the request: the headers the kernel reads in one pass, the
body read within ``max_body_bytes``, the client IP, the query, the path parameters) and
returns an ``Answer``: status, body and its own headers (``content-type`` included,
``content-length`` added here). Every failure becomes the envelope of SPEC §2 with its
status (or 200 under ``error_status=always-200``, SPEC §5) through one renderer
(``error_answer``); the detail of an unexpected one goes only to the log
(``responses.as_oauth_error``). Every answer is counted by one metrics hook.

``RouteTable`` compiles the app's routes once, at startup, into both ways in:

- the **fast dispatch**: ``OpenPlatformApp`` (``web.app``) looks the exact method and path
  up in a dict, or matches the templates with as many segments, before Starlette's
  middleware stack, router, ``Request`` and ``Response`` objects, which measured as a
  third of a token check's CPU (docs/benchmarks.md);
- **Starlette routes** with the same ``Endpoint`` objects as ASGI apps, so a HEAD, another
  method (405), a trailing slash (307) or a ``root_path`` get Starlette's own answers,
  and the OpenAPI test lists the app's routes from one place.

What must hold on *every* answer, whichever way it took (431 for oversized headers, HSTS,
ASCII query strings), is done once, in ``OpenPlatformApp.__call__``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from openplatform.core.context import Platform
from openplatform.core.ip_policy import client_ip
from openplatform.core.text import CONTROL_CHARS
from openplatform.errors import OAuthError
from openplatform.storage.cache import BoundedCache
from openplatform.web import metrics
from openplatform.web.responses import PAGE_HEADERS, as_oauth_error, encode_headers, encode_success, error_page

Headers = list[tuple[bytes, bytes]]
# What a handler returns: status, body, and the answer's own headers (content-type included; not
# content-length, which the kernel adds). The lists may be shared constants: the kernel copies.
Answer = tuple[int, bytes, Headers]
Handler = Callable[["Call"], Awaitable[Answer]]

JSON_TYPE = (b"content-type", b"application/json")
HTML_TYPE = (b"content-type", b"text/html; charset=utf-8")
JSON_ANSWER: Headers = [JSON_TYPE]
NO_HEADERS: Headers = []
NO_PARAMS: Mapping[str, str] = MappingProxyType({})

# No identifier contains a control character, and PostgreSQL text cannot even
# hold NUL: such a path segment must be a 40001, not a database error (50001).
# Content-Length header pairs by body size, made once: formatting the bytes (``b"%d" % size``)
# measured 920 instructions, a lookup 290 (callgrind, 3.11); the 4,096 sizes met last are kept.
_LENGTHS = BoundedCache(4096)


class Call:
    """One API request: the scope, the few headers the kernel reads, the body on demand.

    The headers are read in one pass over the scope's list. Names come lower-cased (ASGI
    spec); a repeated header counts by its first line, as Starlette's ``Headers.get()``
    reads it, except X-Forwarded-For, which is one list (RFC 9110 §5.3).
    """

    __slots__ = (
        "scope", "receive", "app", "platform", "query_string", "path_params", "content_type", "content_length",
        "authorization", "forwarded", "accept", "_query", "_request",
    )  # fmt: skip
    _query: dict[str, list[str]]
    _request: Request

    def __init__(self, scope: Scope, receive: Receive, app: Any) -> None:
        # Plain attributes, not properties: a property is a Python call per read on 3.11, and the
        # token-checked GET reads these once each (about 2 % of its instructions, docs/benchmarks.md).
        self.scope, self.receive, self.app, self.platform = scope, receive, app, app.platform
        self.query_string: bytes = scope.get("query_string", b"")
        # The ``{name}`` segments of the route's path, as matched (never containing a control character).
        self.path_params: Mapping[str, str] = scope.get("path_params") or NO_PARAMS
        content_type = authorization = accept = ""
        content_length: str | None = None
        forwarded: list[str] = []
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = content_type or value.decode("latin-1")
            elif name == b"content-length":
                if content_length is None:
                    content_length = value.decode("latin-1")
            elif name == b"authorization":
                authorization = authorization or value.decode("latin-1")
            elif name == b"x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
            elif name == b"accept":
                accept = accept or value.decode("latin-1")
        self.content_type, self.content_length, self.accept = content_type, content_length, accept
        self.authorization, self.forwarded = authorization or None, forwarded
        # _query and _request stay unset until asked for: most calls never ask.

    def header(self, name: bytes) -> str | None:
        """The first line of the header ``name`` (lower-case bytes), or None."""
        for key, value in self.scope["headers"]:
            if key == name:
                return value.decode("latin-1")  # type: ignore[no-any-return]
        return None

    def query(self, name: str) -> str | None:
        """The query parameter ``name``, or None; given twice it is a 40001 naming the field.

        Parsed once per call as Starlette's ``QueryParams`` does (the raw string as latin-1,
        percent-escapes as UTF-8, blank values kept).
        """
        try:
            parsed = self._query
        except AttributeError:
            parsed = self._query = {}
            for key, value in parse_qsl(self.query_string.decode("latin-1"), keep_blank_values=True):
                parsed.setdefault(key, []).append(value)
        values = parsed.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise OAuthError("invalid_request", f"The {name} parameter is repeated.", field=name)
        return values[0]

    def client_ip(self) -> str:
        return caller_ip(self.scope, self.forwarded, self.platform)

    def body(self) -> Coroutine[Any, Any, bytes]:
        """The whole body, at most ``max_body_bytes`` (SPEC §9), for ``await call.body()``; raises
        OAuthError 40001 beyond. ``read_bounded``'s coroutine itself: an ``async def`` awaiting it
        was one coroutine more per request (about 1,000 instructions, callgrind)."""
        return read_bounded(self.receive, self.content_length, self.platform.settings.max_body_bytes)

    @property
    def request(self) -> Request:
        """Starlette's view of the same request, for a handler that needs more (cookies, base_url)."""
        try:
            return self._request
        except AttributeError:
            self._request = Request(self.scope, self.receive)
            return self._request


async def read_bounded(receive: Receive, declared: str | None, limit: int) -> bytes:
    """Read a request body of at most ``limit`` bytes from ASGI ``receive``.

    ``declared`` is the Content-Length header (or None). A malformed or too large one,
    a longer body, or a client leaving before the end is OAuthError 40001 (SPEC §9): a
    client's doing, never a server error.
    """
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):  # "²" is a digit to isdigit(), not to int()
            raise OAuthError("invalid_request", "Content-Length is malformed.")
        if int(declared) > limit:
            raise OAuthError("invalid_request", f"The request body is larger than {limit} bytes.")
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):  # the usual case: the whole body in one message
        if message["type"] == "http.disconnect":
            raise OAuthError("invalid_request", "The client went away before sending the whole body.")
        if len(body) > limit:
            raise OAuthError("invalid_request", f"The request body is larger than {limit} bytes.")
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise OAuthError("invalid_request", "The client went away before sending the whole body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise OAuthError("invalid_request", f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def caller_ip(scope: Scope, forwarded: list[str], platform: Platform) -> str:
    """The caller's address: the peer, or what X-Forwarded-For says behind a trusted proxy (SPEC §3)."""
    client = scope.get("client")
    peer = client[0] if client else ""
    proxies = platform.settings.trusted_proxy_networks
    # Repeated header lines are one comma-joined list (RFC 9110 §5.3); a proxy that
    # adds its own line puts the real client last, so reading only the first is spoofable.
    joined = (", ".join(forwarded) or None) if proxies else None
    return client_ip(peer, joined, proxies)


# ------------------------------------------------------------------ Starlette endpoints (the screens)


def platform_of(request: Request) -> Platform:
    return request.app.state.platform  # type: ignore[no-any-return]


def request_ip(request: Request) -> str:
    """``caller_ip`` for a Starlette request (the management screens)."""
    return caller_ip(request.scope, request.headers.getlist("x-forwarded-for"), platform_of(request))


async def read_body(request: Request, limit: int) -> bytes:
    """``read_bounded`` for a Starlette request (the management screens' forms)."""
    return await read_bounded(request.receive, request.headers.get("content-length"), limit)


# ------------------------------------------------------------------ rendering


def ok(result: object, headers: Headers = NO_HEADERS) -> Answer:
    """A 200 answer carrying ``result`` in the success envelope, with ``headers`` besides its content-type."""
    return 200, encode_success(result), [JSON_TYPE, *headers] if headers else JSON_ANSWER


def error_answer(error: OAuthError, always_200: bool, headers: Mapping[str, str], as_html: bool = False) -> Answer:
    """The one rendering of an error: the envelope (SPEC §2), or a short HTML page for a browser.

    The status is the error's (its code's first three digits), or 200 under
    ``error_status=always-200``; ``headers`` are the error's own (Retry-After,
    WWW-Authenticate, Allow). An HTML page carries ``PAGE_HEADERS`` (SPEC §9).
    """
    status = 200 if always_200 else error.status
    if as_html:
        return status, error_page(error).encode(), [HTML_TYPE, *encode_headers({**headers, **PAGE_HEADERS})]
    return status, orjson.dumps(error.envelope()), [JSON_TYPE, *encode_headers(headers)]


def as_response(answer: Answer) -> Response:
    """An ``Answer`` as a Starlette ``Response`` (for Starlette's own error handlers)."""
    status, body, headers = answer
    response = Response(body, status_code=status)
    response.raw_headers = [*headers, (b"content-length", b"%d" % len(body))]
    return response


def error_response(error: OAuthError, platform: Platform, headers: Mapping[str, str]) -> Response:
    """``error_answer`` as a Starlette ``Response``: the app's 404 and 405 (``web.app.http_error``)."""
    return as_response(error_answer(error, platform.settings.error_status == "always-200", headers))


# ------------------------------------------------------------------ routes


@dataclass(frozen=True)
class ApiRoute:
    """One API route, declared once: the fast dispatch and the Starlette route both come from it.

    ``headers`` go on every answer, errors included (``Cache-Control: no-store``, SPEC §9);
    ``on_401`` on the answers of a 401 unless the error names its own (the token endpoints'
    ``WWW-Authenticate: Basic``, RFC 7235); ``html_errors``: a client accepting ``text/html``
    gets its errors as a page (``/oauth/connect`` runs in the customer's browser);
    ``observed=False`` keeps a route out of the request metrics (health probes).
    """

    method: str
    path: str
    handler: Handler
    name: str
    headers: Mapping[str, str] = field(default_factory=dict)
    on_401: Mapping[str, str] = field(default_factory=dict)
    html_errors: bool = False
    observed: bool = True


class Endpoint:
    """The ASGI app of one route: runs its handler, renders the answer or the error, counts it.

    ``always`` are the app's headers for every answer (HSTS), passed by ``web.app`` when it
    dispatches here itself; through Starlette's router they are added to ``send`` instead.
    """

    def __init__(self, route: ApiRoute) -> None:
        self.route = route
        self.name = self.__name__ = route.name  # Starlette names routes after their endpoint
        self.handler = route.handler
        self.fixed = encode_headers(dict(route.headers))
        self.fixed_names = {name for name, _value in self.fixed}
        self.on_401 = dict(route.on_401)
        self.html_errors = route.html_errors
        self.observed = route.observed

    async def __call__(self, scope: Scope, receive: Receive, send: Send, always: Headers = NO_HEADERS) -> None:
        started = time.perf_counter()
        call = Call(scope, receive, scope["app"])
        try:
            if call.path_params:
                for name, value in call.path_params.items():
                    # Printable ASCII holds no control character: two checks in C settle the usual
                    # identifier; the regex search cost about 1,600 instructions per GET (callgrind).
                    if not (value.isascii() and value.isprintable()) and CONTROL_CHARS.search(value):
                        raise OAuthError(
                            "invalid_request", f"The {name} in the path contains control characters.", field=name
                        )
            status, body, headers = await self.handler(call)
            code = 0
        except Exception as exc:  # noqa: BLE001 - every failure must become an envelope
            error = as_oauth_error(exc)
            status, body, headers = self.render(error, call)
            code = error.code
        answer = self.fixed + always
        answer += headers
        size = len(body)
        length = _LENGTHS.get(size)
        if length is None:
            length = (b"content-length", b"%d" % size)
            _LENGTHS.put(size, length)
        answer.append(length)
        if self.observed:  # counted before the answer leaves: a client that has it finds it counted
            metrics.observe(self.name, code, time.perf_counter() - started)
        await send({"type": "http.response.start", "status": status, "headers": answer})
        await send({"type": "http.response.body", "body": body})

    def render(self, error: OAuthError, call: Call) -> Answer:
        own = {**self.on_401, **error.headers} if error.status == 401 else error.headers
        always_200 = call.platform.settings.error_status == "always-200"
        status, body, headers = error_answer(error, always_200, own, self.html_errors and "text/html" in call.accept)
        return status, body, [pair for pair in headers if pair[0] not in self.fixed_names]


class Template:
    """A path template of whole-segment parameters (``/api/spe/customer/{customer_id}/sites``), compiled.

    Matches as Starlette's default ``{name}`` does (``[^/]+``): a parameter is one
    non-empty segment. Other Starlette syntax (``{name:int}``, a parameter inside a
    segment) is refused at startup, so the two ways in cannot disagree.
    """

    def __init__(self, path: str) -> None:
        prefix, _, rest = path.partition("{")
        segments = ("{" + rest).split("/")
        self.prefix = prefix
        self.segments: list[tuple[str | None, str]] = []
        for segment in segments:
            inner = segment[1:-1]
            if segment.startswith("{") and segment.endswith("}") and inner.isidentifier():
                self.segments.append((inner, ""))
            elif "{" in segment or "}" in segment:
                raise ValueError(f"{path}: a path parameter must be a whole segment, {{name}}")
            else:
                self.segments.append((None, segment))
        if not prefix.endswith("/"):
            raise ValueError(f"{path}: a path parameter must be a whole segment, {{name}}")
        self.single = self.segments[0][0] if len(self.segments) == 1 else None

    def match(self, path: str) -> dict[str, str] | None:
        """The parameters of ``path`` if it matches, else None."""
        if not path.startswith(self.prefix):
            return None
        rest = path[len(self.prefix) :]
        if self.single is not None:  # the usual template: one parameter, last
            return {self.single: rest} if rest and "/" not in rest else None
        values = rest.split("/")
        if len(values) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for (name, literal), value in zip(self.segments, values, strict=True):
            if name is None:
                if value != literal:
                    return None
            elif not value:
                return None
            else:
                params[name] = value
        return params


class RouteTable:
    """The app's API routes, compiled once: the fast dispatch and the Starlette routes.

    Raises ValueError at startup for a method and path declared twice, or an exact
    path that an earlier template would take (Starlette matches in order; the dict
    lookup would not).
    """

    def __init__(self, routes: Iterable[ApiRoute]) -> None:
        self.routes = list(routes)
        self.endpoints = [Endpoint(route) for route in self.routes]
        self.exact: dict[tuple[str, str], Endpoint] = {}
        # (method, number of "/") → the templates of that shape, in declaration order
        self.templated: dict[tuple[str, int], list[tuple[str, str | None, Template, Endpoint]]] = {}
        declared: set[tuple[str, str]] = set()
        for route, handler in zip(self.routes, self.endpoints, strict=True):
            key = (route.method, route.path)
            if key in declared:
                raise ValueError(f"{route.method} {route.path} is declared twice")
            declared.add(key)
            same_shape = self.templated.setdefault((route.method, route.path.count("/")), [])
            if "{" in route.path:
                template = Template(route.path)
                same_shape.append((template.prefix, template.single, template, handler))
            elif any(template.match(route.path) is not None for _, _, template, _ in same_shape):
                raise ValueError(f"{route.method} {route.path} is taken by an earlier template")
            else:
                self.exact[key] = handler
        self.templated = {key: found for key, found in self.templated.items() if found}
        # (method, prefix) -> the single-parameter template's parameter and endpoint, for one dict
        # lookup instead of the walk below: only where no earlier template of that method and shape
        # could take the same path (a template of several parameters), so the order still decides.
        self.single: dict[tuple[str, str], tuple[str, Endpoint]] = {}
        for (method, _shape), found in self.templated.items():
            for prefix, single, _template, handler in found:
                if single is None:
                    break
                self.single.setdefault((method, prefix), (single, handler))
        self._shapes = [(route.method, route.path, Template(route.path) if "{" in route.path else None)
                        for route in self.routes]  # fmt: skip
        self.starlette_routes = [
            Route(route.path, handler, methods=[route.method], name=route.name)
            for route, handler in zip(self.routes, self.endpoints, strict=True)
        ]

    def allowed(self, path: str) -> list[str]:
        """Every method the table serves on ``path``, with ``HEAD`` beside ``GET``: a 405's ``Allow``
        (RFC 9110 §15.5.6). Starlette's router names the methods of the path's first route only, and
        the table gives it one route per method. Empty when no route has that path (a screen's)."""
        methods = {method for method, declared, template in self._shapes
                   if (template.match(path) is not None if template is not None else declared == path)}  # fmt: skip
        if "GET" in methods:
            methods.add("HEAD")
        return sorted(methods)

    def dispatch(self, scope: Scope) -> Endpoint | None:
        """The endpoint for exactly this method and path (its ``path_params`` set in the scope), or None."""
        method, path = scope["method"], scope["path"]
        found = self.exact.get((method, path))
        if found is not None:
            return found
        cut = path.rfind("/") + 1
        fits = self.single.get((method, path[:cut]))
        if fits is not None and cut < len(path):
            scope["path_params"] = {fits[0]: path[cut:]}
            return fits[1]
        candidates = self.templated.get((method, path.count("/")))
        if candidates is not None:
            for prefix, single, template, handler in candidates:
                if not path.startswith(prefix):
                    continue
                if single is not None:  # one parameter, last: the rest of a path of as many "/" is that segment
                    if len(path) > len(prefix):
                        scope["path_params"] = {single: path[len(prefix) :]}
                        return handler
                    continue
                params = template.match(path)
                if params is not None:
                    scope["path_params"] = params
                    return handler
        return None
