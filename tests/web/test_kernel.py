"""The endpoint kernel (web/kernel.py): every API route declared once, one way to answer.

The fast dispatch, before Starlette's stack, and Starlette's router must agree on every
method and path; bodies are read the same bounded way whichever way a request took.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from starlette.routing import Match, Route

from openplatform.web import ui
from openplatform.web.kernel import ApiRoute, Call, Endpoint, RouteTable, Template, ok
from tests.conftest import Harness, World


async def call(harness: Harness, scope: dict[str, Any], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drive the app with raw ASGI messages; returns what it sent."""
    sent: list[dict[str, Any]] = []
    incoming = iter(messages)

    async def receive() -> dict[str, Any]:
        return next(incoming, {"type": "http.disconnect"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    base = {"type": "http", "http_version": "1.1", "scheme": "http", "query_string": b"", "root_path": "",
            "client": ("127.0.0.1", 40000), "server": ("testserver", 80), "headers": []}  # fmt: skip
    await harness.app({**base, **scope}, receive, send)
    return sent


FORM = b"application/x-www-form-urlencoded"


def form(world: World) -> bytes:
    return f"app_id={world.app_id}&secret={world.secret}&grant_type=client_credential".encode()


async def test_a_body_in_several_messages_is_joined(harness: Harness) -> None:
    world = await harness.world()
    body = form(world)
    parts = [body[:10], body[10:30], body[30:]]
    messages = [{"type": "http.request", "body": p, "more_body": i < 2} for i, p in enumerate(parts)]
    scope = {"method": "POST", "path": "/oauth/credit/token", "headers": [(b"content-type", FORM)]}
    sent = await call(harness, scope, messages)
    assert sent[0]["status"] == 200
    headers = dict(sent[0]["headers"])
    assert headers[b"cache-control"] == b"no-store" and headers[b"pragma"] == b"no-cache"
    assert int(headers[b"content-length"]) == len(sent[1]["body"])


async def test_a_client_leaving_mid_body_gets_an_envelope_not_a_crash(harness: Harness) -> None:
    world = await harness.world()
    messages = [{"type": "http.request", "body": form(world)[:20], "more_body": True}]  # then a disconnect
    sent = await call(harness, {"method": "POST", "path": "/oauth/credit/token"}, messages)
    assert sent[0]["status"] == 400 and b'"code":40001' in sent[1]["body"]


async def test_a_malformed_content_length_is_refused(harness: Harness) -> None:
    sent = await call(harness, {"method": "POST", "path": "/oauth/credit/token",
                                "headers": [(b"content-length", b"12abc")]}, [])  # fmt: skip
    assert sent[0]["status"] == 400 and b"Content-Length" in sent[1]["body"]


async def test_other_methods_slashes_and_root_paths_go_through_starlette(harness: Harness) -> None:
    world = await harness.world()
    token = await harness.app_token(world)
    bearer = {"Authorization": f"Bearer {token}"}
    customer = f"/api/spe/customer/{world.customer_id}"
    assert (await harness.client.get(customer, headers=bearer)).json()["code"] == 0
    head = await harness.client.head(customer, headers=bearer)
    assert head.status_code == 200 and head.headers["etag"]
    slash = await harness.client.get(customer + "/", headers=bearer)
    assert slash.status_code == 307 and slash.headers["location"].endswith(customer)  # Starlette's redirect_slashes
    mounted = await call(harness, {"method": "POST", "path": "/base/oauth/credit/token", "root_path": "/base",
                                   "headers": [(b"content-type", FORM)]},
                         [{"type": "http.request", "body": form(world), "more_body": False}])  # fmt: skip
    assert mounted[0]["status"] == 200, mounted


async def test_an_empty_content_length_is_malformed_on_every_api_route(harness: Harness) -> None:
    """RFC 9110 §8.6: Content-Length is 1*DIGIT. The fast way used to ignore an empty one."""
    world = await harness.world()
    token = await harness.app_token(world)
    empty = (b"content-length", b"")
    for path, headers in (("/oauth/credit/token", [(b"content-type", FORM), empty]),
                          ("/api/spe/customers", [(b"authorization", f"Bearer {token}".encode()), empty])):  # fmt: skip
        sent = await call(harness, {"method": "POST", "path": path, "headers": headers},
                          [{"type": "http.request", "body": form(world), "more_body": False}])  # fmt: skip
        assert sent[0]["status"] == 400 and b"Content-Length is malformed" in sent[1]["body"], path


async def test_a_client_gone_before_its_body_is_a_40001_on_the_fast_way_too(harness: Harness) -> None:
    """A disconnect as the first message is not an empty body (Starlette's routes already said 40001)."""
    sent = await call(harness, {"method": "POST", "path": "/oauth/credit/token",
                                "headers": [(b"content-type", FORM)]}, [])  # fmt: skip
    assert sent[0]["status"] == 400 and b"went away" in sent[1]["body"]


def sample_paths(template: str) -> list[str]:
    """Paths around a template: its parameters filled, emptied, split by a slash, with a slash after."""
    paths = []
    for value in ("cus_1", "", "a/b", "%2F", "x.y"):
        filled = re.sub(r"{[^}]+}", value, template)
        paths += [filled, filled + "/", filled + "/extra"]
    return paths


def test_the_fast_dispatch_and_starlettes_router_agree_on_every_path(harness: Harness) -> None:
    """For every method and nearby path, both ways in pick the same endpoint (or the fast one none)."""
    app = harness.app
    table: RouteTable = app.table
    paths = {p for route in [*table.routes, *app.routes] for p in sample_paths(getattr(route, "path", "/"))}
    for method, path in itertools.product(("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"), sorted(paths)):
        scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
        fast = table.dispatch(scope)
        full = next(((r, child) for r in app.routes for m, child in [r.matches(scope)] if m == Match.FULL), None)
        if fast is None:  # Starlette answers: a screen, a HEAD of a GET, or its 404, 405 or redirect
            taken = getattr(full[0], "endpoint", None) if full else None
            assert taken not in table.endpoints or method == "HEAD", (method, path)
        else:
            assert full is not None and full[0].endpoint is fast, (method, path)
            assert scope.get("path_params", {}) == full[1].get("path_params", {}), (method, path)


def test_every_api_route_comes_from_the_one_table(harness: Harness) -> None:
    """Only the screens are Starlette routes of their own; each table route is in the router once."""
    app = harness.app
    table: RouteTable = app.table
    screens = set(map(id, ui.routes))
    outside = [getattr(r, "path", r) for r in app.routes if id(r) not in screens and r not in table.starlette_routes]
    assert outside == []
    declared = [(route.method, route.path) for route in table.routes]
    assert len(declared) == len(set(declared))
    routed = [r for r in app.routes if isinstance(r, Route) and isinstance(r.endpoint, Endpoint)]
    assert [(next(iter(r.methods - {"HEAD"})), r.path) for r in routed] == declared  # type: ignore[operator]


async def _nothing(_call: Call) -> Any:
    return ok(None)


def test_a_table_refuses_what_the_two_ways_would_answer_differently() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        RouteTable([ApiRoute("GET", "/a", _nothing, "a"), ApiRoute("GET", "/a", _nothing, "b")])
    with pytest.raises(ValueError, match="earlier template"):  # Starlette would take the template first
        RouteTable([ApiRoute("GET", "/a/{x}", _nothing, "a"), ApiRoute("GET", "/a/b", _nothing, "b")])
    RouteTable([ApiRoute("GET", "/a/b", _nothing, "b"), ApiRoute("GET", "/a/{x}", _nothing, "a")])  # exact first: fine
    for path in ("/a/{x:int}", "/a/x{y}", "/a/{x}.json"):  # Starlette syntax the fast way does not speak
        with pytest.raises(ValueError, match="whole segment"):
            Template(path)


@pytest.mark.parametrize("several_first", [True, False])
def test_templates_that_take_the_same_path_go_by_declaration_order(several_first: bool) -> None:
    """/a/b/b fits both templates: the first declared takes it, as in Starlette's router, whether or
    not the one-parameter template has the one-lookup way (``RouteTable.single``)."""
    several, one = ApiRoute("GET", "/a/{x}/b", _nothing, "several"), ApiRoute("GET", "/a/b/{y}", _nothing, "one")
    routes = [several, one] if several_first else [one, several]
    table = RouteTable(routes)
    for path in ("/a/b/b", "/a/b/c", "/a/c/b", "/a/b/", "/a/b", "/a/b/b/"):
        scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
        fast = table.dispatch(scope)
        full = next(
            ((r, child) for r in table.starlette_routes for m, child in [r.matches(scope)] if m == Match.FULL), None
        )
        assert (fast.name if fast else None) == (full[0].name if full else None), path
        assert scope.get("path_params", {}) == (full[1].get("path_params", {}) if full else {}), path
    assert table.dispatch({"method": "GET", "path": "/a/b/b"}).name == routes[0].name  # type: ignore[union-attr]


def test_a_template_matches_whole_non_empty_segments() -> None:
    template = Template("/api/spe/customer/{customer_id}/sites/{site_id}")
    assert template.match("/api/spe/customer/c1/sites/s1") == {"customer_id": "c1", "site_id": "s1"}
    for path in ("/api/spe/customer//sites/s1", "/api/spe/customer/c1/sites/", "/api/spe/customer/c1/site/s1",
                 "/api/spe/customer/c1/sites/s1/x", "/api/spe/customer/c1/sites"):  # fmt: skip
        assert template.match(path) is None, path


@pytest.mark.parametrize(
    ("segment", "refused"),
    [
        ("cus_1", False), ("a b~", False),  # printable ASCII: settled without the regex
        ("a\x00b", True), ("\x1f", True), ("a\x7f", True), ("a\nb", True),  # C0 controls and DEL
        ("é\x01", True),  # a control beside non-ASCII: the regex still sees it
        ("\u0085", True), ("\u2028", True),  # a C1 control, a line separator (core.text)
        ("é", False), ("\u00a0", False), ("\u200f", False),  # not control characters: looked up (404), never 40001
    ],
)  # fmt: skip
async def test_only_control_characters_in_a_path_segment_are_refused(
    harness: Harness, segment: str, refused: bool
) -> None:
    """The kernel's check of path parameters (printable ASCII passes in C, the rest meets the regex)."""
    world = await harness.world()
    token = await harness.app_token(world)
    headers = [(b"authorization", f"Bearer {token}".encode())]
    sent = await call(harness, {"method": "GET", "path": f"/api/spe/customer/{segment}", "headers": headers}, [])
    body = sent[1]["body"]
    if refused:
        assert sent[0]["status"] == 400 and b"contains control characters" in body, body
    else:
        assert sent[0]["status"] == 404 and b"control" not in body, body
